"""`finsight reconcile | batches | quarantine` through the installed entry point, on the real local stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from finsight import warehouse
from finsight.config import Environment
from finsight.local.cycle import hourly_cycle
from finsight.local.stack import LocalStack

pytestmark = pytest.mark.stack
FINSIGHT = str(Path(sys.executable).with_name("finsight"))


def finsight(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FINSIGHT, *args], capture_output=True, text=True, timeout=600)


def _reconcile_payments() -> tuple[int, dict]:
    out = finsight("reconcile", "--env", "local", "--table", "payments.payments", "--json")
    (result,) = json.loads(out.stdout)
    return out.returncode, result


def test_reconcile_finds_every_kind_of_difference(local_env: Environment, local_stack: LocalStack) -> None:
    assert hourly_cycle(local_env).ok
    code, result = _reconcile_payments()
    assert code == 0 and result["equal"], result
    with warehouse.connect(local_env) as conn:
        cur = conn.cursor()
        cur.execute("SELECT PAYMENT_ID, AMOUNT, CARD_NUMBER_TOKEN FROM CURATED.PAYMENTS__PAYMENTS "
                    "WHERE CARD_NUMBER_TOKEN IS NOT NULL ORDER BY PAYMENT_ID LIMIT 3")  # fmt: skip
        (a, amount, _), (b, _, token), (c, *_) = cur.fetchall()
        backup = "CREATE OR REPLACE TABLE OPS.TEST_PAYMENTS_BACKUP AS SELECT * FROM CURATED.PAYMENTS__PAYMENTS "
        cur.execute(backup + f"WHERE PAYMENT_ID IN ({a}, {b}, {c})")
        try:
            cur.execute(f"UPDATE CURATED.PAYMENTS__PAYMENTS SET AMOUNT = AMOUNT + 1 WHERE PAYMENT_ID = {a}")
            # a token that is not the HMAC of the card number under any key version
            cur.execute(
                f"UPDATE CURATED.PAYMENTS__PAYMENTS SET CARD_NUMBER_TOKEN = '{'0' * 64}' WHERE PAYMENT_ID = {b}"
            )
            cur.execute(f"DELETE FROM CURATED.PAYMENTS__PAYMENTS WHERE PAYMENT_ID = {c}")
            cur.execute(f"INSERT INTO CURATED.PAYMENTS__PAYMENTS SELECT * REPLACE (9999999999 AS PAYMENT_ID) "
                        f"FROM OPS.TEST_PAYMENTS_BACKUP WHERE PAYMENT_ID = {a}")  # fmt: skip
            code, result = _reconcile_payments()
            assert code == 1
            assert (result["missing"], result["extra"], result["different"]) == (1, 1, 2), result
            assert result["samples"]["missing"] == [[str(c)]] and result["samples"]["extra"] == [["9999999999"]]
            assert sorted(result["samples"]["different"]) == sorted([[str(a)], [str(b)]])
            assert token not in json.dumps(result) and str(amount) not in json.dumps(result)  # keys only
        finally:
            cur.execute(f"DELETE FROM CURATED.PAYMENTS__PAYMENTS WHERE PAYMENT_ID IN ({a}, {b}, {c}, 9999999999)")
            cur.execute("INSERT INTO CURATED.PAYMENTS__PAYMENTS SELECT * FROM OPS.TEST_PAYMENTS_BACKUP")
            cur.execute("DROP TABLE OPS.TEST_PAYMENTS_BACKUP")
    assert _reconcile_payments()[0] == 0


def test_batches_list_and_show(local_env: Environment, local_stack: LocalStack) -> None:
    assert hourly_cycle(local_env).ok
    listed = finsight("batches", "list", "--env", "local", "--json", "--limit", "5")
    assert listed.returncode == 0, listed.stderr
    batches = json.loads(listed.stdout)
    assert batches and all(b["state"] in ("landed", "loaded", "merged", "waiting") for b in batches)
    merged = next(b for b in batches if b["state"] == "merged")
    shown = finsight("batches", "show", merged["batch_id"], "--env", "local")
    detail = json.loads(shown.stdout)
    assert detail["merge_run_id"] and detail["files"] and all(merged["batch_id"] in f for f in detail["files"])
    missing = finsight("batches", "show", "no-such-batch", "--env", "local")
    assert missing.returncode == 2 and "no-such-batch" in missing.stderr


def test_quarantine_release_of_an_unknown_key_is_a_clear_error(local_stack: LocalStack) -> None:
    out = finsight("quarantine", "release", "raw/nope.parquet", "--env", "local")
    assert out.returncode == 2 and "is not in quarantine" in out.stderr
    assert finsight("quarantine", "list", "--env", "local").returncode == 0
