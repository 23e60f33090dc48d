"""YAML dumping for generated files: stable key order, no anchors, a header."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_documents(documents: Iterable[Any], header: str = "", *, width: int = 100) -> str:
    """Dump objects as a multi-document YAML stream, preceded by comment lines.

    Lines longer than ``width`` are folded at spaces.
    """
    body = yaml.dump_all(
        list(documents),
        Dumper=_NoAliasDumper,
        sort_keys=False,
        default_flow_style=False,
        width=width,
    )
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + body


def load_documents(text: str) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]
