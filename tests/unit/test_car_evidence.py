"""Whether a read proves a construct (carmscope.car.evidence)."""

import numpy as np
import pytest

from carmscope.car.evidence import AMBIGUOUS, EvidenceSettings, Placement, place_read
from carmscope.car.kmers import build_index
from carmscope.construct import Construct, Segment, read_construct, reverse_complement
from carmscope.genetic_code import reverse_translate

READ_LENGTH = 91
SETTINGS = EvidenceSettings()
BASES = "ACGT"

# Anti-CD19 FMC63 scFv (the binder of tisagenlecleucel), public protein sequence.
FMC63_VL = (
    "DIQMTQTTSSLSASLGDRVTISCRASQDISKYLNWYQQKPDGTVKLLIYHTSRLHSGVPSRFSGSGSGTDYSLTISNLEQEDIATYFC"
    "QQGNTLPYTFGGGTKLEIT"
)
FMC63_VH = (
    "EVKLQESGPGLVAPSQSLSVTCTVSGVSLPDYGVSWIRQPPRKGLEWLGVIWGSETTYYNSALKSRLTIIKDNSKSQVFLKMNSLQTDD"
    "TAIYYCAKHYYYGGSYAMDYWGQGTSVTVSS"
)
FOUR_1BB = "KRGRKKLLYIFKQPFMRPVQTTQEEDGCSCRFPEEEEGGCEL"
SECOND_CODONS = {
    "A": "GCT", "R": "CGG", "N": "AAT", "D": "GAT", "C": "TGT", "Q": "CAA", "E": "GAA",
    "G": "GGA", "H": "CAT", "I": "ATT", "L": "CTC", "K": "AAA", "M": "ATG", "F": "TTT",
    "P": "CCT", "S": "TCC", "T": "ACA", "W": "TGG", "Y": "TAT", "V": "GTC",
}  # fmt: skip
"""Another codon per residue: a second product codon-optimised differently."""


@pytest.fixture(scope="module")
def car():
    return read_construct()


@pytest.fixture(scope="module")
def index(car):
    return build_index([car])


def anti_cd19_car(car: Construct) -> Construct:
    """A second-generation anti-CD19 CAR on the same CD8a/CD3 zeta backbone (plus 4-1BB)."""
    parts = [
        ("CD8A_leader", car.segment_sequence("CD8A_leader"), False),
        ("FMC63_VL", "".join(SECOND_CODONS[a] for a in FMC63_VL), True),
        ("G4S3_linker", car.segment_sequence("G4S3_linker"), True),
        ("FMC63_VH", "".join(SECOND_CODONS[a] for a in FMC63_VH), True),
        ("CD8A_hinge_TM", car.segment_sequence("CD8A_hinge_TM"), False),
        ("TNFRSF9_ICD", reverse_translate(FOUR_1BB), False),
        ("CD247_zeta_ICD", car.segment_sequence("CD247_zeta_ICD"), False),
    ]
    segments, start = [], 1
    for name, sequence, specific in parts:
        segments.append(Segment("anti_CD19_CAR", name, start, start + len(sequence) - 1, specific))
        start += len(sequence)
    return Construct("anti_CD19_CAR", "".join(p[1] for p in parts), tuple(segments))


def with_errors(read: str, positions) -> str:
    """``read`` with a substitution at each position."""
    bases = list(read)
    for position in positions:
        bases[position] = BASES[(BASES.index(bases[position]) + 1) % 4]
    return "".join(bases)


def junction_read(car: Construct, overlap: int) -> str:
    """A read across the VH|hinge junction: its last ``overlap`` bases of VH, then hinge."""
    end_of_vh = car.segment("trastuzumab_VH").end  # 1-based
    start = end_of_vh - overlap
    return car.sequence[start : start + READ_LENGTH]


