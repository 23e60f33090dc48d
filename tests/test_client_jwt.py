"""Clients presenting Turso's JWTs to a POP, side by side with ``sqld`` given the same keys.

Both servers get one key file holding two Ed25519 public keys (PEM, concatenated, as
``sqld --auth-jwt-key-file`` takes them); the POP gets it as ``AUTH_JWT_KEY_FILE``, and
syncs from the sqld origin with a ``rw`` token. Every token and request below goes to
both, and the POP must answer as sqld does: the same status and the same refusal text,
a read-only token's write refused whole with nothing run. Tokens are made by PyJWT.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.sync.client import connect

from pop.config import ConfigError, load_settings
from pop.devtools.processes import PopProcess, SqldServer, loopback_client
from pop.http.auth import Access, Authenticator, Unauthenticated
from pop.http.jwt_keys import JwtKeyError, JwtVerifier, load_jwt_keys
from tests.helpers import execute, running

FORBIDDEN = (
    "Authorization forbidden: Current session doesn't not have Write permission to "
    "namespace default"
)


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _raw(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


KEYS = [Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()]
STRANGER = Ed25519PrivateKey.generate()


def _token(claims: dict[str, Any], key: Ed25519PrivateKey = KEYS[0]) -> str:
    return jwt.encode(claims, key, algorithm="EdDSA")


class Both:
    """A sqld origin and a POP in front of it, each checking JWTs with the same keys."""

    def __init__(self, sqld: SqldServer, pop: PopProcess) -> None:
        self.sqld = sqld
        self.pop = pop

    def post(self, path: str, body: Any, authorization: str | None) -> list[tuple[int, Any]]:
        """The same request to sqld and to the POP: each one's status and body."""
        headers = {"authorization": authorization} if authorization is not None else {}
        answers = []
        for url in (self.sqld.url, self.pop.url):
            with loopback_client(url) as http:
                response = http.post(path, json=body, headers=headers)
            answers.append((response.status_code, _comparable(response)))
        return answers

    def origin_rows(self) -> int:
        answer = self.sqld.execute("SELECT count(*) FROM notes")
        return int(answer["rows"][0][0]["value"])


def _comparable(response: httpx.Response) -> Any:
    """A refusal's text, or each result's outcome and error code (batons differ)."""
    if response.status_code != 200:
        body = response.json()
        return body["error"]
    body = response.json()
    if "results" not in body:
        return body
    return [
        (r["type"], r["error"]["code"] if r["type"] == "error" else None) for r in body["results"]
    ]


