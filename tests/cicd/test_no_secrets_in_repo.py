"""detect-secrets over the repository's files: nothing may appear that is not already audited in .secrets.baseline.

New false positives: audit them into the baseline (`detect-secrets audit .secrets.baseline`) or mark the line
`# pragma: allowlist secret`; a real secret must be removed and rotated, not baselined.
"""

from __future__ import annotations

import subprocess

import pytest

from finsight.config import repo_root

ROOT = repo_root()
BASELINE = ROOT / ".secrets.baseline"

detect_secrets = pytest.importorskip(
    "detect_secrets", reason="detect-secrets is not installed in this venv (pin it in requirements.lock, dev extra)"
)
from detect_secrets.core import baseline  # noqa: E402
from detect_secrets.core.secrets_collection import SecretsCollection  # noqa: E402
from detect_secrets.settings import transient_settings  # noqa: E402


def _repo_files() -> list[str]:
    """Tracked files plus new, not-ignored ones: a secret is caught before it is ever committed."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [f for f in out.stdout.splitlines() if f != BASELINE.name and (ROOT / f).is_file()]


def test_no_new_secrets_vs_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # baseline paths are relative to the repo root
    data = baseline.load_from_file(str(BASELINE))
    with transient_settings(data):  # the baseline's plugins + filters (incl. its exclude-lines regex)
        known = SecretsCollection.load_from_baseline(data)
        found = SecretsCollection()
        found.scan_files(*_repo_files())
    new = found - known
    report = [f"{name}:{s.line_number} {s.type}" for name, s in new]
    assert not report, "secrets not in .secrets.baseline:\n" + "\n".join(report)


def test_baseline_has_no_unaudited_or_real_secrets() -> None:
    data = baseline.load_from_file(str(BASELINE))
    for filename, results in data["results"].items():
        for r in results:
            assert r.get("is_secret") is False, f"{filename}:{r['line_number']} is not audited as a false positive"
