"""The README's first command: ``edge-pop demo`` end to end, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_shows_a_write_in_one_region_read_in_the_others(
    tursodb_binary: str, redis_binary: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pop",
            "demo",
            "--tursodb",
            tursodb_binary,
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "redis: redis://" in out
    assert "wrote through eu-west" in out
    assert out.count("read through ") == 2
    assert "demo finished: a row written in eu-west was read in us-east, ap-south" in out
