"""Synthetic T cell receptor repertoires with known truth (the ``tcr`` stage's test data).

Which patients get what (by template, :data:`TCR_PLANS`): bulk repertoires of tumour and blood
(``tcr`` samples: tumour at the biopsy days, blood at days 0, 8 and 29) written as Adaptive
immunoSEQ v2, immunoSEQ v3 or AIRR rearrangement TSVs; or 10x ``filtered_contig_annotations.csv``
(``vdj`` of the scRNA biopsies) whose barcodes are the biopsy's T cells.

Bulk model
    Per patient and tissue a clone universe (``n_clones`` TRB clones: random IMGT TRBV gene and a
    CDR3 ``CASS...F``) with power-law (Pareto, shape 1.2) frequencies. Designed changes from the
    baseline to every post-infusion sample (patients whose plan expands): ``N_EXPANDED``
    clones of baseline frequency 2e-4 to 2e-3 multiplied by ``FOLD``; ``N_NEW`` clones absent at
    baseline at frequency ``NEW_FREQUENCY`` after; ``N_CONTRACTED`` of the 30 largest clones
    divided by ``FOLD``. Each sample's templates are a multinomial draw of ``depth`` from its
    frequencies (the unchanged clones are null: same frequency up to renormalisation). The blood
    of a patient with a tumour repertoire also holds the tumour's expanded and new clones,
    unchanged at ``SHARED_FREQUENCY`` (tumour-vs-blood sharing with a known answer).
vdj model
    T cells (``cd8_t``, ``cd4_t``, ``treg``) of the biopsy each get a clone: in a post-infusion
    biopsy of an expanding patient ``VDJ_EXPANDED`` clones take ``VDJ_SHARE`` of the T cells each
    (one cell each at baseline) and ``VDJ_NEW`` clones as many (absent at baseline), CD8 T cells
    first; every other T cell its own clone.

Truth: clone-level (``truth/tcr_clones.tsv``: patient, tissue, clone, role) and patient-level
(``truth/tcr_patients.tsv``: ``tcr_expansion`` and which tissue decides, as the issue defines
it); each sample's written clonality is in ``truth/samples.tsv`` (``tcr_clonality``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from carmscope.tcr.diversity import clonality
from carmscope.tcr.genes import read_gene_table
from carmscope.vocabulary import BLOOD, SCRNA, TCR, TUMOUR

TCR_PLANS: dict[int, dict[str, object]] = {
    # template -> tumour and blood formats ('' = none), vdj on the scRNA biopsies, expansion
    0: {TUMOUR: "immunoseq_v2", BLOOD: "airr", "vdj": False, "expands": True},
    1: {TUMOUR: "", BLOOD: "", "vdj": True, "expands": True},
    3: {TUMOUR: "", BLOOD: "", "vdj": True, "expands": True},
    5: {TUMOUR: "immunoseq_v3", BLOOD: "immunoseq_v2", "vdj": False, "expands": True},
    7: {TUMOUR: "immunoseq_v3", BLOOD: "immunoseq_v3", "vdj": False, "expands": False},
    9: {TUMOUR: "airr", BLOOD: "airr", "vdj": False, "expands": True},
    13: {TUMOUR: "airr_baseline_only", BLOOD: "", "vdj": False, "expands": True},
}
"""Templates 7 (CAR-negative) expands nothing; 13 has only a baseline tumour repertoire (not
evaluable); the rest expand. ``airr_baseline_only``: AIRR, the baseline sample only."""

TUMOUR_DAYS = {"screening": -21, "D8": 8}
BLOOD_DAYS = {"C1D0": 0, "D8": 8, "D29": 29}
N_CLONES = {TUMOUR: 3000, BLOOD: 6000}
DEPTH = {TUMOUR: 20000, BLOOD: 40000}
N_EXPANDED, N_NEW, N_CONTRACTED = 6, 4, 4
FOLD = 12.0
NEW_FREQUENCY = 3e-3
SHARED_FREQUENCY = 5e-4
"""Blood frequency (before and after infusion) of the tumour's expanded and new clones, for
patients with both repertoires: tumour-vs-blood sharing has a known answer."""
VDJ_EXPANDED, VDJ_NEW, VDJ_SHARE = 2, 1, 0.12
T_CELL_TYPES = ("cd8_t", "cd4_t", "treg")
AMINO_ACIDS = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
FUNCTIONAL_TRBV = (
    "TRBV2", "TRBV3-1", "TRBV4-1", "TRBV4-2", "TRBV4-3", "TRBV5-1", "TRBV5-4", "TRBV5-5",
    "TRBV5-6", "TRBV6-1", "TRBV6-2", "TRBV6-4", "TRBV6-5", "TRBV6-6", "TRBV7-2", "TRBV7-3",
    "TRBV7-6", "TRBV7-7", "TRBV7-8", "TRBV7-9", "TRBV9", "TRBV10-1", "TRBV10-2", "TRBV10-3",
    "TRBV11-1", "TRBV11-2", "TRBV11-3", "TRBV12-3", "TRBV12-4", "TRBV12-5", "TRBV13", "TRBV14",
    "TRBV15", "TRBV18", "TRBV19", "TRBV20-1", "TRBV24-1", "TRBV25-1", "TRBV27", "TRBV28",
    "TRBV29-1", "TRBV30",
)  # fmt: skip
TRBJ = ("TRBJ1-1", "TRBJ1-2", "TRBJ1-5", "TRBJ2-1", "TRBJ2-3", "TRBJ2-5", "TRBJ2-7")


def _rng(seed: int, *keys: object) -> np.random.Generator:
    from carmscope.synthetic.design import rng_for

    return rng_for(seed, *keys)


def tcr_sample_plan(patient_id: str, template: int) -> list[dict[str, object]]:
    """The patient's ``tcr`` samples as keyword arguments of ``SampleDesign``."""
    plan = TCR_PLANS.get(template)
    if not plan:
        return []
    samples = []
    for tissue, days in ((TUMOUR, TUMOUR_DAYS), (BLOOD, BLOOD_DAYS)):
        fmt = str(plan[tissue])
        if not fmt:
            continue
        if fmt.endswith("_baseline_only"):
            fmt = fmt.removesuffix("_baseline_only")
            days = {k: v for k, v in days.items() if v <= 0}
        for timepoint, day in days.items():
            sample_id = f"{patient_id}_{timepoint}_tcr{tissue[0]}"
            suffix = "tsv"
            samples.append(
                {
                    "sample_id": sample_id,
                    "patient_id": patient_id,
                    "timepoint": timepoint,
                    "day": day,
                    "assay": TCR,
                    "tissue": tissue,
                    "counts": f"tcr/{sample_id}.{fmt}.{suffix}",
                }
            )
    return samples


