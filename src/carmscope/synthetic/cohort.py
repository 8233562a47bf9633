"""Write a whole synthetic cohort: data files, ground truth and input tables.

Layout of the data folder (paths as the tables name them):

- ``scrna/{sample}.h5`` (10x HDF5 v3) and ``scrna/{sample}.bam`` (+ ``.bai``, 10x-style BAM)
- ``bulk/{sample}.counts.tsv`` and ``bulk/{sample}.fastq.gz``
- ``cfdna/{sample}.bam`` (+ ``.bai``, paired-end, duplicates marked)
- ``cfdna_normals/{normal}.bam`` (+ ``.bai``): tumour-free plasma over the whole panel, as many
  as ``n_plasma_normals`` (a panel of normals for the ctDNA background)
- ``variants/{patient}.vcf.gz`` (+ ``.tbi``)
- ``reference/genome.fa`` (+ ``.fai``; the cfDNA reference), ``reference/host_transcripts.fa``
  (the 10x BAMs' reference: endogenous transcripts, CD8A and CD247 among them)
- ``truth/patients.tsv``, ``truth/samples.tsv``, ``truth/cells.tsv.gz``, ``truth/variants.tsv``
- ``patients.tsv`` and ``samples.tsv``: the input tables, paths relative to the folder

Each sample's files come from random streams keyed by its own ID, so they do not depend on the
order of work or on the number of worker processes.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from carmscope.celltypes import CELL_TYPES, IMMUNE_CELL_TYPES
from carmscope.construct import Construct, read_constructs
from carmscope.genesets import read_gmt, read_signature_table
from carmscope.synthetic import cfdna, expression, reads, tenx
from carmscope.synthetic.design import (
    CohortParams,
    PatientDesign,
    SampleDesign,
    design_cohort,
    plasma_normals,
    rng_for,
)
from carmscope.synthetic.genes import gene_table
from carmscope.synthetic.tables import write_tables

CAR_READ_TRUTH = ("car_reads", "car_specific_umis", "car_specific_reads")
"""Per-cell CAR truth from the BAM writer: all CAR reads, and the UMIs and reads that overlap
construct-specific sequence (scFv or a junction), the only ones that can prove the CAR."""


@dataclass(frozen=True)
class _Shared:
    """What every sample's simulation needs, built once per cohort."""

    params: CohortParams
    data_dir: Path
    genes: pd.DataFrame
    inflammatory_genes: frozenset[str]
    construct: Construct
    hosts: dict[str, str]
    contigs: dict[str, str]
    panel: pd.DataFrame


@dataclass
class _SampleTruth:
    sample: dict
    cells: pd.DataFrame | None = None
    variants: pd.DataFrame | None = None


def generate_cohort(
    params: CohortParams,
    data_dir: str | os.PathLike,
    *,
    construct_fasta: str | os.PathLike,
    segments_tsv: str | os.PathLike,
    gmt_paths: list[str | os.PathLike],
    signatures_tsv: str | os.PathLike,
    threads: int = 1,
) -> list[PatientDesign]:
    """Write every file of the cohort described by ``params`` into ``data_dir``.

    Parameters
    ----------
    params
        Cohort parameters (a preset plus overrides).
    data_dir
        Output folder; created if needed.
    construct_fasta, segments_tsv
        The CAR construct whose transcripts CAR-M cells carry (the first construct is used).
    gmt_paths, signatures_tsv
        Gene sets: their genes join the gene universe, and the GMT sets' genes form the
        inflammatory programme that rises after infusion.
    threads
        Worker processes for the per-sample files.

    Returns
    -------
    list of PatientDesign
        The design the files were written from.
    """
    data_dir = Path(data_dir)
    patients = design_cohort(params)
    shared = _prepare(
        params, patients, data_dir, construct_fasta, segments_tsv, gmt_paths, signatures_tsv
    )
    _write_variants(patients, shared)
    jobs = [(patient, sample) for patient in patients for sample in patient.samples]
    normals = plasma_normals(params)
    _log(
        f"writing {len(jobs)} samples of {len(patients)} patients and {len(normals)} plasma "
        f"normal(s) with {threads} process(es)"
    )
    if threads > 1:
        with ProcessPoolExecutor(max_workers=threads) as pool:
            truths = list(pool.map(_write_sample, [shared] * len(jobs), *zip(*jobs, strict=True)))
            list(pool.map(_write_normal, [shared] * len(normals), normals))
    else:
        truths = [_write_sample(shared, patient, sample) for patient, sample in jobs]
        for normal in normals:
            _write_normal(shared, normal)
    _write_truth(patients, truths, data_dir)
    (data_dir / "truth/inflammatory_genes.txt").write_text(
        "".join(f"{gene}\n" for gene in sorted(shared.inflammatory_genes))
    )
    write_tables(patients, data_dir, data_dir)
    _log("done")
    return patients


def _log(message: str) -> None:
    print(f"[carmscope-synthetic] {message}", file=sys.stderr, flush=True)


