"""API streams are catalog tables (no name typed twice), manifests are valid airbyte-cdk manifests, PAN scrubbing,
HTTPS outside local, and the egress allow-list follows the config. No stack needed."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from pydantic import SecretStr

from connectors.apis.manifest import build_manifest
from connectors.apis.pans import luhn_valid, scrub_json, scrub_text
from connectors.apis.streams import cdk_config
from connectors.pci import PanTokenizer
from finsight import catalog, migration_vars
from finsight.config import Environment, load_environment
from tasks.dag import build_dag

TOKENIZER = PanTokenizer({"1": SecretStr("00" * 32)}, "1")


@pytest.mark.parametrize("env_name", ["local", "dev", "staging", "prod"])
def test_every_api_stream_gets_raw_curated_pipe_and_merge_task(env_name: str) -> None:
    env = load_environment(env_name)
    streams = env.api_tables()
    assert len(streams) == 8 and len(env.api_sources) == 4
    tables = {t["raw"]: t for t in migration_vars.migration_vars(env)["tables"]}
    pipes = {p["name"] for p in catalog.pipes(env)}
    tasks = {n.name: n for n in build_dag(env)}
    for s in streams:
        assert s.raw_name == f"{s.source}__{s.name}".upper()
        cols = [c["name"] for c in tables[s.raw_name]["columns"]]
        assert cols[-1] == "_RAW" and tables[s.raw_name]["columns"][-1]["type"] == "VARIANT"
        assert {k.upper() for k in s.primary_key} <= set(cols)
        assert f"{s.raw_name}_PIPE" in pipes
        node = tasks[f"MERGE_{s.raw_name}"]
        assert node.owner == env.api_sources[s.source].owner
        assert json.loads(node.args[0])["columns"][-1] == "_RAW"
    for name in env.api_sources:
        assert f"{name.upper()}__MANIFESTS_PIPE" in pipes
    assert env.table("stripe.charges").qualified == "stripe.charges"
    assert all(api.enabled for api in env.api_sources.values())  # schedules ENABLED in every environment


def test_https_is_required_outside_local() -> None:
    env = load_environment("prod")
    data = json.loads(env.model_dump_json())
    data["api_sources"]["stripe"]["base_url"] = "http://api.stripe.com"
    with pytest.raises(ValueError, match="https"):
        Environment.model_validate(data)


@pytest.mark.parametrize("source", ["stripe", "paypal", "adyen", "fxrates"])
def test_manifests_validate_against_the_cdk_schema(source: str) -> None:
    from airbyte_cdk.sources.declarative.concurrent_declarative_source import ConcurrentDeclarativeSource

    env = load_environment("local")
    api = env.api_sources[source]
    secret = {"api_key": SecretStr("k"), "client_id": SecretStr("c"), "client_secret": SecretStr("s")}
    config = cdk_config(env, api, secret, datetime(2026, 11, 1), None) | {"after_batch": 0}
    manifest = build_manifest(api, None, {"read_timeout_in_seconds": 7.0})
    assert [s["name"] for s in manifest["streams"]] == list(api.streams)
    assert manifest["streams"][0]["retriever"]["requester"]["read_timeout_in_seconds"] == 7.0  # from the config
    ConcurrentDeclarativeSource(config=config, source_config=manifest, catalog=None, state=None)  # validates


@pytest.mark.parametrize("source", tuple(load_environment("local").api_sources))
def test_manifest_spec_is_the_cdk_config(source: str) -> None:
    """The CDK's own declarative source answers `spec` from the manifest; the config the ECS path builds passes it,
    credentials are airbyte_secret, and a config without base_url, or without credentials and their secret, fails."""
    import logging

    from airbyte_cdk.sources.declarative.concurrent_declarative_source import ConcurrentDeclarativeSource
    from jsonschema import Draft7Validator

    env = load_environment("local")
    api = env.api_sources[source]
    secret = {"api_key": SecretStr("k"), "client_id": SecretStr("c"), "client_secret": SecretStr("s")}
    config = cdk_config(env, api, secret, datetime(2026, 11, 1), None) | (
        {"after_batch": 0} if api.kind == "adyen" else {}
    )
    spec = ConcurrentDeclarativeSource(source_config=build_manifest(api)).spec(logging.getLogger("test"))
    validator = Draft7Validator(spec.connectionSpecification)
    validator.validate(config)
    validator.validate({"base_url": api.base_url, "secret_name": api.secret, "env": "local", "source": source})
    creds = api.credential_fields
    assert all(spec.connectionSpecification["properties"][f]["airbyte_secret"] is True for f in creds)
    assert not validator.is_valid({k: v for k, v in config.items() if k not in creds})
    assert not validator.is_valid({k: v for k, v in config.items() if k != "base_url"})
    assert not validator.is_valid(config | {"typo": 1})


@pytest.mark.parametrize(
    "text",
    ["4111111111111111", "card 4111 1111 1111 1111 exp", "x-5500-0000-0000-0004-y", "378282246310005"],
)
def test_luhn_valid_pans_are_tokenized(text: str) -> None:
    out = scrub_text(text, TOKENIZER)
    digits = "".join(ch for ch in text if ch.isdigit())
    assert digits not in out.replace(" ", "").replace("-", "")


@pytest.mark.parametrize(
    "text", ["4111111111111112", "1795777113", "txn_4TyrfkaOCUIiyjENEhUdUoqG", "12345678901234567890"]
)
def test_non_pans_are_left_alone(text: str) -> None:
    assert scrub_text(text, TOKENIZER) == text


def test_json_walker_reaches_nested_strings_and_numbers() -> None:
    record = {"a": {"b": [{"note": "pan 4111111111111111"}, 4111111111111111, 42]}, "ok": True}
    out = scrub_json(record, TOKENIZER)
    assert "4111111111111111" not in json.dumps(out)
    assert out["a"]["b"][2] == 42 and out["ok"] is True
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def test_egress_allow_list_follows_the_config() -> None:
    env = load_environment("prod")
    hosts = catalog.api_egress_hosts(env)
    assert hosts["stripe"] == ["api.stripe.com"]
    import sys

    sys.path.insert(0, "cdktf")
    from finsight_infra.egress import allowed_domains
    from finsight_infra.naming import Names

    domains = allowed_domains(Names(env))
    assert {h for hs in hosts.values() for h in hs} <= set(domains)


@pytest.mark.parametrize("source", tuple(load_environment("local").api_sources))
def test_requests_are_paced_to_the_configured_rate(source: str) -> None:
    """The CDK builds the manifest's budget at `rate_limit_per_second`: a second's worth of calls goes, the next one
    waits (CallRateLimitHit when not blocking). Without the budget every burst beyond the rate is a 429 and a
    whole-second Retry-After."""
    import math

    import requests
    from airbyte_cdk.sources.declarative.models.declarative_component_schema import HTTPAPIBudget
    from airbyte_cdk.sources.declarative.parsers.model_to_component_factory import ModelToComponentFactory
    from airbyte_cdk.sources.streams.call_rate import CallRateLimitHit

    api = load_environment("local").api_sources[source]
    definition = build_manifest(api)["api_budget"]
    budget = ModelToComponentFactory().create_component(HTTPAPIBudget, definition, config={})
    request = requests.Request("GET", f"{api.base_url}/any").prepare()
    for _ in range(max(1, math.floor(api.rate_limit_per_second))):
        budget.acquire_call(request, block=False)
    with pytest.raises(CallRateLimitHit):
        budget.acquire_call(request, block=False)
