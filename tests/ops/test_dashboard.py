"""The ops dashboard renders every section from the local Snowflake: Streamlit's AppTest in-process, and the running
app (`finsight dashboard`) in headless Chromium (Debian's `chromium`), its DOM checked and a screenshot taken."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from finsight.config import Environment, repo_root
from finsight.local.stack import LocalStack

pytestmark = pytest.mark.stack
APP = repo_root() / "finsight" / "ops" / "dashboard.py"
FINSIGHT = Path(sys.executable).with_name("finsight")
SECTIONS = ("DAG run timeline", "Freshness and lag per table", "Quality results", "Load volumes", "SLO burn",
            "Open alerts")  # fmt: skip


def test_app_renders_every_section(local_env: Environment, local_stack: LocalStack) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [h.value for h in at.header] == list(SECTIONS)
    assert at.title[0].value == f"FinSight ops: {local_env.name}"


def _wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - http://127.0.0.1 only
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds}s")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_running_dashboard_in_headless_chromium(
    local_env: Environment, local_stack: LocalStack, tmp_path: Path
) -> None:
    assert local_env.local is not None
    port = local_env.local.mock_api_port + 10
    server = subprocess.Popen([str(FINSIGHT), "dashboard", "--env", "local", "--port", str(port)], cwd=repo_root(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{port}/_stcore/health", 120)
        chromium = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,4000", "--virtual-time-budget=60000"]  # fmt: skip
        url = f"http://127.0.0.1:{port}/"
        dom = subprocess.run([*chromium, "--dump-dom", url], capture_output=True, text=True, timeout=240).stdout
        shot = tmp_path / "dashboard.png"
        subprocess.run([*chromium, f"--screenshot={shot}", url], capture_output=True, timeout=240, check=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    missing = [s for s in SECTIONS if s not in dom]
    assert not missing, f"sections missing from the rendered page: {missing}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