@pytest.fixture(scope="module")
def both(sqld_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    workdir = tmp_path_factory.mktemp("client-jwt")
    key_file = workdir / "jwt-keys.pem"
    key_file.write_bytes(_pem(KEYS[0]) + _pem(KEYS[1]))
    sqld = SqldServer(sqld_binary, workdir / "sqld", jwt_key_file=key_file)
    sqld.auth_token = _token({"a": "rw"})
    pop = PopProcess(
        sqld.url,
        workdir,
        region="jwt",
        engine="libsql",
        extra_env={"TURSO_AUTH_TOKEN": _token({"a": "rw"}), "AUTH_JWT_KEY_FILE": str(key_file)},
    )
    with running(sqld):
        sqld.execute("CREATE TABLE notes (body TEXT)")
        sqld.execute("INSERT INTO notes VALUES ('first')")
        with running(pop):
            yield Both(sqld, pop)


def _bearer(token: str) -> str:
    return f"Bearer {token}"


# Made when a test runs: expiry is judged against the clock then.
HEADERS: dict[str, Callable[[], str | None]] = {
    "no header": lambda: None,
    "Basic": lambda: "Basic dXNlcjpwYXNz",
    "scheme only": lambda: "Bearer",
    "not a JWT": lambda: _bearer("not-a-jwt"),
    "signed by another key": lambda: _bearer(_token({"a": "rw"}, STRANGER)),
    "HS256": lambda: _bearer(
        jwt.encode({"a": "rw"}, "a shared secret of 32 bytes or so!", "HS256")
    ),
    "claim a=xx": lambda: _bearer(_token({"a": "xx"})),
    "claim a=RO": lambda: _bearer(_token({"a": "RO"})),
    "expired an hour ago": lambda: _bearer(_token({"exp": int(time.time()) - 3600})),
    "expired 20 s ago (leeway)": lambda: _bearer(_token({"exp": int(time.time()) - 20})),
    "rw": lambda: _bearer(_token({"a": "rw"})),
    "no claim a": lambda: _bearer(_token({})),
    "ro": lambda: _bearer(_token({"a": "ro"})),
    "second key": lambda: _bearer(_token({"a": "rw"}, KEYS[1])),
    "lower-case scheme": lambda: f"bearer {_token({'a': 'ro'})}",
}


@pytest.mark.parametrize("name", list(HEADERS))
def test_every_token_is_judged_as_sqld_judges_it(both: Both, name: str) -> None:
    body = {"requests": [execute("SELECT count(*) FROM notes")]}
    at_sqld, at_pop = both.post("/v2/pipeline", body, HEADERS[name]())
    assert at_pop == at_sqld, name
    assert at_pop[0] in (200, 401), at_pop


def test_the_pops_own_token_still_reads_and_writes(both: Both) -> None:
    before = both.origin_rows()
    with both.pop.client() as http:
        answer = http.post(
            "/v2/pipeline", json={"requests": [execute("INSERT INTO notes VALUES ('proxy')")]}
        )
    assert answer.status_code == 200 and answer.json()["results"][0]["type"] == "ok", answer.text
    assert both.origin_rows() == before + 1


RO_REQUESTS: dict[str, list[dict[str, Any]]] = {
    "a read": [execute("SELECT body FROM notes")],
    "an insert": [execute("INSERT INTO notes VALUES ('ro')")],
    "a read, then an insert": [execute("SELECT 1"), execute("INSERT INTO notes VALUES ('ro')")],
    "a write through WITH": [execute("WITH x AS (SELECT 'w') INSERT INTO notes SELECT * FROM x")],
    "DDL": [execute("CREATE TABLE ro_made (a)")],
    "DROP of a missing table": [execute("DROP TABLE nothing_here")],
    "REINDEX": [execute("REINDEX notes")],
    "BEGIN and COMMIT": [execute("BEGIN"), execute("SELECT 1"), execute("COMMIT")],
    "BEGIN IMMEDIATE": [execute("BEGIN IMMEDIATE"), execute("ROLLBACK")],
    "a reading PRAGMA sqld allows": [execute("PRAGMA table_info(notes)")],
    "a reading PRAGMA sqld takes for a write": [execute("PRAGMA user_version")],
    "a setting PRAGMA": [execute("PRAGMA foreign_keys = ON")],
    "EXPLAIN of an insert": [execute("EXPLAIN INSERT INTO notes VALUES (1)")],
    "EXPLAIN of a PRAGMA": [execute("EXPLAIN PRAGMA user_version")],
    "an insert that does not parse": [execute("INSERT INTO notes VALUES (")],
    "two statements, the first a write": [execute("INSERT INTO notes VALUES (1); SELECT 1")],
    "a statement sqld does not serve": [execute("VACUUM")],
    "a batch with a write": [
        {
            "type": "batch",
            "batch": {
                "steps": [
                    {"stmt": {"sql": "SELECT 1"}},
                    {"stmt": {"sql": "DELETE FROM notes"}},
                ]
            },
        }
    ],
    "a sequence with a write": [{"type": "sequence", "sql": "SELECT 1; DELETE FROM notes"}],
    "a sequence of reads": [{"type": "sequence", "sql": "SELECT 1; SELECT 2"}],
    "a describe of a write": [{"type": "describe", "sql": "INSERT INTO notes VALUES (1)"}],
    "a stored write, then run by id": [
        {"type": "store_sql", "sql_id": 7, "sql": "DELETE FROM notes"},
        {"type": "execute", "stmt": {"sql_id": 7}},
    ],
    "a stored write, never run": [
        {"type": "store_sql", "sql_id": 8, "sql": "DELETE FROM notes"},
        {"type": "close_sql", "sql_id": 8},
    ],
}


@pytest.mark.parametrize("name", list(RO_REQUESTS))
def test_a_read_only_token_may_do_what_sqld_lets_it(both: Both, name: str) -> None:
    before = both.origin_rows()
    body = {"requests": RO_REQUESTS[name]}
    at_sqld, at_pop = both.post("/v2/pipeline", body, _bearer(_token({"a": "ro"})))
    assert at_pop == at_sqld, name
    if at_pop[0] == 403:
        assert at_pop[1] == FORBIDDEN
    assert both.origin_rows() == before  # nothing of a refused call ran, at either


def test_a_stored_write_is_refused_when_a_later_call_runs_it(both: Both) -> None:
    ro = {"Authorization": _bearer(_token({"a": "ro"}))}
    with loopback_client(both.pop.url, headers=ro) as http:
        stored = http.post(
            "/v2/pipeline",
            json={"requests": [{"type": "store_sql", "sql_id": 1, "sql": "DELETE FROM notes"}]},
        )
        assert stored.status_code == 200, stored.text
        baton = stored.json()["baton"]
        run = http.post(
            "/v2/pipeline",
            json={"baton": baton, "requests": [{"type": "execute", "stmt": {"sql_id": 1}}]},
        )
    assert (run.status_code, run.json()["error"]) == (403, FORBIDDEN)
    assert both.origin_rows() > 0


@pytest.mark.parametrize("statements", [["SELECT 1", "DELETE FROM notes"], ["SELECT 1"]])
def test_the_original_endpoint_refuses_a_read_only_write_as_sqld(
    both: Both, statements: list[str]
) -> None:
    before = both.origin_rows()
    at_sqld, at_pop = both.post("/", {"statements": statements}, _bearer(_token({"a": "ro"})))
    assert at_pop[0] == at_sqld[0], (at_sqld, at_pop)
    if at_pop[0] == 403:
        assert at_pop[1] == at_sqld[1] == FORBIDDEN
    assert both.origin_rows() == before


def test_a_read_only_cursor_reads_and_its_write_is_refused(both: Both) -> None:
    ro = {"Authorization": _bearer(_token({"a": "ro"}))}
    batch = {
        "batch": {"steps": [{"stmt": {"sql": "SELECT 1"}}, {"stmt": {"sql": "DELETE FROM notes"}}]}
    }
    before = both.origin_rows()
    with loopback_client(both.pop.url, headers=ro) as http:
        refused = http.post("/v3/cursor", json=batch)
        read = http.post("/v3/cursor", json={"batch": {"steps": batch["batch"]["steps"][:1]}})
    assert (refused.status_code, refused.json()["error"]) == (403, FORBIDDEN)
    assert read.status_code == 200 and '"type":"step_end"' in read.text.replace(" ", "")
    # sqld starts its answer and then breaks it off: refused too, less clearly.
    with loopback_client(both.sqld.url, headers=ro) as http, pytest.raises(httpx.HTTPError):
        http.post("/v3/cursor", json=batch).read()
    assert both.origin_rows() == before


def _hello(url: str, token: str | None, write: str = "DELETE FROM notes") -> tuple[Any, ...]:
    """A WebSocket hello, then a read, ``write`` and a read on one stream, as far as
    they go: the hello's answer and each request's answer type."""
    answers: list[Any] = []
    with connect(url.replace("http://", "ws://", 1), subprotocols=["hrana2"]) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"type": "hello", "jwt": token}))
        answers.append(json.loads(ws.recv(timeout=10)))
        if answers[0]["type"] != "hello_ok":
            return tuple(answers)
        for request_id, request in enumerate(
            [
                {"type": "open_stream", "stream_id": 1},
                {"type": "execute", "stream_id": 1, "stmt": {"sql": "SELECT count(*) FROM notes"}},
                {"type": "execute", "stream_id": 1, "stmt": {"sql": write}},
                {"type": "execute", "stream_id": 1, "stmt": {"sql": "SELECT 1"}},
            ]
        ):
            ws.send(json.dumps({"type": "request", "request_id": request_id, "request": request}))
            answers.append(json.loads(ws.recv(timeout=10))["type"])
    return tuple(answers)


