"""Every fault the mock injects, once per connector kind, over real HTTP: transient faults are retried (bounded
exponential backoff with jitter, Retry-After honoured) and the run still lands every record; persistent faults
fail the stream with a message naming it, keep its watermark, and the next run completes."""

from __future__ import annotations

import pytest

from connectors.run import ExtractionError
from finsight.local.mock_apis.data import SPAN as MOCK_SPAN
from tests.connectors.apis.conftest import MockApi, state_of

pytestmark = pytest.mark.stack

SOURCES = ["stripe", "paypal", "adyen", "fxrates"]
TRANSIENT = {
    "5xx": ("error_burst", 2, {"status": 503}),
    "429_retry_after": ("error_burst", 2, {"status": 429, "delay_seconds": 1}),
    "timeout": ("slow", 1, {"delay_seconds": 2}),  # read timeout in these tests: 1 s
    "truncated": ("truncate", 1, {}),
    "non_json": ("non_json", 1, {}),
}


DAY_SLICED = ("stripe", "paypal")  # incremental streams the CDK reads one day per request


def _rows(run) -> dict[str, int]:
    out: dict[str, int] = {}
    for b in run.batches:
        name = b.table.split(".", 1)[1]
        out[name] = out.get(name, 0) + b.rows
    return out


@pytest.mark.parametrize("fault", sorted(TRANSIENT))
@pytest.mark.parametrize("source", SOURCES)
def test_transient_fault_is_retried_and_every_record_lands(mock_api: MockApi, source: str, fault: str) -> None:
    mode, count, extra = TRANSIENT[fault]
    if source == "paypal" and mode in ("truncate", "non_json"):
        extra = {**extra, "after": 1}  # on the API, not the OAuth token call (token endpoint bodies: see README)
    mock_api.fault(source, mode, count, **extra)
    run = mock_api.extract(source)
    assert mock_api.pending_faults() == {}  # the faulty responses were served (and survived)
    assert _rows(run) == mock_api.records(source)


def test_adyen_truncated_report_download_is_retried(mock_api: MockApi) -> None:
    mock_api.fault("adyen", "truncate", 1, after=1)  # the list answers, the first CSV download is cut in half
    run = mock_api.extract("adyen")
    assert mock_api.pending_faults() == {}
    assert _rows(run) == mock_api.records("adyen")


@pytest.mark.parametrize("source", SOURCES)
def test_retries_are_bounded_then_the_stream_fails_keeping_its_state(mock_api: MockApi, source: str) -> None:
    # adyen: the list answers, the CSV downloads fail; paypal: the token answers, the API calls fail
    mock_api.fault(source, "truncate", 500, after=1 if source in ("adyen", "paypal") else 0)
    # one retry proves the bound. The CDK sleeps at least 1 s before every retry (rate_limiting.py adds a second to
    # any backoff), so the sources read in one-day slices read the days the mock's data spans plus one, not 30 slices
    # a stream: a failed first read may commit its start as the stream's state (FX does), and the recovery below still
    # reaches every record from there. FX and Adyen send one request per partition or report: 30 days as configured.
    failing = (
        mock_api.with_first_read_days(source, MOCK_SPAN.days + 1, api_max_retries=1)
        if source in DAY_SLICED
        else mock_api.with_http(api_max_retries=1)
    )
    with pytest.raises(ExtractionError) as failed:
        mock_api.extract(source, env=failing)
    message = str(failed.value)
    for name in mock_api.env.api_sources[source].streams:
        assert f"{source}.{name}" in message  # the message names the stream
    assert "truncated or non-JSON" in message or "incomplete body" in message
    mock_api.clear_faults()
    # no watermark moved past unread data: the next run lands every record
    assert _rows(mock_api.extract(source)) == mock_api.records(source)


def test_429_without_retries_fails(mock_api: MockApi) -> None:
    """The 429 cases above pass because of the retry: with none allowed the same fault fails the stream."""
    mock_api.fault("fxrates", "error_burst", 1, status=429, delay_seconds=1)
    with pytest.raises(ExtractionError, match=r"fxrates\.daily_rates"):
        mock_api.extract("fxrates", env=mock_api.with_http(api_max_retries=0))


@pytest.mark.parametrize("source", ["stripe", "paypal"])  # the two paginated kinds (FX and Adyen do not page)
def test_repeating_pagination_cursor_fails_instead_of_looping(mock_api: MockApi, source: str) -> None:
    mock_api.fault(source, "repeat_page", 500)
    with pytest.raises(ExtractionError, match="pagination cursor repeated"):
        mock_api.extract(source)


def test_paypal_expired_token_is_refreshed(mock_api: MockApi) -> None:
    mock_api.fault("paypal", "expire_token", 1, after=3)  # tokens revoked in the middle of the run
    run = mock_api.extract("paypal")
    assert mock_api.pending_faults() == {}
    assert _rows(run) == mock_api.records("paypal")


def test_failed_stream_resumes_from_last_committed_window(mock_api: MockApi) -> None:
    env = mock_api.env
    mock_api.fault("paypal", "non_json", 500, after=6)  # the first windows commit, then the API breaks
    # no retry: what is under test is the commit, not the retry (above), and each retry waits >= 1 s per slice
    with pytest.raises(ExtractionError, match=r"paypal\.transactions"):
        mock_api.extract("paypal", env=mock_api.with_http(api_max_retries=0))
    committed = state_of(env, "paypal.transactions")
    assert committed, "the windows read before the failure are committed"
    mock_api.clear_faults()
    run = mock_api.extract("paypal")
    assert _rows(run) == mock_api.records("paypal")
    assert state_of(env, "paypal.transactions")["transaction_updated_date"] >= committed["transaction_updated_date"]
