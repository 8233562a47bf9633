"""Write a synthetic cohort: data files, ground truth and input tables.

Why over 500 lines: it is one concern, turning a design into files; most of it is one short
writer per assay and the file form of a patient's truth that the workflow's jobs pass on.

Layout of the data folder (paths as the tables name them):

- ``scrna/{sample}.h5`` (10x HDF5 v3) and ``scrna/{sample}.bam`` (+ ``.bai``, 10x-style BAM)
- ``bulk/{sample}.counts.tsv`` and ``bulk/{sample}.fastq.gz``
- ``cfdna/{sample}.bam`` (+ ``.bai``, paired-end, duplicates marked)
- ``cfdna_normals/{normal}.bam`` (+ ``.bai``): tumour-free plasma over the whole panel, as many
  as ``n_plasma_normals`` (a panel of normals for the ctDNA background)
- ``variants/{patient}.vcf.gz`` (+ ``.tbi``)
- ``reference/genome.fa`` (+ ``.fai``; the cfDNA reference), ``reference/host_transcripts.fa``
  (the 10x BAMs' reference: endogenous transcripts, CD8A and CD247 among them)
- ``truth/patients.tsv``, ``truth/samples.tsv``, ``truth/cells.tsv.gz``, ``truth/variants.tsv``,
  ``truth/inflammatory_genes.txt``
- ``patients.tsv`` and ``samples.tsv``: the input tables, paths relative to the folder

The cohort is written in independent parts, so that a workflow can run each as a job of its
own: :func:`generate_reference` (the shared references), :func:`generate_patient` (one
patient's sample files and VCF; returns the patient's truth, which :func:`write_patient_truth`
keeps in a file until :func:`gather_truth` writes the truth tables from every patient's) and
:func:`generate_normal` (one plasma normal). :func:`generate_cohort` runs all the parts.

Each sample's files come from random streams keyed by its own ID, so they do not depend on the
order of work, on the number of worker processes or on which parts run together.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from carmscope.celltypes import CELL_TYPES, IMMUNE_CELL_TYPES
from carmscope.construct import Construct, read_constructs
from carmscope.genesets import read_gmt, read_signature_table
from carmscope.synthetic import (
    blood,
    bulk_fastq,
    expression,
    genome,
    host_transcripts,
    plasma_bam,
    tcr,
    tenx,
    tenx_bam,
    tumour_variants,
)
from carmscope.synthetic.design import (
    CohortParams,
    PatientDesign,
    SampleDesign,
    design_cohort,
    plasma_normal_id,
    plasma_normal_path,
    plasma_normals,
    rng_for,
)
from carmscope.synthetic.genes import gene_table
from carmscope.synthetic.tables import write_tables
from carmscope.vocabulary import BLOOD, BULK_RNA, CFDNA, SCRNA

CAR_READ_TRUTH = ("car_reads", "car_specific_umis", "car_specific_reads")
"""Per-cell CAR truth from the BAM writer: all CAR reads, and the UMIs and reads that overlap
construct-specific sequence (scFv or a junction), the only ones that can prove the CAR."""


@dataclass(frozen=True)
class Simulation:
    """What every part of a cohort needs, built once from the parameters (:func:`prepare`)."""

    params: CohortParams
    data_dir: Path
    patients: dict[str, PatientDesign]
    """The design, by patient ID, in patient order."""
    genes: pd.DataFrame
    inflammatory_genes: frozenset[str]
    construct: Construct
    hosts: dict[str, str]
    contigs: dict[str, str]
    panel: pd.DataFrame
    """Tumour variants of every patient (:func:`.tumour_variants.design_variants`)."""


@dataclass
class SampleTruth:
    """The truth of one sample: its row of ``truth/samples.tsv``, and its cells (scRNA) or its
    variants (cfDNA)."""

    sample: dict
    cells: pd.DataFrame | None = None
    variants: pd.DataFrame | None = None


@dataclass(frozen=True)
class PatientTruth:
    """The truth of one patient's samples, in design order."""

    patient_id: str
    samples: list[SampleTruth] = field(default_factory=list)


