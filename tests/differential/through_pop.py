"""Units sent to a server (a POP, or ``sqld``): raw Hrana over HTTP, or ``@libsql/client``.

Raw Hrana keeps a transcript of every answer, normalized (``normalized_answer``), so that
the answers of a POP and of ``sqld`` to the same unit can be compared whole.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx

from pop.hrana.values import encode_value
from tests.differential.grammar import Mode, Stmt, Unit
from tests.differential.outcome import (
    Failed,
    Outcome,
    Row,
    Rows,
    Skipped,
    TypedValue,
    normalized_answer,
    typed,
    typed_hrana,
)
from tests.differential.reference import BATCH_BEGIN, script_of

JS_DRIVER = Path(__file__).resolve().parent.parent / "js" / "differential.mjs"


def _stmt_json(stmt: Stmt) -> dict[str, Any]:
    return {"sql": stmt.sql, "args": [encode_value(v) for v in stmt.args]}


def _hrana_outcome(result: dict[str, Any] | None, error: dict[str, Any] | None) -> Outcome:
    if error is not None:
        return Failed(error.get("code"))
    if result is None:
        return Skipped()
    last = result.get("last_insert_rowid")
    return Rows(
        tuple(col["name"] for col in result["cols"]),
        tuple(tuple(typed_hrana(v) for v in row) for row in result["rows"]),
        result.get("affected_row_count"),
        None if last is None else int(last),
    )


def _normalized(outcome: Outcome, stmt: Stmt) -> Outcome:
    if isinstance(outcome, Rows):
        return outcome.normalized(
            ordered=stmt.ordered, counts_changes=stmt.counts_changes, inserts=stmt.inserts
        )
    return outcome


class RawHrana:
    """Hrana over HTTP exactly as the spec writes it, one unit at a time."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.transcript: list[Any] = []  # normalized answers of the last unit

    def close(self) -> None:
        self.http.close()

    def answers(self, unit: Unit) -> tuple[list[Outcome], list[Any]]:
        """The unit's outcomes, and every answer it got, normalized."""
        self.transcript = []
        return self.run(unit), self.transcript

    def run(self, unit: Unit) -> list[Outcome]:
        if unit.mode is Mode.EXECUTE:
            requests = [{"type": "execute", "stmt": _stmt_json(s)} for s in unit.stmts]
            results = self._pipeline([*requests, {"type": "close"}])[:-1]
            return [
                _normalized(self._request_outcome(r, "execute"), s)
                for r, s in zip(results, unit.stmts, strict=True)
            ]
        if unit.mode is Mode.STREAM:
            outcomes: list[Outcome] = []
            baton = None
            for stmt in unit.stmts:
                answer = self._call([{"type": "execute", "stmt": _stmt_json(stmt)}], baton)
                baton = answer["baton"]
                outcome = self._request_outcome(answer["results"][0], "execute")
                outcomes.append(_normalized(outcome, stmt))
            self._call([{"type": "close"}], baton)
            return outcomes
        if unit.mode is Mode.BATCH:
            return self._batch(unit.stmts)
        if unit.mode is Mode.SEQUENCE:
            request = {"type": "sequence", "sql": script_of(unit.stmts)}
            result = self._pipeline([request, {"type": "close"}])[0]
            if result["type"] == "error":
                return [Failed(result["error"].get("code"))]
            return [Rows((), ())]
        assert unit.mode is Mode.LEGACY
        return self._legacy(unit.stmts)

    def _batch(self, stmts: tuple[Stmt, ...]) -> list[Outcome]:
        all_steps = [Stmt(BATCH_BEGIN), *stmts, Stmt("COMMIT"), Stmt("ROLLBACK")]
        commit = len(all_steps) - 2
        steps: list[dict[str, Any]] = []
        for i, stmt in enumerate(all_steps):
            step: dict[str, Any] = {"stmt": _stmt_json(stmt)}
            if i == len(all_steps) - 1:
                step["condition"] = {"type": "not", "cond": {"type": "ok", "step": commit}}
            elif i > 0:
                step["condition"] = {"type": "ok", "step": i - 1}
            steps.append(step)
        result = self._pipeline([{"type": "batch", "batch": {"steps": steps}}, {"type": "close"}])
        batch = self._request_outcome_raw(result[0], "batch")
        if isinstance(batch, Failed):
            return [batch]
        return [
            _normalized(_hrana_outcome(ok, error), stmt)
            for ok, error, stmt in zip(
                batch["step_results"], batch["step_errors"], all_steps, strict=True
            )
        ]

    def _legacy(self, stmts: tuple[Stmt, ...]) -> list[Outcome]:
        body = {
            "statements": [
                {"q": s.sql, "params": [_legacy_value(v) for v in s.args]} for s in stmts
            ]
        }
        response = self.http.post("/", json=body)
        # A request refused whole is worded by sqld's own parser there: the status counts.
        refused_by_parser = response.status_code == 500
        try:
            answer = None if refused_by_parser else normalized_answer(legacy_json(response.text))
        except ValueError:
            answer = response.text
        self.transcript.append((response.status_code, answer))
        if response.status_code != 200:  # refused whole, before anything ran
            return [Failed(None)]
        outcomes: list[Outcome] = []
        for entry, stmt in zip(legacy_json(response.text), stmts, strict=False):
            if entry is None:
                outcomes.append(Skipped())
                continue
            if "error" in entry:
                outcomes.append(Failed(None))
                continue
            results = entry["results"]
            rows = tuple(tuple(_typed_legacy(v) for v in row) for row in results["rows"])
            outcomes.append(
                Rows(tuple(results["columns"]), rows).normalized(
                    ordered=stmt.ordered, counts_changes=False, inserts=False
                )
            )
        return outcomes

    def _call(self, requests: list[dict[str, Any]], baton: str | None = None) -> dict[str, Any]:
        response = self.http.post("/v3/pipeline", json={"baton": baton, "requests": requests})
        assert response.status_code == 200, f"HTTP {response.status_code}: {response.text}"
        answer: dict[str, Any] = response.json()
        self.transcript.append(normalized_answer(answer))
        return answer

    def _pipeline(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = self._call(requests)["results"]
        return results

    @staticmethod
    def _request_outcome_raw(result: dict[str, Any], kind: str) -> Any:
        if result["type"] == "error":
            return Failed(result["error"].get("code"))
        response = result["response"]
        assert response["type"] == kind, response
        return response["result"]

    def _request_outcome(self, result: dict[str, Any], kind: str) -> Outcome:
        raw = self._request_outcome_raw(result, kind)
        return raw if isinstance(raw, Failed) else _hrana_outcome(raw, None)


# A sqld defect (libsql-server 0.24.33): when BEGIN is followed by a statement that fails
# ("BEGIN; BEGIN"), its POST / answer is not JSON: the statistics of the whole request
# land inside the array, after its last element. The POP answers what sqld means; sqld's
# answer is read without those stray members (tests/test_sqld_parity.py shows the defect).
_SQLD_STRAY_STATISTICS = re.compile(
    r',"rows_read":\d+,"rows_written":\d+,"query_duration_ms":[0-9.e+-]+\]$'
)


def legacy_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        repaired = _SQLD_STRAY_STATISTICS.sub("]", text)
        if repaired == text:
            raise
        return json.loads(repaired)


def _legacy_value(value: Any) -> Any:
    if isinstance(value, bytes):  # sqld takes base64 without padding only
        return {"base64": base64.b64encode(value).decode().rstrip("=")}
    return value


def _typed_legacy(value: Any) -> TypedValue:
    if isinstance(value, dict):
        return ("blob", base64.b64decode(value["base64"] + "=="))
    return typed(value)


class NodeClient:
    """One long-lived Node process running units with the real ``@libsql/client``."""

    def __init__(self, node: str) -> None:
        self.proc = subprocess.Popen(
            [node, str(JS_DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=JS_DRIVER.parent,
        )

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)

    def run(self, url: str, token: str, unit: Unit) -> list[Outcome]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        message = {
            "url": url,
            "token": token,
            "mode": unit.mode.value,
            "stmts": [{"sql": s.sql, "args": [_to_wire(v) for v in s.args]} for s in unit.stmts],
            "commit": unit.commit,
        }
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the Node driver exited (code {self.proc.poll()})"
        answer = json.loads(line)
        assert "crash" not in answer, f"the Node driver failed: {answer['crash']}"
        raw = [_client_outcome(o) for o in answer["outcomes"]]
        if unit.mode is Mode.CLIENT_BATCH and isinstance(raw[0], Rows):
            return [_normalized(o, s) for o, s in zip(raw, unit.stmts, strict=True)]
        if unit.mode in (Mode.CLIENT_EXECUTE,):
            return [_normalized(o, s) for o, s in zip(raw, unit.stmts, strict=True)]
        if unit.mode is Mode.CLIENT_TRANSACTION and len(raw) > 1:
            middle = [_normalized(o, s) for o, s in zip(raw[1:-1], unit.stmts, strict=True)]
            return [raw[0], *middle, raw[-1]]
        return raw


def _to_wire(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, int):
        return {"integer": str(value)}
    if isinstance(value, float):
        return {"float": value}
    if isinstance(value, str):
        return {"text": value}
    return {"blob": base64.b64encode(value).decode()}


def _from_wire(value: Any) -> TypedValue:
    if value is None:
        return ("null", None)
    if "integer" in value:
        return ("integer", int(value["integer"]))
    if "float" in value:
        return ("float", float(value["float"]))
    if "text" in value:
        return ("text", value["text"])
    return ("blob", base64.b64decode(value["blob"]))


def _client_outcome(raw: dict[str, Any]) -> Outcome:
    if "error" in raw:
        return Failed(raw["error"])
    rows: tuple[Row, ...] = tuple(tuple(_from_wire(v) for v in row) for row in raw["rows"])
    last = raw["lastRowid"]
    return Rows(tuple(raw["columns"]), rows, raw["affected"], None if last is None else int(last))


def pop_query(
    pop_http: httpx.Client, sql: str, *, close: bool = True
) -> tuple[tuple[str, ...], list[Row]]:
    """One read through a POP (or any Hrana server), for dumps; fails unless it succeeds.

    The stream is closed at once (``close``): sqld holds an unclosed stream's connection
    until it expires, and refuses new ones (HTTP 429) once about 128 are held. tursodb
    knows no ``close`` and keeps no streams.
    """
    requests = [{"type": "execute", "stmt": {"sql": sql}}, *([{"type": "close"}] * close)]
    response = pop_http.post("/v2/pipeline", json={"requests": requests})
    assert response.status_code == 200, f"{sql!r}: HTTP {response.status_code} {response.text}"
    result = response.json()["results"][0]
    assert result["type"] == "ok", f"{sql!r} failed on the POP: {result}"
    outcome = _hrana_outcome(result["response"]["result"], None)
    assert isinstance(outcome, Rows)
    return outcome.columns, list(outcome.rows)


def local_reads(pop_http: httpx.Client) -> float:
    """``execute`` requests this POP's replica has answered successfully, from its metrics.

    A dump counts them before and after: without that check a POP whose replica lacks a
    table would pass, since it forwards what its replica cannot answer, and the origin's
    answer is right.
    """
    wanted = ('request_type="execute"', 'route="local"', 'outcome="ok"')
    total = 0.0
    for line in pop_http.get("/metrics").text.splitlines():
        if line.startswith("edgepop_requests_total{") and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total