def vdj_path(template: int, sample_id: str) -> str:
    """The ``vdj`` file of a scRNA biopsy ('' when the template has none)."""
    plan = TCR_PLANS.get(template)
    if not plan or not plan["vdj"]:
        return ""
    return f"vdj/{sample_id}.filtered_contig_annotations.csv"


def _cdr3s(rng: np.random.Generator, n: int) -> np.ndarray:
    seen: set[str] = set()
    out = []
    while len(out) < n:
        middle = "".join(rng.choice(AMINO_ACIDS, int(rng.integers(4, 9))))
        cdr3 = f"CASS{middle}{rng.choice(['EQYF', 'YEQYF', 'ETQYF', 'NTEAFF', 'GELFF'])}"
        if cdr3 not in seen:
            seen.add(cdr3)
            out.append(cdr3)
    return np.array(out)


def clone_universe(seed: int, patient_id: str, tissue: str, expands: bool) -> pd.DataFrame:
    """One patient's clones in one tissue: ``cdr3_aa``, ``v_gene``, ``j_gene``, ``role``,
    ``baseline_frequency``, ``post_frequency`` (the designed truth).

    Drawn once per process and argument set (every repertoire sample of a patient's tissue,
    and the truth tables, use the same universe: drawing it took ~10% of a patient's job) and
    returned as a copy.
    """
    return _clone_universe(seed, patient_id, tissue, expands).copy()


