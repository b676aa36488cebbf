"""The mock payment-API server, exercised over real HTTP: ``python -m finsight.local.mock_apis`` on 127.0.0.1.

One server process serves the whole module; tests run in file order and only the refund test mutates data, so the
determinism test (which compares against an in-process app) runs before it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from finsight.config.loader import load_environment, repo_root
from finsight.local.mock_apis import CREDENTIALS_ENV, create_app
from finsight.local.mock_apis.adyen import SETTLEMENT_DETAIL_COLUMNS
from tests.ports import free_port

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
SEED = 42
CREDENTIALS = {
    "stripe": "sk_test_mockstripe_4242",
    "paypal": "client-mock-id:paypal-mock-secret",
    "adyen": "AQE_mock_adyen_key_1234",
    "fxrates": "fx_mock_api_key_5678",
}
SOURCES = load_environment("local").api_sources
PATHS = {name: {stream: spec.path for stream, spec in src.streams.items()} for name, src in SOURCES.items()}


@dataclass
class Server:
    base: str
    log: Path

    def url(self, source: str, path: str) -> str:
        return f"{self.base}/{source}{path}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    log = tmp_path_factory.mktemp("mock_apis") / "server.log"
    env = {**os.environ, CREDENTIALS_ENV: json.dumps(CREDENTIALS), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "finsight.local.mock_apis", "--port", str(port), "--seed", str(SEED)]
    cmd += ["--scale", "1.0", "--now", NOW.isoformat()]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=repo_root(), env=env, stdout=out, stderr=subprocess.STDOUT)
    srv = Server(base=f"http://127.0.0.1:{port}", log=log)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mock server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if requests.get(f"{srv.base}/_admin/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mock server not ready after 15 s:\n{log.read_text()}")
            time.sleep(0.05)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def call(method: str, url: str, **kwargs: Any) -> requests.Response:
    """Like a well-behaved connector: honour 429 + Retry-After, a few times."""
    for _ in range(6):
        resp = requests.request(method, url, timeout=10, **kwargs)
        if resp.status_code != 429:
            return resp
        time.sleep(float(resp.headers["Retry-After"]))
    return resp


STRIPE_AUTH = {"Authorization": f"Bearer {CREDENTIALS['stripe']}"}
ADYEN_AUTH = {"X-API-Key": CREDENTIALS["adyen"]}
FX_AUTH = {"X-API-Key": CREDENTIALS["fxrates"]}


def stripe_walk(server: Server, stream: str, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    params.setdefault("limit", 100)
    while True:
        resp = call("GET", server.url("stripe", PATHS["stripe"][stream]), headers=STRIPE_AUTH, params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["object"] == "list" and body["url"] == PATHS["stripe"][stream]
        out += body["data"]
        if not body["has_more"]:
            return out
        params["starting_after"] = body["data"][-1]["id"]


def paypal_token(server: Server) -> str:
    user, _, password = CREDENTIALS["paypal"].partition(":")
    resp = call(
        "POST",
        server.url("paypal", "/v1/oauth2/token"),
        auth=(user, password),
        data={"grant_type": "client_credentials"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["expires_in"] > 0
    return resp.json()["access_token"]


def paypal_search(server: Server, token: str, **params: Any) -> requests.Response:
    url = server.url("paypal", PATHS["paypal"]["transactions"])
    return call("GET", url, headers={"Authorization": f"Bearer {token}"}, params=params)


def set_fault(server: Server, **body: Any) -> None:
    resp = requests.post(f"{server.base}/_admin/faults", json=body, timeout=5)
    assert resp.status_code == 200, resp.text


# -- auth -------------------------------------------------------------------------------------------------------


def test_auth_rejected_without_or_with_wrong_credentials(server: Server) -> None:
    charges = server.url("stripe", PATHS["stripe"]["charges"])
    for headers in ({}, {"Authorization": "Bearer sk_test_wrong"}):
        resp = call("GET", charges, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["type"] == "invalid_request_error"

    token_url = server.url("paypal", "/v1/oauth2/token")
    resp = call("POST", token_url, auth=("client-mock-id", "wrong"), data={"grant_type": "client_credentials"})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    window = {"start_date": "2026-11-08T00:00:00Z", "end_date": "2026-11-09T00:00:00Z"}
    for token in ("", "A21AAnot-a-real-token"):
        resp = paypal_search(server, token, **window)
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"

    reports = server.url("adyen", PATHS["adyen"]["settlement_details"])
    for headers in ({}, {"X-API-Key": "wrong"}):
        resp = call("GET", reports, headers=headers)
        assert resp.status_code == 401 and resp.json()["errorType"] == "security"

    rates = server.url("fxrates", PATHS["fxrates"]["daily_rates"])
    assert call("GET", rates).json()["error"]["type"] == "missing_api_key"
    resp = call("GET", rates, params={"apikey": "wrong"})
    assert resp.status_code == 401 and resp.json()["error"]["type"] == "invalid_api_key"
    assert call("GET", rates, params={"apikey": CREDENTIALS["fxrates"]}).status_code == 200


# -- determinism (before any test mutates data) -------------------------------------------------------------------


def snapshot(get: Any) -> dict[str, Any]:
    """First pages of every stream, through any client offering get(url, headers=...)."""
    out = {s: get(f"/stripe{p}?limit=100", STRIPE_AUTH) for s, p in PATHS["stripe"].items()}
    out["adyen"] = get(f"/adyen{PATHS['adyen']['settlement_details']}", ADYEN_AUTH)
    out["fx"] = get(f"/fxrates{PATHS['fxrates']['daily_rates']}?start_date=2026-01-01&end_date=2026-12-31", FX_AUTH)
    return out


def test_same_seed_same_data_across_processes(server: Server) -> None:
    def over_http(path: str, headers: dict[str, str]) -> Any:
        return call("GET", f"{server.base}{path}", headers=headers).json()

    def in_process(app_client: Any) -> Any:
        return lambda path, headers: app_client.get(path, headers=headers).get_json()

    same = create_app(CREDENTIALS, seed=SEED, scale=1.0, now=NOW).test_client()
    other = create_app(CREDENTIALS, seed=SEED + 1, scale=1.0, now=NOW).test_client()
    remote = snapshot(over_http)
    assert remote == snapshot(in_process(same))  # no per-process randomness (e.g. hash()) leaks into the data
    assert remote["charges"]["data"] != snapshot(in_process(other))["charges"]["data"]


# -- stripe -----------------------------------------------------------------------------------------------------


def test_stripe_pagination_walks_all_pages_without_duplicates(server: Server) -> None:
    charges = stripe_walk(server, "charges")
    ids = [c["id"] for c in charges]
    assert len(ids) > 100 and len(set(ids)) == len(ids)
    assert all(i.startswith("ch_") for i in ids)
    keys = [(c["created"], c["id"]) for c in charges]
    assert keys == sorted(keys, reverse=True)  # newest first, like Stripe
    newest = charges[0]["created"]
    assert NOW.timestamp() - 3 * 86_400 <= charges[-1]["created"] <= newest <= NOW.timestamp()
    card = charges[0]["payment_method_details"]["card"]
    assert re.fullmatch(r"\d{4}", card["last4"]) and "number" not in card
    assert isinstance(charges[0]["amount"], int) and charges[0]["currency"].islower()
    # a different page size walks the very same sequence
    refunds = stripe_walk(server, "refunds", limit=100)
    assert [r["id"] for r in stripe_walk(server, "refunds", limit=7)] == [r["id"] for r in refunds]
    for stream in ("disputes", "payouts", "balance_transactions"):
        assert stripe_walk(server, stream, limit=100), stream


def test_stripe_created_filters(server: Server) -> None:
    charges = stripe_walk(server, "charges")
    pivot = charges[len(charges) // 2]["created"]
    newer = stripe_walk(server, "charges", **{"created[gte]": pivot})
    older = stripe_walk(server, "charges", **{"created[lt]": pivot})
    assert {c["id"] for c in newer} == {c["id"] for c in charges if c["created"] >= pivot}
    assert {c["id"] for c in older} == {c["id"] for c in charges if c["created"] < pivot}
    assert len(newer) + len(older) == len(charges)


def test_stripe_rejects_bad_parameters(server: Server) -> None:
    url = server.url("stripe", PATHS["stripe"]["charges"])
    for params in ({"limit": 101}, {"limit": "x"}, {"created[gte]": "yesterday"}, {"bogus": 1}):
        resp = call("GET", url, headers=STRIPE_AUTH, params=params)
        assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error", params
    resp = call("GET", url, headers=STRIPE_AUTH, params={"starting_after": "ch_doesnotexist"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "resource_missing"


def test_stripe_refund_create_is_idempotent(server: Server) -> None:
    charges = stripe_walk(server, "charges")
    charge = next(c for c in reversed(charges) if c["status"] == "succeeded" and c["amount_refunded"] == 0)
    url = server.url("stripe", PATHS["stripe"]["refunds"])
    headers = {**STRIPE_AUTH, "Idempotency-Key": "test-refund-1"}
    first = call("POST", url, headers=headers, data={"charge": charge["id"], "amount": 1})
    assert first.status_code == 200, first.text
    again = call("POST", url, headers=headers, data={"charge": charge["id"], "amount": 1})
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    clash = call("POST", url, headers=headers, data={"charge": charge["id"], "amount": 2})
    assert clash.status_code == 400 and clash.json()["error"]["type"] == "idempotency_error"
    newest = call("GET", url, headers=STRIPE_AUTH, params={"limit": 1}).json()["data"][0]
    assert newest["id"] == first.json()["id"] and newest["charge"] == charge["id"]


# -- paypal -----------------------------------------------------------------------------------------------------


def test_paypal_window_limit_and_pages_add_up(server: Server) -> None:
    token = paypal_token(server)
    start = NOW - timedelta(days=4)
    too_long = {"start_date": start.isoformat(), "end_date": (start + timedelta(days=31, seconds=1)).isoformat()}
    resp = paypal_search(server, token, **too_long)
    assert resp.status_code == 400
    body = resp.json()
    assert body["name"] == "INVALID_REQUEST" and body["message"] and "31 days" in body["details"][0]["issue"]
    assert paypal_search(server, token, start_date=start.isoformat()).status_code == 400  # end_date is required

    window = {"start_date": start.strftime("%Y-%m-%dT%H:%M:%S+0000"), "end_date": NOW.strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert paypal_search(server, token, page_size=501, **window).status_code == 400
    first = paypal_search(server, token, page_size=250, **window).json()
    seen: list[str] = []
    for page in range(1, first["total_pages"] + 1):
        body = paypal_search(server, token, page_size=250, page=page, **window).json()
        assert body["page"] == page and body["total_items"] == first["total_items"]
        for t in body["transaction_details"]:
            info = t["transaction_info"]
            assert isinstance(info["transaction_amount"]["value"], str) and "payer_info" in t
            seen.append(info["transaction_id"])
    assert first["total_pages"] > 1 and len(seen) == first["total_items"] == len(set(seen))

    # consecutive half-open windows partition the transactions
    mid = (NOW - timedelta(days=1)).isoformat()
    left = paypal_search(server, token, start_date=window["start_date"], end_date=mid).json()["total_items"]
    right = paypal_search(server, token, start_date=mid, end_date=window["end_date"]).json()["total_items"]
    assert left + right == first["total_items"]


# -- adyen ------------------------------------------------------------------------------------------------------


def test_adyen_lists_and_downloads_settlement_reports(server: Server) -> None:
    base = PATHS["adyen"]["settlement_details"]
    reports = call("GET", server.url("adyen", base), headers=ADYEN_AUTH).json()["data"]
    assert len(reports) >= 3
    report = reports[-1]
    assert re.fullmatch(r"settlement_detail_report_batch_\d+\.csv", report["name"])
    resp = call("GET", server.url("adyen", report["downloadPath"]), headers=ADYEN_AUTH)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(resp.text))
    rows = list(reader)
    assert reader.fieldnames == SETTLEMENT_DETAIL_COLUMNS and len(rows) == report["rows"]
    assert {r["Batch Number"] for r in rows} == {str(report["batchNumber"])}
    assert {r["Type"] for r in rows} <= {"Settled", "Refunded", "Chargeback", "Fee", "MerchantPayout"}
    assert [r["Type"] for r in rows].count("MerchantPayout") == 1
    keys = [(r["Batch Number"], r["Psp Reference"], r["Type"]) for r in rows]
    assert len(keys) == len(set(keys))  # the configured primary key holds

    missing = call("GET", server.url("adyen", f"{base}/settlement_detail_report_batch_0.csv"), headers=ADYEN_AUTH)
    assert missing.status_code == 404 and missing.json()["status"] == 404


# -- fx ---------------------------------------------------------------------------------------------------------


def test_fx_late_correction_is_visible_to_published_at_reader(server: Server) -> None:
    url = server.url("fxrates", PATHS["fxrates"]["daily_rates"])
    rates = call("GET", url, headers=FX_AUTH, params={"base": "USD", "start_date": "2026-01-01"}).json()["rates"]
    assert {r["base"] for r in rates} == {"USD"} and len({r["date"] for r in rates}) >= 3
    corrected = next(r for r in rates if r["revision"] == 2)
    same_day = [r for r in rates if r["date"] == corrected["date"] and r["revision"] == 1]
    assert same_day and all(r["published_at"] < corrected["published_at"] for r in same_day)

    # An incremental reader whose cursor sits after that day's regular publication still sees the correction.
    cursor = max(r["published_at"] for r in same_day)
    since = (datetime.fromisoformat(cursor) + timedelta(seconds=1)).isoformat()
    params = {"base": "USD", "date": corrected["date"], "published_since": since}
    late = call("GET", url, headers=FX_AUTH, params=params).json()["rates"]
    assert corrected in late and all(r["revision"] == 2 for r in late)


# -- rate limits and faults -------------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(server: Server) -> None:
    url = server.url("adyen", PATHS["adyen"]["settlement_details"])
    burst = int(SOURCES["adyen"].rate_limit_per_second) * 3
    limited = [
        r for r in (requests.get(url, headers=ADYEN_AUTH, timeout=5) for _ in range(burst)) if r.status_code == 429
    ]
    assert limited, "no 429 within a burst of three seconds' worth of requests"
    retry_after = int(limited[0].headers["Retry-After"])
    assert retry_after >= 1 and limited[0].json()["status"] == 429
    time.sleep(retry_after)
    assert requests.get(url, headers=ADYEN_AUTH, timeout=5).status_code == 200


def test_fault_error_burst_then_recovers(server: Server) -> None:
    url = server.url("stripe", PATHS["stripe"]["payouts"])
    set_fault(server, source="stripe", mode="error_burst", count=2, status=503)
    for _ in range(2):
        resp = call("GET", url, headers=STRIPE_AUTH)
        assert resp.status_code == 503 and resp.json()["error"]["type"] == "api_error"
    assert call("GET", url, headers=STRIPE_AUTH).status_code == 200


def test_fault_slow(server: Server) -> None:
    url = server.url("fxrates", PATHS["fxrates"]["daily_rates"])
    set_fault(server, source="fxrates", mode="slow", count=1, delay_seconds=0.6)
    started = time.monotonic()
    assert call("GET", url, headers=FX_AUTH).status_code == 200
    assert time.monotonic() - started >= 0.6
    started = time.monotonic()
    assert call("GET", url, headers=FX_AUTH).status_code == 200
    assert time.monotonic() - started < 0.5


def test_fault_truncate_cuts_body_in_half(server: Server) -> None:
    url = server.url("stripe", PATHS["stripe"]["charges"])
    whole = call("GET", url, headers=STRIPE_AUTH, params={"limit": 5})
    set_fault(server, source="stripe", mode="truncate", count=1)
    cut = call("GET", url, headers=STRIPE_AUTH, params={"limit": 5})
    assert cut.status_code == 200 and len(cut.content) == len(whole.content) // 2
    with pytest.raises(ValueError):
        cut.json()
    assert call("GET", url, headers=STRIPE_AUTH, params={"limit": 5}).content == whole.content


def test_faults_clear_and_validate(server: Server) -> None:
    url = server.url("adyen", PATHS["adyen"]["settlement_details"])
    set_fault(server, source="adyen", mode="error_burst", count=50, status=500)
    assert call("GET", url, headers=ADYEN_AUTH).status_code == 500
    assert requests.get(f"{server.base}/_admin/faults", timeout=5).json()["faults"]["adyen"]["remaining"] == 49
    assert requests.delete(f"{server.base}/_admin/faults", timeout=5).json() == {"faults": {}}
    assert call("GET", url, headers=ADYEN_AUTH).status_code == 200
    for bad in ({"source": "nope", "mode": "slow"}, {"source": "adyen", "mode": "explode"}, {"source": "adyen"}):
        assert requests.post(f"{server.base}/_admin/faults", json=bad, timeout=5).status_code == 400


# -- last: nothing secret reached the log -------------------------------------------------------------------------


def test_server_log_holds_no_credentials(server: Server) -> None:
    call("GET", server.url("fxrates", PATHS["fxrates"]["daily_rates"]), params={"apikey": CREDENTIALS["fxrates"]})
    deadline = time.monotonic() + 10  # the access-log line lands after the response: wait for it, not a fixed time
    while "GET /fxrates" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log.read_text()
    assert "GET /fxrates" in log and "apikey=***" in log  # requests are logged, redacted
    for secret in (*CREDENTIALS.values(), *CREDENTIALS["paypal"].split(":")):
        assert secret not in log
