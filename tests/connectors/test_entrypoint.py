"""`python -m connectors`: FINSIGHT_* parsing (exit 2 naming the variable), backfill windows, exit codes, JSON logs.

No AWS or database here: extraction itself is replaced where a test reaches it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import connectors.__main__ as entry
import connectors.run
from connectors.landing.writer import BatchResult
from connectors.run import ExtractionError, SourceRun

BASE = {"FINSIGHT_ENV": "dev", "FINSIGHT_SOURCE": "payments"}


def _run(environ: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str] | None = None) -> tuple[int, str]:
    code = entry.main(argv or [], dict(environ))
    return code, capsys.readouterr().out


def _events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# -- usage errors: exit 2, message names the variable ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({}, "FINSIGHT_ENV"),
        ({"FINSIGHT_ENV": "qa", "FINSIGHT_SOURCE": "payments"}, "FINSIGHT_ENV"),
        ({"FINSIGHT_ENV": "dev"}, "FINSIGHT_SOURCE"),
        ({**BASE, "FINSIGHT_SOURCE": "Payments!"}, "FINSIGHT_SOURCE"),
        ({**BASE, "FINSIGHT_SOURCE": "nosuchsource"}, "FINSIGHT_SOURCE"),
        ({**BASE, "FINSIGHT_MODE": "sometimes"}, "FINSIGHT_MODE"),
        ({**BASE, "FINSIGHT_BACKFILL_START": "2024-01-01"}, "FINSIGHT_BACKFILL_START"),  # window without backfill
        ({**BASE, "FINSIGHT_MODE": "backfill", "FINSIGHT_BACKFILL_START": "2024-01-01"}, "FINSIGHT_BACKFILL_END"),
        ({**BASE, "FINSIGHT_MODE": "backfill", "FINSIGHT_BACKFILL_END": "2024-01-08"}, "FINSIGHT_BACKFILL_START"),
        (
            {**BASE, "FINSIGHT_MODE": "backfill", "FINSIGHT_BACKFILL_START": "2024-13-01",
             "FINSIGHT_BACKFILL_END": "2024-01-08"},
            "FINSIGHT_BACKFILL_START",
        ),
        (
            {**BASE, "FINSIGHT_MODE": "backfill", "FINSIGHT_BACKFILL_START": "2024-01-08",
             "FINSIGHT_BACKFILL_END": "2024-01-01"},
            "FINSIGHT_BACKFILL_END",
        ),
        ({**BASE, "FINSIGHT_MODE": "backfill", "FINSIGHT_BACKFILL_CHUNK_DAYS": "week"}, "FINSIGHT_BACKFILL_CHUNK_DAYS"),
        ({**BASE, "FINSIGHT_MODE": "backfill", "FINSIGHT_BACKFILL_CHUNK_DAYS": "0"}, "FINSIGHT_BACKFILL_CHUNK_DAYS"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_naming_the_variable(
    environ: dict[str, str], variable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(environ, capsys)
    assert code == entry.EXIT_USAGE
    (error,) = [e for e in _events(out) if e["level"] == "error"]
    assert error["variable"] == variable
    assert error["error"].startswith(f"{variable}: ")


def test_arguments_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(BASE, capsys, argv=["payments"])
    assert code == entry.EXIT_USAGE
    assert "FINSIGHT_" in out


def test_help_documents_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run({}, capsys, argv=["--help"])
    assert code == entry.EXIT_OK
    for name in ("FINSIGHT_ENV", "FINSIGHT_SOURCE", "FINSIGHT_MODE", "FINSIGHT_BACKFILL_CHUNK_DAYS"):
        assert name in out


def test_bad_config_file_is_a_usage_error_naming_finsight_env(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / "base.yaml").write_text("schedule: {sla_minutes: 30}\n")
    (tmp_path / "environments" / "dev.yaml").write_text("name: dev\n")
    monkeypatch.setenv("FINSIGHT_ROOT", str(tmp_path))
    code, out = _run(BASE, capsys)
    assert code == entry.EXIT_USAGE
    assert _events(out)[-1]["variable"] == "FINSIGHT_ENV"


# -- modes and windows -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "mode"), [("INCREMENTAL", "incremental"), ("full", "full")])
def test_modes(text: str, mode: str) -> None:
    assert entry.read_invocation({**BASE, "FINSIGHT_MODE": text}).mode == mode


def test_mode_defaults_to_incremental() -> None:
    assert entry.read_invocation(BASE).mode == "incremental"


def test_derived_window_is_the_last_whole_days() -> None:
    now = datetime(2024, 3, 10, 2, 30, 12)
    assert entry.derive_window(7, now) == (datetime(2024, 3, 3), datetime(2024, 3, 10))
    # an aware "now" is converted to UTC first (the window is compared with naive UTC cursors)
    aware = datetime(2024, 3, 10, 1, 0, tzinfo=UTC) + timedelta(hours=-2)
    assert entry.derive_window(1, aware) == (datetime(2024, 3, 8), datetime(2024, 3, 9))


def test_window_from_chunk_days_variable_then_config_default() -> None:
    now = datetime(2024, 3, 10, 2, 30)
    inv = entry.read_invocation({**BASE, "FINSIGHT_MODE": "backfill", "FINSIGHT_BACKFILL_CHUNK_DAYS": "3"})
    assert entry.resolve_window(inv, 7, now) == (datetime(2024, 3, 7), datetime(2024, 3, 10))
    inv = entry.read_invocation({**BASE, "FINSIGHT_MODE": "backfill"})
    assert entry.resolve_window(inv, 7, now) == (datetime(2024, 3, 3), datetime(2024, 3, 10))


def test_explicit_window_wins_and_is_naive_utc() -> None:
    inv = entry.read_invocation(
        {
            **BASE,
            "FINSIGHT_MODE": "backfill",
            "FINSIGHT_BACKFILL_START": "2024-01-01",
            "FINSIGHT_BACKFILL_END": "2024-01-02T06:00:00+02:00",
            "FINSIGHT_BACKFILL_CHUNK_DAYS": "30",
        }
    )
    assert entry.resolve_window(inv, 7, datetime(2024, 3, 10)) == (datetime(2024, 1, 1), datetime(2024, 1, 2, 4))


def test_no_window_outside_backfill() -> None:
    inv = entry.read_invocation({**BASE, "FINSIGHT_BACKFILL_CHUNK_DAYS": "7"})  # harmless outside backfill
    assert entry.resolve_window(inv, 7, datetime(2024, 3, 10)) is None


# -- running: exit codes, JSON lines, secrets ------------------------------------------------------------------------
@pytest.fixture
def fake_extract(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    calls: dict[str, Any] = {}

    def extract_source(env: Any, source: str, mode: str = "incremental", **kwargs: Any) -> SourceRun:
        calls.update(env=env.name, source=source, mode=mode, **kwargs)
        if calls.get("fail"):
            raise ExtractionError(f"source {source!r}: 1 table(s) failed, watermarks kept:\npayments.payments: boom")
        batch = BatchResult("payments.payments", "20240310t020000z-abcd1234", rows=42, files=["k1", "k2"])
        batch.manifest_key = "raw/_manifests/batches/x.parquet"
        return SourceRun(source, [batch], 1.25)

    monkeypatch.setattr(connectors.run, "extract_source", extract_source)
    return calls


def test_success_logs_batch_rows_files_and_seconds(
    fake_extract: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {**BASE, "FINSIGHT_MODE": "backfill", "FINSIGHT_BACKFILL_START": "2024-01-01"}
    environ["FINSIGHT_BACKFILL_END"] = "2024-01-08"
    code, out = _run(environ, capsys)
    assert code == entry.EXIT_OK
    assert fake_extract["window"] == (datetime(2024, 1, 1), datetime(2024, 1, 8))
    events = {e["event"]: e for e in _events(out) if "event" in e}
    assert events["batch_landed"]["batch_id"] == "20240310t020000z-abcd1234"
    assert (events["batch_landed"]["rows"], events["batch_landed"]["files"]) == (42, 2)
    assert events["extraction_finished"]["seconds"] == round(1.25, 1)


def test_extraction_error_exits_1(fake_extract: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    fake_extract["fail"] = True
    code, out = _run(BASE, capsys)
    assert code == entry.EXIT_FAILED
    failed = [e for e in _events(out) if e.get("event") == "extraction_failed"]
    assert failed and "watermarks kept" in failed[0]["error"]


def test_injected_secret_values_are_dropped_and_never_logged(
    fake_extract: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    value = "s3cr3t-value-injected-by-ecs"  # pragma: allowlist secret
    environ = {**BASE, "FINSIGHT_SOURCE_SECRET": f'{{"password": "{value}"}}', "FINSIGHT_PAN_TOKENIZATION_KEY": value}
    code = entry.main([], environ)
    assert code == entry.EXIT_OK
    assert not set(entry.INJECTED_SECRETS) & set(environ)
    assert value not in capsys.readouterr().out