@lru_cache(maxsize=64)
def _clone_universe(seed: int, patient_id: str, tissue: str, expands: bool) -> pd.DataFrame:
    rng = _rng(seed, patient_id, "tcr", tissue)
    n = N_CLONES[tissue] + N_NEW
    clones = pd.DataFrame(
        {
            "cdr3_aa": _cdr3s(rng, n),
            "v_gene": rng.choice(FUNCTIONAL_TRBV, n),
            "j_gene": rng.choice(TRBJ, n),
        }
    )
    weights = rng.pareto(1.2, n) + 1.0
    base = weights / weights[:-N_NEW].sum()
    base[-N_NEW:] = 0.0
    post = base.copy()
    role = np.full(n, "unchanged", dtype=object)
    if expands:
        order = np.argsort(-base[:-N_NEW], kind="stable")
        contracted = order[:30][rng.choice(30, N_CONTRACTED, replace=False)]
        middle = np.flatnonzero((base >= 2e-4) & (base <= 2e-3))
        expanded = rng.choice(middle, N_EXPANDED, replace=False)
        post[expanded] *= FOLD
        post[contracted] /= FOLD
        post[-N_NEW:] = NEW_FREQUENCY
        role[expanded], role[contracted], role[-N_NEW:] = "expanded", "contracted", "new"
    clones["role"] = role
    clones["baseline_frequency"] = base
    clones["post_frequency"] = post / post.sum()
    return clones


def patient_universe(seed: int, patient, tissue: str) -> pd.DataFrame:
    """:func:`clone_universe` of a patient's tissue; the blood of a patient with a tumour
    repertoire also carries the tumour's expanded and new clones, unchanged, at
    :data:`SHARED_FREQUENCY` (``shared_with_tumour`` True)."""
    plan = TCR_PLANS[patient.template]
    expands = bool(plan["expands"])
    clones = clone_universe(seed, patient.patient_id, tissue, expands).assign(
        shared_with_tumour=False
    )
    if tissue != BLOOD or not plan[TUMOUR]:
        return clones
    tumour = clone_universe(seed, patient.patient_id, TUMOUR, expands)
    shared = tumour[tumour["role"].isin(["expanded", "new"])].assign(
        role="unchanged",
        baseline_frequency=SHARED_FREQUENCY,
        post_frequency=SHARED_FREQUENCY,
        shared_with_tumour=True,
    )
    clones = pd.concat([clones, shared], ignore_index=True)
    for column in ("baseline_frequency", "post_frequency"):
        clones[column] = clones[column] / clones[column].sum()
    return clones


def _draw(seed: int, sample_id: str, frequencies: np.ndarray, depth: int) -> np.ndarray:
    return _rng(seed, sample_id, "tcr_counts").multinomial(depth, frequencies)


_ADAPTIVE = None


def _adaptive_name(gene: str) -> str:
    global _ADAPTIVE
    if _ADAPTIVE is None:
        _ADAPTIVE = {imgt: adaptive for adaptive, imgt in read_gene_table().items()}
    return _ADAPTIVE[gene]


def _nucleotide(rng: np.random.Generator, cdr3: str) -> str:
    return "".join(rng.choice(list("ACGT"), 3 * len(cdr3)))


