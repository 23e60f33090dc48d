"""``/v3/cursor``: a batch's answer as the stream of entries Hrana 3 cursors read.

The batch itself runs like any other (``pop.session``); this only re-encodes its answer:
a header line with the baton, then per step ``step_begin``, its rows and ``step_end``, or
``step_error``, and last the batch's ``replication_index`` (as sqld ends a cursor); or one
``error`` when the whole batch failed.
"""

from __future__ import annotations

from typing import Any


def entries(baton: str | None, answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The cursor's entries, the header first, from a batch request's result."""
    found: list[dict[str, Any]] = [{"baton": baton, "base_url": None}]
    if answer["type"] == "error":
        found.append({"type": "error", "error": answer["error"]})
        return found
    result = answer["response"]["result"]
    for step, (ok, error) in enumerate(
        zip(result["step_results"], result["step_errors"], strict=True)
    ):
        if error is not None:
            found.append({"type": "step_error", "step": step, "error": error})
        elif ok is not None:
            found.append({"type": "step_begin", "step": step, "cols": ok["cols"]})
            found.extend({"type": "row", "row": row} for row in ok["rows"])
            found.append(
                {
                    "type": "step_end",
                    "affected_row_count": ok["affected_row_count"],
                    "last_insert_rowid": ok["last_insert_rowid"],
                }
            )
    found.append(
        {"type": "replication_index", "replication_index": result.get("replication_index")}
    )
    return found
