"""Error messages never echo the content of a file that is not the expected format."""

import pytest

from carmscope.ctdna.vendor import read_vendor_table
from carmscope.inputs import InputContentError, inspect_counts
from carmscope.messages import found_columns, quoted

SECRET = "root:x:0:0:root:/root:/bin/bash"


@pytest.fixture
def system_file(tmp_path):
    """A table path that is a symbolic link to a file that is not a table."""
    target = tmp_path / "passwd"
    target.write_text(f"{SECRET}\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    link = tmp_path / "counts.tsv"
    link.symlink_to(target)
    return link


def test_bulk_counts_pointing_at_a_system_file(system_file):
    with pytest.raises(InputContentError) as caught:
        inspect_counts(str(system_file), "bulk_rna")
    assert SECRET not in str(caught.value)
    assert "not a tab-separated header" in str(caught.value)


def test_vendor_table_pointing_at_a_system_file(system_file):
    with pytest.raises(Exception) as caught:
        read_vendor_table(str(system_file))
    assert SECRET not in str(caught.value)
    assert "not a tab-separated header" in str(caught.value)


def test_column_names_are_listed_and_shortened():
    assert found_columns(["gene", "counts"]) == "found columns 'gene', 'counts'"
    assert quoted("x" * 100) == repr("x" * 37 + "...")
    assert found_columns([f"c{i}" for i in range(25)]).endswith("and 5 more")
