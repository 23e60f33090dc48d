"""The pictures in docs/ are what their Graphviz sources render to (tools/render-diagrams.sh),
so a source changed without its picture fails here. Rendered with Debian 12's graphviz
(2.43), which scripts/test installs; another version may place things differently."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
SOURCES = sorted(DOCS.glob("*.dot"))


def test_there_is_a_picture_to_check() -> None:
    assert SOURCES, "no docs/*.dot"


@pytest.mark.parametrize("source", SOURCES, ids=lambda path: path.name)
def test_the_picture_is_its_sources(source: Path, tmp_path: Path) -> None:
    dot = shutil.which("dot")
    assert dot, "Graphviz is missing: scripts/test installs Debian's graphviz"
    rendered = tmp_path / "picture.png"
    subprocess.run(
        [dot, "-Tpng", "-Gdpi=110", str(source), "-o", str(rendered)], check=True, timeout=60
    )
    committed = source.with_suffix(".png")
    assert committed.read_bytes() == rendered.read_bytes(), (
        f"{committed.name} is not what {source.name} renders to: run tools/render-diagrams.sh"
    )
