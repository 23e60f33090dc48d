"""A JWT-authenticated origin: ``sqld --auth-jwt-key-file`` and POPs given a token.

The tokens are EdDSA (Ed25519) JWTs as Turso issues them: claim ``"a": "rw"`` reads and
writes, ``"a": "ro"`` only reads. Minted here with a key made for the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pop.devtools.processes import PopProcess, SqldServer
from tests.helpers import execute, pipeline, rows, running


@pytest.fixture(scope="module")
def signed(sqld_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("jwt")
    key = Ed25519PrivateKey.generate()
    public = workdir / "jwt-public.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    stranger = Ed25519PrivateKey.generate()
    tokens = {
        "rw": jwt.encode({"a": "rw"}, key, algorithm="EdDSA"),
        "ro": jwt.encode({"a": "ro"}, key, algorithm="EdDSA"),
        "expired": jwt.encode({"a": "rw", "exp": int(time.time()) - 3600}, key, "EdDSA"),
        "wrong key": jwt.encode({"a": "rw"}, stranger, algorithm="EdDSA"),
        "not a JWT": "not-a-jwt",
    }
    origin = SqldServer(sqld_binary, workdir / "sqld", jwt_key_file=public)
    origin.auth_token = tokens["rw"]
    with running(origin):
        origin.execute("CREATE TABLE notes (body TEXT)")
        origin.execute("INSERT INTO notes VALUES ('from the origin')")
        yield {"origin": origin, "tokens": tokens, "workdir": workdir}


def _pop(signed: dict[str, Any], token: str, region: str) -> PopProcess:
    return PopProcess(
        signed["origin"].url,
        signed["workdir"] / region,
        region=region,
        engine="libsql",
        extra_env={"TURSO_AUTH_TOKEN": token},
    )


def test_a_read_write_token_syncs_and_writes(signed: dict[str, Any]) -> None:
    pop = _pop(signed, signed["tokens"]["rw"], "rw")
    with running(pop), pop.client() as http:
        assert rows(pipeline(http, [execute("SELECT body FROM notes")])) == [["from the origin"]]
        written = pipeline(http, [execute("INSERT INTO notes VALUES ('through rw')")])
        assert written["results"][0]["type"] == "ok", written
        seen = rows(pipeline(http, [execute("SELECT count(*) FROM notes")]))
        assert seen == [["2"]]
    assert signed["tokens"]["rw"] not in pop.log_path.read_text()


def test_a_read_only_token_syncs_and_a_write_gets_a_clear_error(signed: dict[str, Any]) -> None:
    pop = _pop(signed, signed["tokens"]["ro"], "ro")
    with running(pop), pop.client() as http:
        assert ["from the origin"] in rows(pipeline(http, [execute("SELECT body FROM notes")]))
        refused = pipeline(http, [execute("INSERT INTO notes VALUES ('through ro')")])
        error = refused["results"][0]["error"]
        assert "HTTP 403" in error["message"], error
        assert "Authorization forbidden" in error["message"], error  # sqld's own reason
        assert "TURSO_AUTH_TOKEN" in error["message"], error
    assert signed["tokens"]["ro"] not in pop.log_path.read_text()


@pytest.mark.parametrize("kind", ["expired", "wrong key", "not a JWT"])
def test_a_token_the_origin_refuses_stops_the_pop_with_one_clear_line(
    signed: dict[str, Any], kind: str
) -> None:
    pop = _pop(signed, signed["tokens"][kind], kind.replace(" ", "-"))
    try:
        pop.start()
        assert pop.proc is not None
        assert pop.proc.wait(60) == 1, "a POP with a refused token must not start"
    finally:
        pop.stop()
    log = pop.log_path.read_text()
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, log
    assert "refuses TURSO_AUTH_TOKEN (HTTP 401: Unauthorized:" in errors[0], errors
    assert signed["tokens"][kind] not in log