@pytest.mark.parametrize("name", ["not a JWT", "expired an hour ago", "signed by another key"])
def test_a_websocket_hello_is_refused_as_sqld_refuses_it(both: Both, name: str) -> None:
    token = (HEADERS[name]() or "").removeprefix("Bearer ")
    assert _hello(both.pop.url, token) == _hello(both.sqld.url, token)


def test_a_websocket_hello_without_a_token_is_refused_as_sqld_refuses_it(both: Both) -> None:
    assert _hello(both.pop.url, None) == _hello(both.sqld.url, None)


def test_a_read_only_websocket_reads_and_its_write_is_refused(both: Both) -> None:
    before = both.origin_rows()
    answers = _hello(both.pop.url, _token({"a": "ro"}))
    # sqld drops the whole connection at the write (no close frame); the POP answers the
    # write with the 403's text as that request's error, and the stream goes on.
    assert answers == (
        {"type": "hello_ok"},
        "response_ok",
        "response_ok",
        "response_error",
        "response_ok",
    )
    assert both.origin_rows() == before
    rw = _hello(both.pop.url, _token({"a": "rw"}), write="INSERT INTO notes VALUES ('ws')")
    assert rw[3] == "response_ok" and both.origin_rows() == before + 1


def test_key_files_are_read_as_sqld_reads_them(tmp_path: Path) -> None:
    keys = load_jwt_keys((_pem(KEYS[0]) + _pem(KEYS[1])).decode(), "test")
    assert len(keys) == 2
    assert len(load_jwt_keys(f"{_raw(KEYS[0])}\n{_raw(KEYS[1])}\n", "test")) == 2
    authenticator = Authenticator("proxy", JwtVerifier(load_jwt_keys(_raw(KEYS[1]), "test")))
    assert authenticator.from_token(_token({"a": "ro"}, KEYS[1])) is Access.READ_ONLY
    assert authenticator.from_token("proxy") is Access.READ_WRITE
    with pytest.raises(Unauthenticated):
        authenticator.from_token(_token({"a": "ro"}, KEYS[0]))
    private = KEYS[0].private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for text, said in [
        (private.decode(), "PRIVATE KEY block"),
        ("", "no key found"),
        ("!!!", "neither PEM nor base64"),
        ("AAAA", "32 bytes"),
    ]:
        with pytest.raises(JwtKeyError, match=said):
            load_jwt_keys(text, "test")


