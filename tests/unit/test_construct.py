"""CAR constructs: the shipped anti-HER2 CAR, translation, and validation of construct files."""

import re

import pytest

from carmscope.construct import (
    Construct,
    ConstructError,
    Segment,
    read_construct,
    read_constructs,
    read_fasta,
    reverse_complement,
    write_constructs,
)
from carmscope.construct_assembly import assemble_anti_her2_car
from carmscope.genetic_code import HUMAN_PREFERRED_CODONS, reverse_translate, translate

EXPECTED_SEGMENTS = [
    ("CD8A_leader", 1, 63, False),
    ("trastuzumab_VL", 64, 384, True),
    ("G4S3_linker", 385, 429, True),
    ("trastuzumab_VH", 430, 789, True),
    ("CD8A_hinge_TM", 790, 996, False),
    ("CD247_zeta_ICD", 997, 1332, False),
]


@pytest.fixture(scope="module")
def car_dir(repo):
    return repo / "resources" / "car"


@pytest.fixture(scope="module")
def car(car_dir):
    return read_construct(car_dir / "anti_her2_car.fa", car_dir / "anti_her2_car.segments.tsv")


# --- the shipped resource ---------------------------------------------------------------------


def test_committed_resource_equals_a_fresh_assembly(car_dir, car, tmp_path):
    fresh = assemble_anti_her2_car(car_dir / "parts")
    assert car == fresh
    write_constructs([fresh], tmp_path / "car.fa", tmp_path / "car.tsv")
    assert (tmp_path / "car.fa").read_bytes() == (car_dir / "anti_her2_car.fa").read_bytes()
    assert (tmp_path / "car.tsv").read_bytes() == (
        car_dir / "anti_her2_car.segments.tsv"
    ).read_bytes()


def test_resource_files_have_the_documented_shape(car_dir):
    fasta = (car_dir / "anti_her2_car.fa").read_text().splitlines()
    assert fasta[0] == ">anti_HER2_CAR"
    assert all(len(line) == 60 for line in fasta[1:-1])
    assert 0 < len(fasta[-1]) <= 60
    header = (car_dir / "anti_her2_car.segments.tsv").read_text().splitlines()[0]
    assert header.split("\t") == ["construct", "segment", "start", "end", "specific"]


def test_segments_tile_the_construct_in_the_documented_order(car):
    assert car.name == "anti_HER2_CAR"
    assert car.length == 1332
    assert [(s.name, s.start, s.end, s.specific) for s in car.segments] == EXPECTED_SEGMENTS
    assert car.junctions == ((63, 64), (384, 385), (429, 430), (789, 790), (996, 997))
    assert [s.name for s in car.specific_segments] == [
        "trastuzumab_VL",
        "G4S3_linker",
        "trastuzumab_VH",
    ]
    assert [s.name for s in car.host_segments] == [
        "CD8A_leader",
        "CD8A_hinge_TM",
        "CD247_zeta_ICD",
    ]


def test_scfv_translates_to_the_trastuzumab_proteins(car, car_dir):
    proteins = read_fasta(car_dir / "parts" / "trastuzumab_fv.faa")
    for name in ("trastuzumab_VL", "G4S3_linker", "trastuzumab_VH"):
        assert translate(car.segment_sequence(name)) == proteins[name]


def test_host_parts_are_the_native_sequences_in_frame(car, car_dir):
    parts = read_fasta(car_dir / "parts" / "car_host_parts.fa")
    assert car.segment_sequence("CD8A_leader") == parts["CD8A_leader"]
    assert car.segment_sequence("CD8A_hinge_TM") == parts["CD8A_hinge_TM"]
    # the published zeta part ends with the first base of the stop codon, dropped in frame
    assert len(parts["CD247_zeta_ICD"]) == 337
    assert car.segment_sequence("CD247_zeta_ICD") == parts["CD247_zeta_ICD"][:336]
    protein = translate(car.sequence)
    assert protein.startswith("MALPVTALLLPLALLLHAARPDIQMTQ")
    assert protein.endswith(
        "LYCRVKFSRSADAPAYKQGQNQLYNELNLGRREEYDVLDKRRGRDPEMGGKPRRKNPQEGLYNELQKDKMAEAYSEIGMKGERRRGK"
        "GHDGLYQGLSTATKDTYDALHMQALPPR"
    )
    assert "*" not in protein