def write_repertoire(path: str | os.PathLike, fmt: str, clones: pd.DataFrame, seed: int) -> None:
    """Write clones (``cdr3_aa``, ``v_gene``, ``j_gene``, ``count``) in one format, with a few
    non-productive rearrangements and (immunoSEQ) one clone split over two nucleotide
    sequences, as real exports have."""
    rng = _rng(seed, Path(path).name, "format")  # the name, not the folder: same bytes anywhere
    rows = clones[clones["count"] > 0].reset_index(drop=True)
    junk = rows.head(5).assign(cdr3_aa="", count=3, productive=False)
    stop = rows.head(3).assign(cdr3_aa=lambda f: f["cdr3_aa"].str[:4] + "*" + "F")
    stop = stop.assign(count=2, productive=False)
    table = pd.concat([rows.assign(productive=True), junk, stop], ignore_index=True)
    if len(rows) and rows.loc[0, "count"] > 1:  # convergent: same CDR3 and V, two sequences
        half = rows.loc[0, "count"] // 2
        table.loc[0, "count"] -= half
        table = pd.concat([table, rows.head(1).assign(count=half, productive=True)])
    nucleotides = [_nucleotide(rng, cdr3 or "CASSX") for cdr3 in table["cdr3_aa"]]
    status = np.where(
        table["productive"],
        "In",
        np.where(table["cdr3_aa"].str.contains("*", regex=False), "Stop", "Out"),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt.startswith("immunoseq"):
        v = [_adaptive_name(g) for g in table["v_gene"]]
        j = [_adaptive_name(g) for g in table["j_gene"]]
        if fmt == "immunoseq_v2":
            out = pd.DataFrame(
                {
                    "nucleotide": nucleotides,
                    "aminoAcid": table["cdr3_aa"],
                    "count (templates/reads)": table["count"],
                    "frequencyCount (%)": 100 * table["count"] / table["count"].sum(),
                    "vFamilyName": [name.split("-")[0] for name in v],
                    "vGeneName": v,
                    "jGeneName": j,
                    "sequenceStatus": status,
                }
            )
        else:
            out = pd.DataFrame(
                {
                    "rearrangement": nucleotides,
                    "amino_acid": table["cdr3_aa"],
                    "frame_type": status,
                    "templates": table["count"],
                    "seq_reads": table["count"] * 7,
                    "v_resolved": [f"{name}*01" for name in v],
                    "j_resolved": [f"{name}*01" for name in j],
                }
            )
    else:
        out = pd.DataFrame(
            {
                "sequence_id": [f"seq{i + 1}" for i in range(len(table))],
                "sequence": nucleotides,
                "v_call": table["v_gene"] + "*01",
                "j_call": table["j_gene"] + "*01",
                "junction_aa": table["cdr3_aa"],
                "productive": np.where(table["productive"], "T", "F"),
                "locus": "TRB",
                "duplicate_count": table["count"],
            }
        )
    out.to_csv(path, sep="\t", index=False)


def write_tcr_sample(path, sample, patient, params) -> dict[str, object]:
    """Write one ``tcr`` sample's repertoire; return its truth row additions."""
    fmt = Path(sample.counts).suffixes[-2].lstrip(".")
    universe = patient_universe(params.seed, patient, sample.tissue)
    frequencies = universe["post_frequency" if sample.day > 0 else "baseline_frequency"]
    counts = _draw(params.seed, sample.sample_id, frequencies.to_numpy(), DEPTH[sample.tissue])
    write_repertoire(path, fmt, universe.assign(count=counts), params.seed)
    return {
        "tissue": sample.tissue,
        "tcr_format": fmt,
        "tcr_templates": int(counts.sum()),
        "tcr_clones": int((counts > 0).sum()),
        "tcr_clonality": clonality(counts),
    }


def vdj_clones(seed: int, patient_id: str, post: bool, cells: pd.DataFrame, expands: bool):
    """Each T cell's clone in one biopsy (``barcode``, ``cdr3_aa``, ``v_gene``, ``j_gene``,
    ``role``), and the designed clones (same for every biopsy of the patient)."""
    rng = _rng(seed, patient_id, "vdj")
    designed = pd.DataFrame(
        {
            "cdr3_aa": _cdr3s(rng, VDJ_EXPANDED + VDJ_NEW),
            "v_gene": rng.choice(FUNCTIONAL_TRBV, VDJ_EXPANDED + VDJ_NEW),
            "j_gene": rng.choice(TRBJ, VDJ_EXPANDED + VDJ_NEW),
            "role": ["expanded"] * VDJ_EXPANDED + ["new"] * VDJ_NEW,
        }
    )
    t_cells = cells[cells["cell_type"].isin(T_CELL_TYPES)].copy()
    # CD8 T cells first, then in barcode order
    t_cells = t_cells.sort_values(
        ["cell_type", "barcode"], key=lambda s: s != "cd8_t" if s.name == "cell_type" else s
    )
    n = len(t_cells)
    assigned = []
    if expands:
        share = max(5, round(VDJ_SHARE * n)) if post else 1
        for row in designed.itertuples(index=False):
            if row.role == "new" and not post:
                continue
            assigned += [row] * share
    assigned = assigned[:n]
    other = pd.DataFrame(
        {
            "cdr3_aa": _cdr3s(_rng(seed, patient_id, "vdj", post), n - len(assigned) + 50)[50:],
        }
    )
    rng_cells = _rng(seed, patient_id, "vdj_genes", post)
    other["v_gene"] = rng_cells.choice(FUNCTIONAL_TRBV, len(other))
    other["j_gene"] = rng_cells.choice(TRBJ, len(other))
    other["role"] = "unchanged"
    chosen = pd.concat([pd.DataFrame(assigned, columns=designed.columns), other], ignore_index=True)
    chosen.insert(0, "barcode", t_cells["barcode"].to_numpy())
    chosen["cell_type"] = t_cells["cell_type"].to_numpy()
    return chosen, designed


def write_vdj(path, sample, patient, cells: pd.DataFrame, params) -> dict[str, object]:
    """Write a scRNA biopsy's ``filtered_contig_annotations.csv``: one productive TRB and TRA
    contig per T cell and, for every fifth, a non-productive TRB contig with fewer UMIs."""
    expands = bool(TCR_PLANS[patient.template]["expands"])
    chosen, _ = vdj_clones(params.seed, patient.patient_id, sample.day > 0, cells, expands)
    rng = _rng(params.seed, sample.sample_id, "vdj_contigs")
    rows = []
    for i, cell in enumerate(chosen.itertuples(index=False)):
        umis = int(rng.integers(3, 20))
        base = {"barcode": cell.barcode, "is_cell": "True", "high_confidence": "True"}
        rows.append(
            base
            | {
                "chain": "TRB",
                "v_gene": cell.v_gene,
                "j_gene": cell.j_gene,
                "productive": "True",
                "cdr3": cell.cdr3_aa,
                "umis": umis,
            }
        )
        rows.append(
            base
            | {
                "chain": "TRA",
                "v_gene": "TRAV1-2",
                "j_gene": "TRAJ33",
                "productive": "True",
                "cdr3": "CAVMDSNYQLIW",
                "umis": umis,
            }
        )
        if i % 5 == 0:
            rows.append(
                base
                | {
                    "chain": "TRB",
                    "v_gene": "TRBV2",
                    "j_gene": "TRBJ1-1",
                    "productive": "False",
                    "cdr3": "None",
                    "umis": 1,
                }
            )
    table = pd.DataFrame(rows)
    table.insert(2, "contig_id", [f"{b}_contig_{i + 1}" for i, b in enumerate(table["barcode"])])
    table["reads"] = table["umis"] * 50
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    counts = chosen.groupby(["v_gene", "cdr3_aa"]).size().to_numpy()
    return {
        "tcr_format": "10x_vdj",
        "tcr_templates": len(chosen),
        "tcr_clonality": clonality(counts),
    }


def truth_tables(patients, params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clone-level and patient-level truth of the patients' repertoires."""
    clone_rows, patient_rows = [], []
    for patient in patients:
        plan = TCR_PLANS.get(patient.template)
        if not plan:
            continue
        expands = bool(plan["expands"])
        evaluable = {}
        for tissue in (TUMOUR, BLOOD):
            mine = [s for s in patient.samples if s.assay == TCR and s.tissue == tissue]
            if not mine and plan["vdj"] and tissue == TUMOUR:
                mine = [s for s in patient.samples if s.assay == SCRNA and s.vdj]
                _, designed = vdj_clones(
                    params.seed,
                    patient.patient_id,
                    True,
                    pd.DataFrame({"barcode": [], "cell_type": []}),
                    expands,
                )
                universe = designed if expands else designed.iloc[0:0]
            elif mine:
                universe = patient_universe(params.seed, patient, tissue)
            else:
                continue
            evaluable[tissue] = any(s.day <= 0 for s in mine) and any(s.day > 0 for s in mine)
            changed = universe[universe["role"] != "unchanged"]
            clone_rows.append(
                changed.assign(
                    patient_id=patient.patient_id,
                    tissue=tissue,
                    clone_id=changed["v_gene"] + ":" + changed["cdr3_aa"],
                )[["patient_id", "tissue", "clone_id", "cdr3_aa", "v_gene", "role"]]
            )
        decider = TUMOUR if evaluable.get(TUMOUR) else BLOOD if evaluable.get(BLOOD) else ""
        both = evaluable.get(TUMOUR) and BLOOD in evaluable
        shared = N_EXPANDED + N_NEW if expands else 0
        patient_rows.append(
            {
                "patient_id": patient.patient_id,
                "tcr_expansion": expands if decider else pd.NA,
                "tcr_expansion_tissue": decider,
                "tcr_tumour_evaluable": bool(evaluable.get(TUMOUR)),
                "tcr_blood_evaluable": bool(evaluable.get(BLOOD)),
                "tcr_tumour_expanded_in_blood": shared if both else pd.NA,
            }
        )
    clones = (
        pd.concat(clone_rows, ignore_index=True)
        if clone_rows
        else pd.DataFrame(columns=["patient_id", "tissue", "clone_id", "cdr3_aa", "v_gene", "role"])
    )
    return clones, pd.DataFrame(patient_rows)


def write_truth(folder: str | os.PathLike, patients, params) -> None:
    """``truth/tcr_clones.tsv`` (designed changed clones) and ``truth/tcr_patients.tsv``."""
    clones, table = truth_tables(patients, params)
    clones.to_csv(Path(folder) / "tcr_clones.tsv", sep="\t", index=False)
    table.to_csv(Path(folder) / "tcr_patients.tsv", sep="\t", index=False)