def generate_cohort(simulation: Simulation, threads: int = 1) -> list[PatientDesign]:
    """Write every file of a prepared cohort (:func:`prepare`) into its ``data_dir``.

    The parts (:func:`generate_reference`, :func:`generate_patient` for every patient,
    :func:`generate_normal` for every plasma normal, :func:`gather_truth`) and the input tables.

    Parameters
    ----------
    simulation
        The cohort, from :func:`prepare`.
    threads
        Worker processes for the patients and normals.

    Returns
    -------
    list of PatientDesign
        The design the files were written from.
    """
    patients = list(simulation.patients)
    normals = [plasma_normal_id(index) for index in range(simulation.params.n_plasma_normals)]
    _log(
        f"writing {len(patients)} patients and {len(normals)} plasma normal(s) with {threads} "
        "process(es)"
    )
    generate_reference(simulation)
    if threads > 1:
        with ProcessPoolExecutor(max_workers=threads) as pool:
            truths = list(pool.map(generate_patient, [simulation] * len(patients), patients))
            list(pool.map(generate_normal, [simulation] * len(normals), normals))
    else:
        truths = [generate_patient(simulation, patient) for patient in patients]
        for normal in normals:
            generate_normal(simulation, normal)
    gather_truth(simulation, truths)
    write_tables(list(simulation.patients.values()), simulation.data_dir, simulation.data_dir)
    _log("done")
    return list(simulation.patients.values())


def _log(message: str) -> None:
    print(f"[carmscope-synthetic] {message}", file=sys.stderr, flush=True)


def prepare(
    params: CohortParams,
    data_dir: str | os.PathLike,
    *,
    construct_fasta: str | os.PathLike,
    segments_tsv: str | os.PathLike,
    gmt_paths: Iterable[str | os.PathLike],
    signatures_tsv: str | os.PathLike,
) -> Simulation:
    """Everything the parts of a cohort share, built in memory (nothing is written).

    The design, the genes, the construct and host transcripts, the cfDNA reference and the
    whole cohort's variant panel: all cheap to rebuild (well under a second for 500 patients),
    so each job of a workflow builds them again rather than reading them from a file.

    Parameters
    ----------
    params
        Cohort parameters (a preset plus overrides).
    data_dir
        Output folder of the parts; created when they are written.
    construct_fasta, segments_tsv
        The CAR construct whose transcripts CAR-M cells carry (the first construct is used).
    gmt_paths, signatures_tsv
        Gene sets: their genes join the gene universe, and the GMT sets' genes form the
        inflammatory programme that rises after infusion.
    """
    gmt_sets: dict[str, list[str]] = {}
    for path in gmt_paths:
        gmt_sets.update(read_gmt(path))
    signatures = read_signature_table(signatures_tsv)
    construct = read_constructs(construct_fasta, segments_tsv)[0]
    patients = design_cohort(params)
    contigs = genome.make_reference(params)
    return Simulation(
        params=params,
        data_dir=Path(data_dir),
        patients={patient.patient_id: patient for patient in patients},
        genes=gene_table(params, {**gmt_sets, **signatures}),
        inflammatory_genes=expression.responding_genes(
            {gene for genes in gmt_sets.values() for gene in genes},
            params.inflammatory_response_fraction,
            params.seed,
        ),
        construct=construct,
        hosts=host_transcripts.host_transcripts(params.seed, construct),
        contigs=contigs,
        panel=tumour_variants.design_variants(patients, contigs, params),
    )


def generate_reference(simulation: Simulation) -> None:
    """Write the references every patient shares: ``reference/genome.fa`` (+ ``.fai``) and
    ``reference/host_transcripts.fa``."""
    folder = simulation.data_dir / "reference"
    folder.mkdir(parents=True, exist_ok=True)
    genome.write_reference(folder / "genome.fa", simulation.contigs)
    host_transcripts.write_host_transcripts_fasta(folder / "host_transcripts.fa", simulation.hosts)


