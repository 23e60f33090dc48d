"""Generated pipeline bodies thrown at a live POP: no 5xx, always a well-formed answer."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pop.devtools.processes import PopProcess

SQL = st.sampled_from(
    [
        "SELECT 1",
        "SELECT * FROM kv",
        "SELECT ?",
        "SELECT :a, ?2",
        "INSERT INTO kv VALUES (?, ?)",
        "DELETE FROM kv WHERE k = ?",
        "BEGIN",
        "BEGIN TRANSACTION READONLY",
        "COMMIT",
        "ROLLBACK",
        "SELEC oops",
        "",
        ";",
        "PRAGMA user_version",
        "CREATE TABLE IF NOT EXISTS f (a)",
        "SELECT 1; SELECT 2",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "SAVEPOINT s",
        "RELEASE s",
    ]
) | st.text(max_size=40)

SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
VALUE = st.one_of(
    st.fixed_dictionaries({"type": st.just("null")}),
    st.fixed_dictionaries(
        {"type": st.just("integer"), "value": st.integers(-(2**64), 2**64).map(str) | SCALAR}
    ),
    st.fixed_dictionaries({"type": st.just("float"), "value": SCALAR}),
    st.fixed_dictionaries({"type": st.just("text"), "value": SCALAR}),
    st.fixed_dictionaries(
        {"type": st.just("blob"), "base64": st.sampled_from(["", "AA==", "AAE", "!!"])}
    ),
    st.dictionaries(st.text(max_size=5), SCALAR, max_size=3),
    SCALAR,
)
STMT = st.fixed_dictionaries(
    {},
    optional={
        "sql": SQL,
        "sql_id": st.integers(-2, 3) | SCALAR,
        "args": st.lists(VALUE, max_size=3),
        "named_args": st.lists(
            st.fixed_dictionaries({"name": st.sampled_from([":a", "a", "$b"]), "value": VALUE}),
            max_size=2,
        ),
        "want_rows": st.booleans() | SCALAR,
    },
)
COND: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["ok", "error"]), "step": st.integers(-1, 4)}
        ),
        st.fixed_dictionaries({"type": st.just("is_autocommit")}),
    ),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"type": st.just("not"), "cond": inner}),
        st.fixed_dictionaries(
            {"type": st.sampled_from(["and", "or"]), "conds": st.lists(inner, max_size=3)}
        ),
    ),
    max_leaves=4,
)
REQUEST = st.one_of(
    st.fixed_dictionaries({"type": st.just("execute"), "stmt": STMT}),
    st.fixed_dictionaries(
        {
            "type": st.just("batch"),
            "batch": st.fixed_dictionaries(
                {
                    "steps": st.lists(
                        st.fixed_dictionaries({"stmt": STMT}, optional={"condition": COND}),
                        max_size=4,
                    )
                }
            ),
        }
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["sequence", "describe"])},
        optional={"sql": SQL, "sql_id": st.integers(0, 3)},
    ),
    st.fixed_dictionaries(
        {"type": st.just("store_sql"), "sql_id": st.integers(0, 3) | SCALAR, "sql": SQL}
    ),
    st.fixed_dictionaries({"type": st.just("close_sql"), "sql_id": st.integers(0, 3)}),
    st.fixed_dictionaries({"type": st.sampled_from(["close", "get_autocommit", "bogus"])}),
    st.dictionaries(st.text(max_size=6), SCALAR, max_size=3),
)
BODY = st.one_of(
    st.fixed_dictionaries(
        {"baton": st.none() | st.text(max_size=10), "requests": st.lists(REQUEST, max_size=5)}
    ),
    st.fixed_dictionaries({"requests": st.lists(REQUEST, max_size=5)}),
    st.dictionaries(st.text(max_size=8), SCALAR, max_size=3),
    st.lists(SCALAR, max_size=3),
    SCALAR,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODY, version=st.sampled_from(["v2", "v3"]))
def test_generated_pipelines_never_break_the_server(
    body: Any, version: str, client: httpx.Client
) -> None:
    response = client.post(f"/{version}/pipeline", json=body)
    assert response.status_code in (200, 400), response.text
    answer = response.json()
    if response.status_code == 200:
        assert len(answer["results"]) == len(body["requests"])
        for result in answer["results"]:
            assert result["type"] in ("ok", "error")
            if result["type"] == "error":
                assert isinstance(result["error"]["message"], str)
                assert isinstance(result["error"]["code"], str)
    else:
        assert isinstance(answer["message"], str) and answer["code"]
    if response.status_code == 200 and answer["baton"]:
        client.post(
            f"/{version}/pipeline", json={"baton": answer["baton"], "requests": [{"type": "close"}]}
        )


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_are_refused_cleanly(raw: bytes, client: httpx.Client) -> None:
    response = client.post("/v2/pipeline", content=raw)
    assert response.status_code in (200, 400), response.text


def test_pop_still_serves_after_fuzzing(pop: PopProcess) -> None:
    assert httpx.get(f"{pop.url}/health").status_code == 200
