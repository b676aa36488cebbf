"""Keys, credentials and resolved connector configs are written readable by their owner only."""

from __future__ import annotations

import stat
from pathlib import Path

from finsight.private_file import write_private


def test_a_new_file_and_an_existing_wider_one_end_owner_only(tmp_path: Path) -> None:
    fresh = tmp_path / "new" / "creds.json"
    write_private(fresh, '{"k": 1}')
    assert fresh.read_text() == '{"k": 1}' and stat.S_IMODE(fresh.stat().st_mode) == 0o600
    existing = tmp_path / "key.pem"
    existing.write_bytes(b"old")
    existing.chmod(0o644)
    write_private(existing, b"new key")
    assert existing.read_bytes() == b"new key" and stat.S_IMODE(existing.stat().st_mode) == 0o600