def generate_patient(simulation: Simulation, patient_id: str) -> PatientTruth:
    """Write one patient's files: its VCF (if it has ctDNA) and every sample's files.

    Parameters
    ----------
    simulation
        The cohort (:func:`prepare`).
    patient_id
        A patient of the design, e.g. ``CARM-001``.

    Returns
    -------
    PatientTruth
        The truth of its samples, for :func:`gather_truth`.
    """
    patient = simulation.patients.get(patient_id)
    if patient is None:
        raise ValueError(
            f"patient {patient_id!r} is not in the synthetic cohort's design "
            f"(n_patients={simulation.params.n_patients})"
        )
    if patient.tumor_variants:
        own = simulation.panel[simulation.panel["patient_id"] == patient_id]
        path = _output(simulation, patient.tumor_variants)
        tumour_variants.write_variants_vcf(path, own, simulation.contigs)
    return PatientTruth(
        patient_id, [_write_sample(simulation, patient, sample) for sample in patient.samples]
    )


def generate_normal(simulation: Simulation, normal_id: str) -> None:
    """Write one tumour-free plasma normal over the whole panel (``cfdna_normals/{normal}.bam``).

    Parameters
    ----------
    simulation
        The cohort (:func:`prepare`).
    normal_id
        One of the design's normals (:func:`carmscope.synthetic.design.plasma_normals`), e.g.
        ``PON-001``.
    """
    relative = plasma_normal_path(normal_id)
    if relative not in plasma_normals(simulation.params):
        raise ValueError(
            f"plasma normal {normal_id!r} is not in the synthetic cohort's design "
            f"(n_plasma_normals={simulation.params.n_plasma_normals})"
        )
    plasma_bam.write_normal_plasma_bam(
        _output(simulation, relative),
        normal_id,
        simulation.panel,
        simulation.contigs,
        simulation.params,
    )


def gather_truth(simulation: Simulation, truths: Iterable[PatientTruth]) -> None:
    """Write the truth tables (``truth/patients.tsv``, ``samples.tsv``, ``cells.tsv.gz``,
    ``variants.tsv``, ``inflammatory_genes.txt``) of the patients whose truth is given.

    Patients are written in design order, whatever the order of ``truths``; for the whole
    design the tables are exactly those :func:`generate_cohort` writes.
    """
    order = {patient_id: rank for rank, patient_id in enumerate(simulation.patients)}
    by_patient = {}
    for truth in truths:
        if truth.patient_id not in order:
            raise ValueError(f"patient {truth.patient_id!r} is not in the synthetic design")
        by_patient[truth.patient_id] = truth
    patient_ids = sorted(by_patient, key=order.__getitem__)
    folder = simulation.data_dir / "truth"
    folder.mkdir(parents=True, exist_ok=True)
    patient_rows = [_patient_row(simulation.patients[patient_id]) for patient_id in patient_ids]
    pd.DataFrame(patient_rows).to_csv(folder / "patients.tsv", sep="\t", index=False)
    samples = [truth for patient_id in patient_ids for truth in by_patient[patient_id].samples]
    pd.DataFrame([t.sample for t in samples]).convert_dtypes().to_csv(
        folder / "samples.tsv", sep="\t", index=False
    )
    cells = [t.cells for t in samples if t.cells is not None]
    _stack(cells).to_csv(
        folder / "cells.tsv.gz",
        sep="\t",
        index=False,
        compression={"method": "gzip", "mtime": 0},
    )
    variants = [t.variants for t in samples if t.variants is not None]
    _stack(variants).to_csv(folder / "variants.tsv", sep="\t", index=False)
    blood.write_truth(
        folder,
        [simulation.patients[p] for p in patient_ids],
        simulation.params.seed,
        simulation.params.bulk_reads,
    )
    tcr.write_truth(folder, [simulation.patients[p] for p in patient_ids], simulation.params)
    (folder / "inflammatory_genes.txt").write_text(
        "".join(f"{gene}\n" for gene in sorted(simulation.inflammatory_genes))
    )


def _patient_row(patient: PatientDesign) -> dict:
    row = {k: v for k, v in asdict(patient).items() if k not in ("samples", "index")}
    row["cd8_fraction_delta"] = patient.cd8_fraction_post - patient.cd8_fraction_baseline
    row.update({f"ctdna_{name}": value for name, value in patient.ctdna_truth().items()})
    return row