# --- translation ------------------------------------------------------------------------------


def test_reverse_translation_uses_one_documented_codon_per_residue():
    residues = "ARNDCQEGHILKMFPSTWYV"
    dna = reverse_translate(residues.lower())
    assert dna == "".join(HUMAN_PREFERRED_CODONS[r] for r in residues)
    assert HUMAN_PREFERRED_CODONS["R"] == "AGA"
    assert HUMAN_PREFERRED_CODONS["L"] == "CTG"
    assert translate(dna) == residues
    assert translate(reverse_translate("MK*")) == "MK*"


@pytest.mark.parametrize("protein", ["MBK", "MXK", "M K"])
def test_reverse_translation_rejects_unknown_residues(protein):
    with pytest.raises(ValueError, match="cannot reverse-translate"):
        reverse_translate(protein)


def test_translate_rejects_partial_codons_and_marks_unknown_codons():
    with pytest.raises(ValueError, match="whole number of codons"):
        translate("ATGA")
    assert translate("ATGNNNTAA") == "MX*"
    assert reverse_complement("AACGTN") == "NACGTT"


# --- specificity ------------------------------------------------------------------------------


def test_only_windows_inside_one_host_segment_are_not_specific(car):
    assert not car.is_specific_window(1, 63)  # the leader alone
    assert car.is_specific_window(40, 70)  # leader-VL junction
    assert car.is_specific_window(100, 130)  # VL
    assert not car.is_specific_window(800, 900)  # hinge/TM
    assert car.is_specific_window(990, 1010)  # hinge/TM-zeta junction: both sides host-derived
    assert not car.is_specific_window(1000, 1332)
    kmers = car.specific_kmers(25)
    hinge = car.segment_sequence("CD8A_hinge_TM")
    assert hinge[:25] not in kmers
    assert car.sequence[985:1010] in kmers
    assert car.sequence[100:125] in kmers


# --- validation -------------------------------------------------------------------------------

GOOD_SEQUENCE = "ACGT" * 30  # 120 bp
HEADER = "construct\tsegment\tstart\tend\tspecific\n"
GOOD_ROWS = "c1\ta\t1\t40\tfalse\nc1\tb\t41\t80\ttrue\nc1\tc\t81\t120\tfalse\n"


def _files(tmp_path, fasta, segments):
    fasta_path, segments_path = tmp_path / "c.fa", tmp_path / "c.tsv"
    fasta_path.write_text(fasta)
    segments_path.write_text(segments)
    return fasta_path, segments_path


def _problems(tmp_path, fasta, segments):
    paths = _files(tmp_path, fasta, segments)
    with pytest.raises(ConstructError) as caught:
        read_constructs(*paths)
    return paths, caught.value.problems


def test_a_valid_construct_reads_back(tmp_path):
    paths = _files(tmp_path, f">c1 a test\n{GOOD_SEQUENCE.lower()}\n", HEADER + GOOD_ROWS)
    (construct,) = read_constructs(*paths)
    assert construct.sequence == GOOD_SEQUENCE
    assert construct.segments[1] == Segment("c1", "b", 41, 80, True)


