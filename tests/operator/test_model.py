"""The pydantic model refuses what the CRD refuses (the API-server side is in test_apiserver)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pop_operator.model import REGION_NAME_MAX, EdgePopSpec, parse_spec
from tests.operator.samples import example_body, example_spec

INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "missing origin": ({"origin": None}, "origin"),
    "negative replicas": ({"regions": [{"name": "eu", "replicas": -1}]}, "replicas"),
    "bad region name": ({"regions": [{"name": "EU_West"}]}, "name"),
    "unknown engine": ({"engine": "mysql"}, "engine"),
    "no regions": ({"regions": []}, "regions"),
    "zero interval": ({"sync": {"intervalSeconds": 0}}, "intervalSeconds"),
}


def test_example_parses_with_defaults() -> None:
    spec = example_spec()
    assert spec.engine == "libsql"
    assert spec.regions[1].storage.size == "1Gi"
    assert spec.regions[1].replicas == 1
    assert spec.data_retention == "Retain"
    assert spec.sync.redis is not None and spec.sync.redis.channel == "sync"


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_specs_are_refused_naming_the_field(case: str) -> None:
    change, field = INVALID[case]
    raw = example_body()["spec"]
    raw.update(change)
    if raw["origin"] is None:
        del raw["origin"]
    with pytest.raises(ValidationError) as caught:
        parse_spec(raw)
    assert field in str(caught.value)


@given(st.from_regex(r"[a-z]([-a-z0-9]{0,22}[a-z0-9])?", fullmatch=True))
def test_every_dns_label_region_name_is_accepted(name: str) -> None:
    raw = example_body()["spec"]
    raw["regions"] = [{"name": name}]
    assert parse_spec(raw).regions[0].name == name


@given(st.text(min_size=1, max_size=40))
def test_region_names_outside_the_pattern_are_refused(name: str) -> None:
    raw = example_body()["spec"]
    raw["regions"] = [{"name": name}]
    valid = bool(re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)) and len(name) <= REGION_NAME_MAX
    if valid:
        assert parse_spec(raw).regions[0].name == name
    else:
        with pytest.raises(ValidationError):
            parse_spec(raw)


def test_round_trip_through_camel_case() -> None:
    spec = example_spec()
    dumped = spec.model_dump(mode="json", by_alias=True)
    assert "clientAuthSecretRef" in dumped
    assert EdgePopSpec.model_validate(dumped) == spec
