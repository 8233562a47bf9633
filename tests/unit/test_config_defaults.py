"""Every default lives in config/schemas/config.schema.yaml.

The workflow fills the config from the schema (``validate(..., set_default=True)``) and passes
every value to the steps; nothing in the workflow or its wiring supplies a default of its own.
The domain functions keep defaults for library users (who call them without the workflow):
those must equal the schema's, and config/README.md documents the same values, so a default
has one answer wherever it is read.
"""

import dataclasses
import inspect
import re
from pathlib import Path

import pytest
import yaml

from carmscope import construct
from carmscope.car import calls as car_calls
from carmscope.car import cells, kmers, matrix_feature, sample
from carmscope.car.evidence import EvidenceSettings
from carmscope.car.scan import ScanSettings
from carmscope.ctdna import background, calls, response
from carmscope.ctdna.alleles import AlleleFilters
from carmscope.ctdna.cohort import CallSettings
from carmscope.expression import annotation, composition, paired, scoring
from carmscope.expression.qc import QCThresholds
from carmscope.tables.patients import TableSettings
from tests.config_schema import SCHEMA, with_defaults


def schema_default(key: str):
    """The schema's default of a dotted key (``car.kmer_size``), as the workflow fills it."""
    value = with_defaults()
    for part in key.split("."):
        value = value[part]
    return value


def field(cls, name: str):
    """The default of a dataclass or named-tuple field."""
    if not dataclasses.is_dataclass(cls):
        return cls._field_defaults[name]
    (found,) = (f for f in dataclasses.fields(cls) if f.name == name)
    return found.default


def fields(prefix: str, cls, leave_out=()):
    """``(key, default getter)`` of every field of a dataclass (or named tuple) that mirrors a
    config section."""
    names = (
        [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else cls._fields
    )
    return [
        (f"{prefix}.{name}", lambda name=name: field(cls, name))
        for name in names
        if name not in leave_out
    ]


def parameter(function, name: str):
    """The default of a function's parameter."""
    return inspect.signature(function).parameters[name].default


LIBRARY_DEFAULTS = [
    ("car.kmer_size", lambda: kmers.DEFAULT_K),
    ("car.min_specific_kmers", lambda: field(EvidenceSettings, "min_kmers")),
    ("car.max_mismatch_fraction", lambda: field(EvidenceSettings, "max_mismatch_fraction")),
    ("car.min_umis_per_cell", lambda: parameter(cells.cell_table, "min_umis")),
    ("car.min_umis_per_cell", lambda: parameter(car_calls.sample_evidence, "min_umis")),
    ("car.min_umis_per_cell", lambda: parameter(sample.analyse_sample, "min_umis")),
    ("car.cell_barcode_tag", lambda: field(ScanSettings, "cell_tag")),
    ("car.umi_tag", lambda: field(ScanSettings, "umi_tag")),
    ("car.matrix_features", lambda: list(matrix_feature.DEFAULT_FEATURES)),
    ("car.alpha", lambda: car_calls.DEFAULT_ALPHA),
    ("car.floor_per_million", lambda: car_calls.DEFAULT_FLOOR_PER_MILLION),
    ("car.min_reads", lambda: car_calls.DEFAULT_MIN_READS),
    # the library's constructs: resources/car of the source tree
    ("car.construct", lambda: str(Path(construct.DEFAULT_FASTA).relative_to(SCHEMA.parents[2]))),
    ("car.segments", lambda: str(Path(construct.DEFAULT_SEGMENTS).relative_to(SCHEMA.parents[2]))),
    *fields("ctdna.filters", AlleleFilters),
    # background: the schema's auto is resolved from panel_of_normals before any job
    # (carmscope.ctdna.settings.background_mode); the dataclass holds the resolved mode
    *fields("ctdna", CallSettings, leave_out=("background",)),
    ("ctdna.floor", lambda: background.DEFAULT_FLOOR),
    ("ctdna.max_rate", lambda: background.DEFAULT_MAX_RATE),
    ("ctdna.alpha", lambda: calls.DEFAULT_ALPHA),
    ("ctdna.power", lambda: calls.DEFAULT_POWER),
    ("ctdna.fall_fraction", lambda: response.FALL_FRACTION),
    ("ctdna.progression_rise", lambda: response.PROGRESSION_RISE),
    ("ctdna.change_alpha", lambda: response.CHANGE_ALPHA),
    *fields("expression.qc", QCThresholds),
    ("expression.annotation.min_score", lambda: annotation.MIN_SCORE),
    ("expression.annotation.min_margin", lambda: annotation.MIN_MARGIN),
    ("expression.annotation.max_rank", lambda: annotation.MAX_RANK),
    ("expression.min_cells", lambda: scoring.MIN_CELLS),
    ("expression.car_min_umis", lambda: parameter(composition.car_by_cell_type, "min_umis")),
    ("expression.group_column", lambda: parameter(paired.paired_tests, "group_column")),
    # inflammation_sets: the schema's null means "every set of genesets.gmt", which only the
    # settings check can resolve (carmscope.tables.settings); the dataclass holds the result
    *fields("tables", TableSettings, leave_out=("inflammation_sets",)),
]


@pytest.mark.parametrize("key, library", LIBRARY_DEFAULTS, ids=[key for key, _ in LIBRARY_DEFAULTS])
def test_library_defaults_equal_the_schemas(key, library):
    value = library()
    if isinstance(value, tuple):
        value = list(value)
    assert value == schema_default(key), f"{key}: library {value!r}, schema {schema_default(key)!r}"


def readme_defaults(repo) -> dict[str, object]:
    """The default column of config/README.md's tables, by dotted key (``car.kmer_size``)."""
    documented = {}
    section = None
    for line in (repo / "config/README.md").read_text().splitlines():
        heading = re.match(r"## `(\w+)`", line)
        if heading:
            section = heading.group(1)
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if section is None or len(cells) != 3 or not cells[0].startswith("`"):
            continue
        keys = re.findall(r"`([\w.]+)`", cells[0])
        text = re.sub(r"\s*\(.*\)$", "", cells[1])  # "null (every set ...)" -> "null"
        values = [part.strip().strip("`") for part in text.split(",")] if len(keys) > 1 else [text]
        for key, value in zip(keys, values, strict=True):
            value = yaml.safe_load(value.strip("`"))
            if isinstance(value, str) and re.fullmatch(r"\d+(\.\d*)?e-?\d+", value):
                value = float(value)  # "1e-4": a string to YAML 1.1, a number to a reader
            documented[f"{section}.{key}"] = value
    return documented


def test_config_readme_documents_the_schemas_defaults(repo):
    documented = readme_defaults(repo)
    filled = with_defaults()
    checked = 0
    for key, value in documented.items():
        section, _, rest = key.partition(".")
        default = filled[section]
        for part in rest.split("."):
            default = default.get(part, "no default") if isinstance(default, dict) else None
        if default == "no default":  # set by a preset (synthetic) or required
            continue
        assert value == default, f"config/README.md says {key} defaults to {value!r}"
        checked += 1
    assert checked > 50
    # and every key the schema fills is documented
    undocumented = [
        f"{section}.{key}"
        for section, values in filled.items()
        if isinstance(values, dict)
        for key in values
        if not isinstance(values[key], dict) and f"{section}.{key}" not in documented
    ]
    assert undocumented == []
