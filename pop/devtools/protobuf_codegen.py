"""Generate ``pop/hrana/hrana_pb2.py`` and ``hrana_pb2.pyi`` from ``pop/hrana/hrana.proto``,
the one source of the protobuf schema, with the ``protoc`` that ``grpcio-tools`` (a
development dependency) carries. ``--check`` writes nothing and fails when the committed
files differ from what the schema generates.

    python -m pop.devtools.protobuf_codegen [--check]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[1] / "hrana" / "hrana.proto"
OUTPUTS = ("hrana_pb2.py", "hrana_pb2.pyi")


def generate() -> dict[str, str]:
    """The generated files' names and texts."""
    from grpc_tools import protoc  # a development dependency, not the POP's

    with tempfile.TemporaryDirectory() as out:
        status = protoc.main(
            [
                "protoc",
                f"-I{SCHEMA.parent}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                str(SCHEMA),
            ]
        )
        if status != 0:
            raise SystemExit(f"protoc failed on {SCHEMA} (status {status})")
        return {name: (Path(out) / name).read_text() for name in OUTPUTS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if the committed files are out of date"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, text in generate().items():
        target = SCHEMA.parent / name
        if target.exists() and target.read_text() == text:
            continue
        if args.check:
            stale.append(name)
        else:
            target.write_text(text)
            print(f"wrote {target}")
    if stale:
        print(
            f"{', '.join(stale)} out of date with {SCHEMA.name}: run "
            "python -m pop.devtools.protobuf_codegen",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
