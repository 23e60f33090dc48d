"""docs/metrics.md lists exactly the metrics pop/metrics.py defines."""

from __future__ import annotations

import re
from pathlib import Path

from pop.metrics import METRIC_NAMES

DOC = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def test_every_metric_is_documented_and_no_other() -> None:
    documented = set(re.findall(r"`(edgepop_[a-z_]+)`", DOC.read_text()))
    assert documented == set(METRIC_NAMES)
