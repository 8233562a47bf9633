"""The blood samples as plain records, the form the workflow passes them to the blood job in
(``params``), and back to a samples frame."""

from __future__ import annotations

import pandas as pd

SAMPLE_FIELDS = ("patient_id", "timepoint", "day", "hours", "assay", "tissue", "counts")


def records_frame(records: list[dict]) -> pd.DataFrame:
    """The samples frame back from the records the workflow passes (``sample_records`` of
    ``workflow/lib/wiring/blood.py``)."""
    frame = pd.DataFrame(records, columns=["sample_id", *SAMPLE_FIELDS])
    frame = frame.astype({"hours": float, "day": "int64"}).set_index("sample_id")
    frame["reads"] = ""
    return frame