def _stack(tables: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


# --- a patient's truth as a file (between a patient's job and the truth tables' job) -----------


def write_patient_truth(path: str | os.PathLike, truth: PatientTruth) -> None:
    """Write a patient's truth as gzipped JSON that :func:`read_patient_truth` reads back
    exactly (values and column types), so gathered tables equal those written in one go."""
    document = {
        "patient_id": truth.patient_id,
        "samples": [
            {
                "sample": sample.sample,
                "cells": _frame_to_json(sample.cells),
                "variants": _frame_to_json(sample.variants),
            }
            for sample in truth.samples
        ],
    }
    text = json.dumps(document, default=_json_scalar, separators=(",", ":"))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(gzip.compress(text.encode(), mtime=0))


def read_patient_truth(path: str | os.PathLike) -> PatientTruth:
    """A patient's truth written by :func:`write_patient_truth`."""
    document = json.loads(gzip.decompress(Path(path).read_bytes()))
    return PatientTruth(
        document["patient_id"],
        [
            SampleTruth(
                sample=sample["sample"],
                cells=_frame_from_json(sample["cells"]),
                variants=_frame_from_json(sample["variants"]),
            )
            for sample in document["samples"]
        ],
    )


def _json_scalar(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as JSON")


def _frame_to_json(frame: pd.DataFrame | None) -> dict | None:
    if frame is None:
        return None
    return {
        "dtypes": {column: str(dtype) for column, dtype in frame.dtypes.items()},
        **frame.to_dict(orient="split", index=False),
    }


def _frame_from_json(document: dict | None) -> pd.DataFrame | None:
    if document is None:
        return None
    frame = pd.DataFrame(document["data"], columns=document["columns"])
    return frame.astype(document["dtypes"])


# --- one sample's files ---------------------------------------------------------------------


def _output(simulation: Simulation, relative: str) -> Path:
    path = simulation.data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write_sample(
    simulation: Simulation, patient: PatientDesign, sample: SampleDesign
) -> SampleTruth:
    writer = {SCRNA: _write_scrna, BULK_RNA: _write_bulk, CFDNA: _write_plasma}
    writer.update(dict.fromkeys(blood.ASSAYS, _write_blood))
    writer[tcr.TCR] = _write_tcr
    truth = writer[sample.assay](simulation, patient, sample)
    if sample.vdj:
        path = _output(simulation, sample.vdj)
        truth.sample |= tcr.write_vdj(path, sample, patient, truth.cells, simulation.params)
    truth.sample = {
        "sample_id": sample.sample_id,
        "patient_id": sample.patient_id,
        "assay": sample.assay,
        "day": sample.day,
        "car_present": sample.car_present,
        "inflammation_log2fc": sample.inflammation_log2fc,
        **truth.sample,
    }
    return truth


def _write_scrna(
    simulation: Simulation, patient: PatientDesign, sample: SampleDesign
) -> SampleTruth:
    params = simulation.params
    biopsy = expression.simulate_biopsy(
        sample, patient, params, simulation.genes, simulation.inflammatory_genes
    )
    cells = biopsy.cells
    extra = (
        [tenx.car_feature(cells["car_umis"].to_numpy())] if params.car_feature_in_matrix else None
    )
    tenx.write_tenx_h5(
        _output(simulation, sample.counts),
        biopsy.matrix,
        biopsy.barcodes,
        biopsy.genes,
        extra_features=extra,
        library_id=sample.sample_id,
    )
    car_reads = tenx_bam.write_tenx_bam(
        _output(simulation, sample.reads),
        cells,
        simulation.construct,
        simulation.hosts,
        params,
        rng_for(params.seed, sample.sample_id, "tenx_bam"),
        sample_id=sample.sample_id,
    )
    per_cell = car_reads.set_index("barcode").reindex(cells["barcode"])
    cells = cells.assign(
        sample_id=sample.sample_id,
        **{column: per_cell[column].to_numpy() for column in CAR_READ_TRUTH},
    )
    good = cells[~cells["low_quality"]]
    counts = good["cell_type"].value_counts()
    n_immune = int(good["cell_type"].isin(IMMUNE_CELL_TYPES).sum())
    summary = {
        "n_cells": len(cells),
        "n_good_cells": len(good),
        "n_low_quality_cells": int(cells["low_quality"].sum()),
        "cd8_fraction": counts.get("cd8_t", 0) / len(good),
        "cd8_fraction_of_immune": counts.get("cd8_t", 0) / n_immune if n_immune else 0.0,
        **{f"fraction_{t}": counts.get(t, 0) / len(good) for t in CELL_TYPES},
        "car_positive_cells": int((cells["car_umis"] > 0).sum()),
        "car_umis": int(cells["car_umis"].sum()),
        "car_specific_positive_cells": int((cells["car_specific_umis"] > 0).sum()),
        **{column: int(cells[column].sum()) for column in CAR_READ_TRUTH},
    }
    columns = ["sample_id", "barcode", "cell_type", "low_quality", "car_umis", *CAR_READ_TRUTH]
    return SampleTruth(sample=summary, cells=cells[columns].reset_index(drop=True))


def _write_bulk(
    simulation: Simulation, patient: PatientDesign, sample: SampleDesign
) -> SampleTruth:
    params = simulation.params
    fraction = bulk_fastq.BULK_CAR_READ_FRACTION
    if sample.tissue == BLOOD:  # PBMC: CAR reads follow the draw's qPCR level
        fraction = blood.pbmc_car_fraction(blood.patient_values(patient, params.seed), sample.hours)
    if sample.counts:
        table = expression.simulate_bulk_counts(
            sample, patient, params, simulation.genes, simulation.inflammatory_genes
        )
        expression.write_bulk_counts(_output(simulation, sample.counts), table)
    car_reads = bulk_fastq.write_bulk_fastq(
        _output(simulation, sample.reads),
        sample.car_present,
        simulation.construct,
        simulation.hosts,
        params,
        rng_for(params.seed, sample.sample_id, "bulk_reads"),
        car_read_fraction=fraction,
    )
    return SampleTruth(
        sample={
            "car_reads": car_reads,
            "car_reads_per_million": car_reads * 1e6 / params.bulk_reads,
        }
    )


def _write_blood(
    simulation: Simulation, patient: PatientDesign, sample: SampleDesign
) -> SampleTruth:
    values = blood.patient_values(patient, simulation.params.seed)
    path = _output(simulation, sample.counts)
    return SampleTruth(sample=blood.write_blood_sample(path, values, sample.sample_id))


def _write_tcr(simulation: Simulation, patient: PatientDesign, sample: SampleDesign):
    path = _output(simulation, sample.counts)
    return SampleTruth(sample=tcr.write_tcr_sample(path, sample, patient, simulation.params))


def _write_plasma(
    simulation: Simulation, patient: PatientDesign, sample: SampleDesign
) -> SampleTruth:
    variants = plasma_bam.write_plasma_bam(
        _output(simulation, sample.reads),
        sample,
        patient,
        plasma_sites(simulation, patient.patient_id),
        simulation.contigs,
        simulation.params,
    )
    mean_vaf = patient.ctdna_baseline_vaf * (sample.ctdna_fold or 0.0)
    return SampleTruth(
        sample={
            "ctdna_fold": sample.ctdna_fold,
            "ctdna_mean_vaf": mean_vaf,
            "ctdna_present": mean_vaf > 0,
            "n_variants": len(variants),
        },
        variants=variants,
    )


def plasma_sites(simulation: Simulation, patient_id: str) -> pd.DataFrame:
    """The variants whose sites a patient's plasma BAMs cover (``params.plasma_panel``).

    ``cohort``: the whole cohort's panel; ``patient``: the patient's own variants only. Reads
    at a site come from streams keyed by sample and site, so a ``patient`` BAM holds exactly
    the reads of the ``cohort`` BAM at the patient's own sites.
    """
    panel = simulation.panel
    if simulation.params.plasma_panel == "patient":
        return panel[panel["patient_id"] == patient_id]
    return panel