def _prepare(
    params, patients, data_dir, construct_fasta, segments_tsv, gmt_paths, signatures_tsv
) -> _Shared:
    gmt_sets: dict[str, list[str]] = {}
    for path in gmt_paths:
        gmt_sets.update(read_gmt(path))
    signatures = read_signature_table(signatures_tsv)
    construct = read_constructs(construct_fasta, segments_tsv)[0]
    hosts = reads.host_transcripts(params.seed, construct)
    contigs = cfdna.make_reference(params)
    (data_dir / "reference").mkdir(parents=True, exist_ok=True)
    cfdna.write_reference(data_dir / "reference/genome.fa", contigs)
    reads.write_host_transcripts_fasta(data_dir / "reference/host_transcripts.fa", hosts)
    return _Shared(
        params=params,
        data_dir=data_dir,
        genes=gene_table(params, {**gmt_sets, **signatures}),
        inflammatory_genes=expression.responding_genes(
            {gene for genes in gmt_sets.values() for gene in genes},
            params.inflammatory_response_fraction,
            params.seed,
        ),
        construct=construct,
        hosts=hosts,
        contigs=contigs,
        panel=cfdna.design_variants(patients, contigs, params),
    )


def _write_variants(patients: list[PatientDesign], shared: _Shared) -> None:
    for patient in patients:
        if not patient.tumor_variants:
            continue
        path = shared.data_dir / patient.tumor_variants
        path.parent.mkdir(parents=True, exist_ok=True)
        own = shared.panel[shared.panel["patient_id"] == patient.patient_id]
        cfdna.write_variants_vcf(path, own, shared.contigs)


def _output(shared: _Shared, relative: str) -> Path:
    path = shared.data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write_sample(shared: _Shared, patient: PatientDesign, sample: SampleDesign) -> _SampleTruth:
    writer = {"scrna": _write_scrna, "bulk_rna": _write_bulk, "cfdna": _write_plasma}
    truth = writer[sample.assay](shared, patient, sample)
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


def _write_scrna(shared: _Shared, patient: PatientDesign, sample: SampleDesign) -> _SampleTruth:
    params = shared.params
    biopsy = expression.simulate_biopsy(
        sample, patient, params, shared.genes, shared.inflammatory_genes
    )
    cells = biopsy.cells
    extra = (
        [tenx.car_feature(cells["car_umis"].to_numpy())] if params.car_feature_in_matrix else None
    )
    tenx.write_tenx_h5(
        _output(shared, sample.counts),
        biopsy.matrix,
        biopsy.barcodes,
        biopsy.genes,
        extra_features=extra,
        library_id=sample.sample_id,
    )
    car_reads = reads.write_tenx_bam(
        _output(shared, sample.reads),
        cells,
        shared.construct,
        shared.hosts,
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
    return _SampleTruth(sample=summary, cells=cells[columns].reset_index(drop=True))


def _write_bulk(shared: _Shared, patient: PatientDesign, sample: SampleDesign) -> _SampleTruth:
    params = shared.params
    table = expression.simulate_bulk_counts(
        sample, patient, params, shared.genes, shared.inflammatory_genes
    )
    expression.write_bulk_counts(_output(shared, sample.counts), table)
    car_reads = reads.write_bulk_fastq(
        _output(shared, sample.reads),
        sample.car_present,
        shared.construct,
        shared.hosts,
        params,
        rng_for(params.seed, sample.sample_id, "bulk_reads"),
    )
    return _SampleTruth(
        sample={
            "car_reads": car_reads,
            "car_reads_per_million": car_reads * 1e6 / params.bulk_reads,
        }
    )


def _write_plasma(shared: _Shared, patient: PatientDesign, sample: SampleDesign) -> _SampleTruth:
    variants = cfdna.write_plasma_bam(
        _output(shared, sample.reads), sample, patient, shared.panel, shared.contigs, shared.params
    )
    mean_vaf = patient.ctdna_baseline_vaf * (sample.ctdna_fold or 0.0)
    return _SampleTruth(
        sample={
            "ctdna_fold": sample.ctdna_fold,
            "ctdna_mean_vaf": mean_vaf,
            "ctdna_present": mean_vaf > 0,
            "n_variants": len(variants),
        },
        variants=variants,
    )


def _write_normal(shared: _Shared, relative: str) -> None:
    """A tumour-free plasma normal over the whole panel (``cfdna_normals/{normal}.bam``)."""
    normal_id = Path(relative).name.removesuffix(".bam")
    cfdna.write_normal_plasma_bam(
        _output(shared, relative), normal_id, shared.panel, shared.contigs, shared.params
    )


def _write_truth(patients: list[PatientDesign], truths: list[_SampleTruth], data_dir: Path) -> None:
    folder = data_dir / "truth"
    folder.mkdir(parents=True, exist_ok=True)
    patient_rows = []
    for patient in patients:
        row = {k: v for k, v in asdict(patient).items() if k not in ("samples", "index")}
        row["cd8_fraction_delta"] = patient.cd8_fraction_post - patient.cd8_fraction_baseline
        row.update({f"ctdna_{name}": value for name, value in patient.ctdna_truth().items()})
        patient_rows.append(row)
    pd.DataFrame(patient_rows).to_csv(folder / "patients.tsv", sep="\t", index=False)
    pd.DataFrame([t.sample for t in truths]).convert_dtypes().to_csv(
        folder / "samples.tsv", sep="\t", index=False
    )
    cells = [t.cells for t in truths if t.cells is not None]
    _stack(cells).to_csv(
        folder / "cells.tsv.gz",
        sep="\t",
        index=False,
        compression={"method": "gzip", "mtime": 0},
    )
    variants = [t.variants for t in truths if t.variants is not None]
    _stack(variants).to_csv(folder / "variants.tsv", sep="\t", index=False)


def _stack(tables: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
