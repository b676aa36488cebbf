"""The four API connectors against the mock server over HTTP: complete and incremental reads, corrections,
CURATED reconciled with the mock's records (twice: no duplicates), and no PAN landing anywhere."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta

import pyarrow.parquet as pq
import pytest
import requests

from connectors.apis.pans import luhn_valid
from finsight import catalog
from finsight.aws import client
from tests.connectors.apis.conftest import MockApi, curated_counts, landed_tables, load_and_merge, state_of

pytestmark = pytest.mark.stack

SOURCES = ["stripe", "paypal", "adyen", "fxrates"]


def _landed_rows(run) -> dict[str, int]:
    """stream -> rows the run landed (Adyen lands one batch per report)."""
    out: dict[str, int] = {}
    for b in run.batches:
        name = b.table.split(".", 1)[1]
        out[name] = out.get(name, 0) + b.rows
    return out


@pytest.mark.parametrize("source", SOURCES)
def test_curated_equals_mock_after_first_and_incremental_second_run(mock_api: MockApi, source: str) -> None:
    env = mock_api.env
    first = mock_api.extract(source)
    assert _landed_rows(first) == mock_api.records(source)  # every record of every stream, once
    load_and_merge(env, source)
    counts = curated_counts(env, source)
    assert {s: rows for s, (rows, _) in counts.items()} == mock_api.records(source)
    assert all(rows == keys for rows, keys in counts.values())
    before = {name: state_of(env, f"{source}.{name}") for name in env.api_sources[source].streams}
    assert all(before.values()), before  # watermarks saved after the batches

    change = mock_api.mutate(source)  # new records / a late update or correction at the provider
    second = mock_api.extract(source)
    landed = landed_tables(env, second)
    _assert_only_new_or_changed(env, source, before, landed, change)
    load_and_merge(env, source)
    counts = curated_counts(env, source)
    assert {s: rows for s, (rows, _) in counts.items()} == mock_api.records(source)
    assert all(rows == keys for rows, keys in counts.values())


def mock_records_total(env, source: str) -> int:
    return sum(r for r, _ in curated_counts(env, source).values())


def _assert_only_new_or_changed(env, source: str, before: dict, landed: dict, change: dict) -> None:
    api = env.api_sources[source]
    if source == "stripe":
        charges = landed["stripe.charges"]
        assert change["created"]["charges"] in charges.column("id").to_pylist()
        # only the lookback window before the watermark is re-read (late updates), never the whole history
        floor = int(before["charges"]["created"]) - api.lookback_minutes * 60
        created = [ts.timestamp() for ts in charges.column("created").to_pylist()]
        assert min(created) >= floor - 1
    elif source == "paypal":
        table = landed["paypal.transactions"]
        ids = set(table.column("transaction_id").to_pylist())
        assert change["created"] in ids and (change["updated"] is None or change["updated"] in ids)
        # nothing updated before the watermark is read again (the watermark second itself is, inclusively)
        watermark = datetime.strptime(before["transactions"]["transaction_updated_date"], "%Y-%m-%dT%H:%M:%S%z")
        updated = table.column("transaction_updated_date").to_pylist()
        assert min(updated) >= watermark.replace(tzinfo=None) - timedelta(minutes=api.lookback_minutes)
        assert len(ids) < mock_records_total(env, source) / 4
    elif source == "adyen":
        table = landed["adyen.settlement_details"]
        assert set(table.column("report_name").to_pylist()) == {change["published"]}  # older reports not again
        assert table.num_rows == change["rows"]
    else:
        table = landed["fxrates.daily_rates"]
        corrected = change["corrected"]
        rows = table.to_pylist()
        assert any(r["quote"] == corrected["quote"] and r["revision"] == corrected["revision"] for r in rows)
        watermarks = {s["partition"]["base"]: s["cursor"]["published_at"] for s in before["daily_rates"]["states"]}
        for r in rows:  # nothing older than its base's watermark
            assert r["published_at"].strftime("%Y-%m-%dT%H:%M:%SZ") >= watermarks[r["base"]]


def _curated(env, table: str, where: str) -> list[tuple]:
    from finsight import warehouse

    with warehouse.connect(env) as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM CURATED.{env.table(table).curated_name} WHERE {where}")
        names = [d[0].lower() for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_fx_correction_reaches_curated(mock_api: MockApi) -> None:
    env = mock_api.env
    mock_api.extract("fxrates")
    load_and_merge(env, "fxrates")
    corrected = mock_api.mutate("fxrates")["corrected"]
    where = f"rate_date = '{corrected['date']}' AND base = '{corrected['base']}' AND quote = '{corrected['quote']}'"
    (old,) = _curated(env, "fxrates.daily_rates", where)
    assert old["revision"] == corrected["revision"] - 1
    mock_api.extract("fxrates")
    load_and_merge(env, "fxrates")
    (new,) = _curated(env, "fxrates.daily_rates", where)
    assert new["revision"] == corrected["revision"]
    assert float(new["rate"]) == pytest.approx(corrected["rate"])


def test_stripe_late_update_reaches_curated(mock_api: MockApi) -> None:
    """A refund changes an existing charge (its `created` does not move): the lookback re-read picks it up."""
    env = mock_api.env
    mock_api.extract("stripe")
    load_and_merge(env, "stripe")
    lookback_floor = f"DATEADD(minute, -{env.api_sources['stripe'].lookback_minutes - 30}, "
    candidates = _curated(
        env,
        "stripe.charges",
        f"status = 'succeeded' AND amount_refunded = 0 AND created >= {lookback_floor}"
        "(SELECT MAX(created) FROM CURATED.STRIPE__CHARGES))",
    )
    charge = candidates[0]
    secret = __import__("finsight.secrets", fromlist=["read_secret"]).read_secret(env, env.api_sources["stripe"].secret)
    resp = requests.post(
        f"{env.api_sources['stripe'].base_url}/v1/refunds",
        data={"charge": charge["id"], "amount": 100},
        headers={"Authorization": f"Bearer {secret['api_key'].get_secret_value()}"},
        timeout=5,
    )
    resp.raise_for_status()
    refund_id = resp.json()["id"]
    mock_api.extract("stripe")
    load_and_merge(env, "stripe")
    (after,) = _curated(env, "stripe.charges", f"id = '{charge['id']}'")
    assert after["amount_refunded"] == 100
    assert _curated(env, "stripe.refunds", f"id = '{refund_id}'")


PAN = "4111111111111111"  # Luhn-valid test card number
PAN_SPACED = "4242 4242 4242 4242"


def test_planted_pan_in_nested_json_never_lands(mock_api: MockApi) -> None:
    """A PAN inside a nested field (string, spaced string, and a bare number) is tokenized before landing:
    no object the run wrote to S3 contains it, in raw bytes or decoded."""
    assert luhn_valid(PAN) and luhn_valid(PAN_SPACED.replace(" ", ""))
    env = mock_api.env
    secret = __import__("finsight.secrets", fromlist=["read_secret"]).read_secret(env, env.api_sources["stripe"].secret)
    charges = requests.get(
        f"{env.api_sources['stripe'].base_url}/v1/charges",
        params={"limit": 100},
        headers={"Authorization": f"Bearer {secret['api_key'].get_secret_value()}"},
        timeout=5,
    ).json()["data"]
    refundable = next(c for c in charges if c["status"] == "succeeded" and c["amount_refunded"] < c["amount"])
    resp = requests.post(  # metadata is free-form: the one place a careless integration could put a card number
        f"{env.api_sources['stripe'].base_url}/v1/refunds",
        data={"charge": refundable["id"], "amount": 1, "metadata[note]": f"card {PAN} / {PAN_SPACED}"},
        headers={"Authorization": f"Bearer {secret['api_key'].get_secret_value()}"},
        timeout=5,
    )
    resp.raise_for_status()
    run = mock_api.extract("stripe")
    s3 = client(env, "s3")
    bucket = env.aws.s3.bucket
    keys = [
        obj["Key"]
        for prefix in (catalog.s3_key(env, catalog.source_folder("stripe")), "state/stripe/")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in page.get("Contents", [])
    ]
    assert {k for b in run.batches for k in b.files} <= set(keys)
    for key in keys:  # every object: raw bytes, and decoded (Parquet pages are compressed)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert PAN.encode() not in body and PAN_SPACED.encode() not in body, key
        if key.endswith(".parquet"):
            text = json.dumps(pq.read_table(io.BytesIO(body)).to_pylist(), default=str)
            assert PAN not in text and PAN_SPACED not in text, key
    refunds = landed_tables(env, run)["stripe.refunds"]
    raw = "".join(refunds.column("_raw").to_pylist())
    assert PAN not in raw and PAN_SPACED not in raw
    assert any('"note":"card ' in r for r in refunds.column("_raw").to_pylist())  # the field itself landed