def test_scfv_read_is_placed_on_both_strands(car, index):
    read = car.sequence[300:391]
    sense = place_read(read, index, SETTINGS)
    antisense = place_read(reverse_complement(read), index, SETTINGS)
    assert isinstance(sense, Placement) and isinstance(antisense, Placement)
    assert (sense.diagonal, sense.reverse, sense.mismatches) == (300, False, 0)
    assert (antisense.diagonal, antisense.reverse) == (300, True)
    assert sense.span(car.length) == (300, 391)


@pytest.mark.parametrize("overlap", [40, 45, 60])
def test_junction_read_with_any_single_error_is_found(car, index, overlap):
    read = junction_read(car, overlap)
    for position in range(READ_LENGTH):
        placement = place_read(with_errors(read, [position]), index, SETTINGS)
        assert isinstance(placement, Placement), (overlap, position)
        assert placement.mismatches == 1


def test_reads_with_one_percent_errors_overlapping_40_bp_are_found(car, index):
    """At 1% errors a few reads get 3+ errors close together; 99% must be found."""
    rng = np.random.default_rng(2026)
    found = 0
    trials = 1000
    for trial in range(trials):
        overlap = 40 + trial % 20
        read = junction_read(car, overlap)
        errors = np.flatnonzero(rng.random(READ_LENGTH) < 0.01)
        if trial % 2:
            read = reverse_complement(with_errors(read, errors))
        else:
            read = with_errors(read, errors)
        found += isinstance(place_read(read, index, SETTINGS), Placement)
    assert found >= 0.99 * trials


def test_reads_inside_host_segments_never_count(car, index):
    for segment in car.host_segments:
        for start in range(segment.start - 1, segment.end - READ_LENGTH + 1, 7):
            read = car.sequence[start : start + READ_LENGTH]
            assert place_read(read, index, SETTINGS) is None
            assert place_read(reverse_complement(read), index, SETTINGS) is None


def test_too_short_an_overlap_is_not_enough(car, index):
    assert place_read(junction_read(car, 5), index, SETTINGS) is None


def test_random_reads_never_count(index):
    rng = np.random.default_rng(7)
    for _ in range(300):
        read = "".join(rng.choice(list(BASES), READ_LENGTH))
        assert place_read(read, index, SETTINGS) is None


def test_read_that_diverges_from_the_construct_is_rejected(car, index):
    read = car.sequence[100:140] + "".join(
        np.random.default_rng(1).choice(list(BASES), READ_LENGTH - 40)
    )
    loose = EvidenceSettings(max_mismatch_fraction=1.0)
    placement = place_read(read, index, loose)
    assert isinstance(placement, Placement) and placement.mismatches > 0.3 * READ_LENGTH
    assert place_read(read, index, SETTINGS) is None


def test_reads_of_an_absent_construct_on_the_same_backbone_do_not_count(car):
    cd19 = build_index([anti_cd19_car(car)])
    for start in range(0, car.length - READ_LENGTH + 1, 3):
        read = car.sequence[start : start + READ_LENGTH]
        assert place_read(read, cd19, SETTINGS) is None, start


def test_reads_go_to_the_construct_they_match(car):
    cd19 = anti_cd19_car(car)
    both = build_index([car, cd19])
    her2_read = place_read(car.sequence[400:491], both, SETTINGS)
    cd19_read = place_read(cd19.sequence[500:591], both, SETTINGS)
    assert her2_read.construct == 0
    assert cd19_read.construct == 1


def test_a_read_two_constructs_share_is_ambiguous(car):
    twin = Construct("twin", car.sequence, tuple(s.__class__(
        "twin", s.name, s.start, s.end, s.specific) for s in car.segments))  # fmt: skip
    both = build_index([car, twin])
    assert place_read(car.sequence[300:391], both, SETTINGS) == AMBIGUOUS


def test_settings_are_checked():
    with pytest.raises(ValueError, match="min_kmers"):
        EvidenceSettings(min_kmers=1)
    with pytest.raises(ValueError, match="max_mismatch_fraction"):
        EvidenceSettings(max_mismatch_fraction=1.5)