FASTA_CASES = {
    # case: (fasta, segments, line, column, message)
    "invalid character": (
        f">c1\n{GOOD_SEQUENCE[:60]}\n{GOOD_SEQUENCE[60:70]}X{GOOD_SEQUENCE[71:]}\n",
        HEADER + GOOD_ROWS,
        3,
        11,
        "record 'c1' position 71: invalid character 'X'",
    ),
    "duplicate record": (
        f">c1\n{GOOD_SEQUENCE}\n>c1\n{GOOD_SEQUENCE}\n",
        HEADER + GOOD_ROWS,
        3,
        2,
        "duplicate record 'c1' (first at line 1)",
    ),
    "empty fasta": ("", HEADER + GOOD_ROWS, 1, 1, "empty file"),
    "sequence before header": (f"ACGT\n>c1\n{GOOD_SEQUENCE}\n", HEADER + GOOD_ROWS, 1, 1, "before"),
    "record without segments": (
        f">c1\n{GOOD_SEQUENCE}\n>c2\n{GOOD_SEQUENCE}\n",
        HEADER + GOOD_ROWS,
        3,
        2,
        "record 'c2' has no segment",
    ),
}


@pytest.mark.parametrize("case", FASTA_CASES)
def test_fasta_problems_name_file_line_and_column(tmp_path, case):
    fasta, segments, line, column, message = FASTA_CASES[case]
    (fasta_path, _), problems = _problems(tmp_path, fasta, segments)
    assert any(
        p.startswith(f"{fasta_path}:{line}:{column}: ") and message in p for p in problems
    ), problems


SEGMENT_CASES = {
    # case: (segment rows after the header, line, column, message)
    "unknown construct": (GOOD_ROWS + "c9\td\t1\t10\ttrue\n", 5, 1, "unknown construct 'c9'"),
    "start not an integer": (
        "c1\ta\t1\t40\tfalse\nc1\tb\tx41\t80\ttrue\nc1\tc\t81\t120\tfalse\n",
        3,
        6,
        "start 'x41' is not an integer",
    ),
    "end not an integer": (
        "c1\ta\t1\t40\tfalse\nc1\tb\t41\t8.0\ttrue\nc1\tc\t81\t120\tfalse\n",
        3,
        9,
        "end '8.0' is not an integer",
    ),
    "start after end": (
        "c1\ta\t1\t40\tfalse\nc1\tb\t80\t41\ttrue\nc1\tc\t81\t120\tfalse\n",
        3,
        6,
        "start 80 is after end 41",
    ),
    "end beyond the sequence": (
        "c1\ta\t1\t40\tfalse\nc1\tb\t41\t80\ttrue\nc1\tc\t81\t121\tfalse\n",
        4,
        9,
        "end 121 is beyond the 120 bp of 'c1'",
    ),
    "overlap": (
        "c1\ta\t1\t40\tfalse\nc1\tb\t35\t80\ttrue\nc1\tc\t81\t120\tfalse\n",
        3,
        6,
        "'b' (35-80) overlaps 'a' (1-40)",
    ),
    "gap": (
        "c1\ta\t1\t40\tfalse\nc1\tb\t45\t80\ttrue\nc1\tc\t81\t120\tfalse\n",
        3,
        6,
        "positions 41-44 are in no segment",
    ),
    "gap at the end": (
        "c1\ta\t1\t40\tfalse\nc1\tb\t41\t80\ttrue\nc1\tc\t81\t110\tfalse\n",
        4,
        9,
        "positions 111-120 are in no segment",
    ),
    "gap at the start": (
        "c1\ta\t3\t40\tfalse\nc1\tb\t41\t80\ttrue\nc1\tc\t81\t120\tfalse\n",
        2,
        6,
        "positions 1-2 are in no segment",
    ),
    "specific not true or false": (
        "c1\ta\t1\t40\tfalse\nc1\tb\t41\t80\tyes\nc1\tc\t81\t120\tfalse\n",
        3,
        12,
        "specific 'yes' is not true or false",
    ),
    "duplicate segment": (
        "c1\ta\t1\t40\tfalse\nc1\ta\t41\t80\ttrue\nc1\tc\t81\t120\tfalse\n",
        3,
        4,
        "duplicate segment 'a'",
    ),
    "nothing could prove it": ("c1\twhole\t1\t120\tfalse\n", 2, 16, "no specific segment"),
    "wrong number of fields": (GOOD_ROWS + "c1\td\t1\n", 5, 1, "3 fields, expected 5"),
}


