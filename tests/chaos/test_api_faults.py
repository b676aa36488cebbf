"""The payment APIs misbehaving on the stack's own mock server: a 429 storm, 5xx bursts, truncated bodies (a CSV
report, then JSON pages), an expired token (retried: every record lands), then a looping cursor (the stream fails,
keeps its window, and the next run completes). The verdict covers the API streams too (`finsight local verify`:
CURATED vs the mock)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connectors.apis.run import extract_api_source
from connectors.run import ExtractionError
from finsight.config import Environment
from finsight.local.graph import on_landed
from finsight.local.stack import LocalStack

pytestmark = [pytest.mark.stack, pytest.mark.chaos, pytest.mark.timeout(600)]

# one fault per source at a time (the mock keeps one per source): two rounds
TRANSIENT: list[dict[str, dict[str, Any]]] = [
    {
        "stripe": {"mode": "error_burst", "count": 5, "status": 429, "delay_seconds": 1},  # Retry-After storm
        "paypal": {"mode": "expire_token", "count": 1, "after": 1},  # tokens revoked mid-run
        "adyen": {"mode": "truncate", "count": 1, "after": 1},  # a report download (CSV) cut in half
        "fxrates": {"mode": "error_burst", "count": 3, "status": 503},
    },
    {
        "stripe": {"mode": "truncate", "count": 2, "after": 1},  # JSON list pages cut in half mid-run
        "fxrates": {"mode": "truncate", "count": 1, "after": 1},
    },
]


def _admin(env: Environment, method: str, path: str, **kwargs: Any) -> Any:
    assert env.local is not None
    resp = requests.request(method, f"http://127.0.0.1:{env.local.mock_api_port}/_admin/{path}", timeout=10, **kwargs)
    resp.raise_for_status()
    return resp.json() if resp.content else None


def test_payment_apis_under_faults(scenario, local_env: Environment, local_stack: LocalStack) -> None:
    s = scenario(
        "payment APIs: 429 storm, 5xx burst, truncated body, expired token, looping cursor",
        "faults injected by the mock APIs (`/_admin/faults`) during extraction; truncated: an Adyen CSV report, "
        "Stripe and FX JSON pages",
        "retries (Retry-After, backoff); the looping stream fails alone and the next run completes",
    )
    _admin(local_env, "DELETE", "faults")
    s.fault()
    try:
        for faults in TRANSIENT:
            for source in faults:
                _admin(local_env, "POST", "mutate", json={"source": source})  # provider activity to read
            for source, fault in faults.items():
                _admin(local_env, "POST", "faults", json={"source": source, **fault})
            for source in faults:
                extract_api_source(local_env, source)
            assert _admin(local_env, "GET", "faults")["faults"] == {}  # every faulty answer was served and survived

        _admin(local_env, "POST", "mutate", json={"source": "stripe"})
        _admin(local_env, "POST", "faults", json={"source": "stripe", "mode": "repeat_page", "count": 500})
        with pytest.raises(ExtractionError, match="pagination cursor repeated"):
            extract_api_source(local_env, "stripe")
    finally:
        _admin(local_env, "DELETE", "faults")
    extract_api_source(local_env, "stripe")  # the next run, the API healthy again
    pipe, dag = on_landed(local_env)
    assert not pipe.errors and dag is not None and dag.state == "SUCCEEDED"
    s.verify(local_env)