def test_an_unreadable_key_file_stops_the_pop_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TURSO_DATABASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("PROXY_AUTH_TOKEN", "t")
    monkeypatch.setenv("AUTH_JWT_KEY_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"AUTH_JWT_KEY_FILE .*missing\.pem: cannot be read"):
        load_settings(None)
    monkeypatch.delenv("AUTH_JWT_KEY_FILE")
    monkeypatch.setenv("AUTH_JWT_KEY", "not a key")
    with pytest.raises(ConfigError, match="AUTH_JWT_KEY: "):
        load_settings(None)
    monkeypatch.setenv("AUTH_JWT_KEY", _raw(KEYS[0]))
    verifier = load_settings(None).jwt_verifier()
    assert verifier is not None and len(verifier.keys) == 1


def test_a_pop_given_no_keys_does_not_load_pyjwt(tmp_path: Path) -> None:
    """PyJWT and cryptography are about 8 MB of a POP's memory: loaded only with keys."""
    probe = (
        "import sys\n"
        "from pop.config import load_settings\n"
        "from pop.http.app import create_app\n"
        "from pop.service import PopService\n"
        "create_app(PopService(load_settings(None)))\n"
        # (redis imports cryptography's top package, which is small, to read its version)
        "print([m for m in ('cryptography.hazmat', 'jwt') if m in sys.modules])\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "TURSO_DATABASE_URL": "http://127.0.0.1:1",
        "PROXY_AUTH_TOKEN": "t",
        "DB_FILEPATH": str(tmp_path / "replica.db"),
    }
    loaded = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]", loaded.stderr
    with_key = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "AUTH_JWT_KEY": _raw(KEYS[0])},
        capture_output=True,
        text=True,
        check=True,
    )
    assert with_key.stdout.strip() == "['cryptography.hazmat', 'jwt']", with_key.stderr
