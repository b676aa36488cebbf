"""The ops dashboard renders every section from the local Snowflake: Streamlit's AppTest in-process, and the running
app (`finsight dashboard`) in headless Chromium (Debian's `chromium`), its DOM checked and a screenshot taken."""

from __future__ import annotations

import base64
import json
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


class DevTools:
    """Just enough of the Chrome DevTools protocol: evaluate JavaScript, take a screenshot."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self.ws, self.n = connect(ws_url, max_size=None), 0

    def call(self, method: str, params: dict | None = None) -> dict:
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params or {}}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.n:
                return message["result"]

    def text(self) -> str:
        result = self.call("Runtime.evaluate", {"expression": "document.body.innerText", "returnByValue": True})
        return result["result"].get("value") or ""


def _page(port: int) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as resp:
                pages = [t for t in json.load(resp) if t["type"] == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("headless chromium did not open the page")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_running_dashboard_in_headless_chromium(
    local_env: Environment, local_stack: LocalStack, tmp_path: Path
) -> None:
    assert local_env.local is not None
    port, devtools_port = local_env.local.mock_api_port + 10, local_env.local.mock_api_port + 11
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen([str(FINSIGHT), "dashboard", "--env", "local", "--port", str(port)], cwd=repo_root(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    browser = None
    try:
        _wait_http(f"{url}_stcore/health", 120)
        browser = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--window-size=1400,3000", f"--remote-debugging-port={devtools_port}", "--remote-allow-origins=*", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        page = DevTools(_page(devtools_port))
        deadline, text = time.monotonic() + 180, ""
        while time.monotonic() < deadline and not all(s in text for s in SECTIONS):
            time.sleep(1)
            text = page.text()
        shot = page.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    finally:
        for proc in (browser, server):
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    missing = [s for s in SECTIONS if s not in text]
    assert not missing, f"sections missing from the rendered page: {missing}"
    assert f"FinSight ops: {local_env.name}" in text
    png = base64.b64decode(shot["data"])
    (tmp_path / "dashboard.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