@pytest.mark.parametrize("case", SEGMENT_CASES)
def test_segment_table_problems_name_file_line_and_column(tmp_path, case):
    rows, line, column, message = SEGMENT_CASES[case]
    (_, segments_path), problems = _problems(tmp_path, f">c1\n{GOOD_SEQUENCE}\n", HEADER + rows)
    assert any(
        p.startswith(f"{segments_path}:{line}:{column}: ") and message in p for p in problems
    ), problems


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ("", "empty file"),
        ("construct\tsegment\tstart\tend\nc1\ta\t1\t120\n", "missing column(s) specific"),
        (HEADER, "no segment rows"),
    ],
)
def test_segment_table_shape_problems_point_at_the_header(tmp_path, segments, message):
    (_, segments_path), problems = _problems(tmp_path, f">c1\n{GOOD_SEQUENCE}\n", segments)
    assert any(p.startswith(f"{segments_path}:1:1: ") and message in p for p in problems), problems


def test_all_problems_are_reported_at_once(tmp_path):
    rows = "c1\ta\tone\t40\tfalse\nc1\tb\t41\t80\tmaybe\nc9\tc\t81\t120\tfalse\n"
    _, problems = _problems(tmp_path, f">c1\n{GOOD_SEQUENCE[:-1]}Z\n", HEADER + rows)
    messages = "\n".join(problems)
    for expected in ("invalid character 'Z'", "not an integer", "not true or false", "'c9'"):
        assert expected in messages
    assert all(re.match(r"^.+:\d+:\d+: ", p) for p in problems)


def test_construct_error_is_a_value_error_listing_every_problem(tmp_path):
    paths = _files(tmp_path, "", "")
    with pytest.raises(ValueError) as caught:
        read_constructs(*paths)
    assert str(caught.value) == "\n".join(caught.value.problems)
    assert len(caught.value.problems) == 2


def test_several_constructs_in_one_fasta(tmp_path):
    second = "GGCCTTAA" * 10  # 80 bp
    fasta = f">c1\n{GOOD_SEQUENCE[:60]}\n{GOOD_SEQUENCE[60:]}\n>c2 second\n{second}\n"
    # columns in another order plus an extra one; rows interleaved and out of order
    segments = (
        "segment\tconstruct\tspecific\tstart\tend\tnote\n"
        "binder\tc2\ttrue\t31\t80\tscFv\n"
        "a\tc1\tfalse\t1\t40\t\n"
        "leader\tc2\tfalse\t1\t30\t\n"
        "b\tc1\ttrue\t41\t80\t\n"
        "c\tc1\tFALSE\t81\t120\t\n"
    )
    constructs = read_constructs(*_files(tmp_path, fasta, segments))
    assert [c.name for c in constructs] == ["c1", "c2"]
    assert constructs[0].sequence == GOOD_SEQUENCE
    assert constructs[1].sequence == second
    assert [s.name for s in constructs[1].segments] == ["leader", "binder"]
    assert constructs[1].junctions == ((30, 31),)


def test_two_host_segments_prove_a_construct_through_their_junction(tmp_path):
    rows = "c1\ta\t1\t60\tfalse\nc1\tb\t61\t120\tfalse\n"
    (construct,) = read_constructs(*_files(tmp_path, f">c1\n{GOOD_SEQUENCE}\n", HEADER + rows))
    assert construct.specific_segments == ()
    assert construct.specific_kmers(10) == {GOOD_SEQUENCE[i : i + 10] for i in range(51, 60)}


def test_a_construct_can_be_built_directly():
    segments = (Segment("x", "a", 1, 4, False), Segment("x", "b", 5, 8, True))
    construct = Construct("x", "ACGTACGT", segments)
    assert construct.segment_sequence("b") == "ACGT"
    with pytest.raises(KeyError):
        construct.segment("z")
