"""PAN tokenization: a keyed, versioned MAC (independent oracle: hmac from the standard library), vectorized per
distinct value with the same result as the scalar path, rotation, and card numbers found in free text."""

from __future__ import annotations

import hashlib
import hmac
import json

import pyarrow as pa
import pytest
from pydantic import SecretStr

from connectors.pci import PanKeyError, PanTokenizer, looks_like_pan, luhn_valid, scrub_pans

KEY_1, KEY_2 = "11" * 32, "22" * 32
PANS = ["4111111111111111", "5500005555555559", "340000000000009", "6011000990139424"]


def _secret(current: str, **keys: str) -> dict[str, SecretStr]:
    return {"current_version": SecretStr(current), "keys": SecretStr(json.dumps(keys))}


def _oracle(key: str, pan: str, version: str) -> str:
    return f"v{version}${hmac.new(key.encode(), pan.encode(), hashlib.sha256).hexdigest()}"


def test_token_is_the_keyed_mac_under_the_current_version() -> None:
    tok = PanTokenizer.from_secret(_secret("2", **{"1": KEY_1, "2": KEY_2}))
    assert tok.token("4111 1111 1111 1111") == _oracle(KEY_2, PANS[0], "2")
    assert tok.token(PANS[0]) != "v2$" + hashlib.sha256(PANS[0].encode()).hexdigest()  # never an unkeyed hash
    assert tok.last4("4111-1111-1111-1111") == "1111"
    assert tok.token(None) is None


def test_legacy_secret_is_version_1() -> None:
    tok = PanTokenizer.from_secret({"hmac_key": SecretStr(KEY_1)})
    assert tok.token(PANS[1]) == _oracle(KEY_1, PANS[1], "1")


def test_rotation_keeps_old_tokens_verifiable() -> None:
    old = PanTokenizer.from_secret(_secret("1", **{"1": KEY_1}))
    rotated = PanTokenizer.from_secret(_secret("2", **{"1": KEY_1, "2": KEY_2}))
    old_token, new_token = old.token(PANS[0]), rotated.token(PANS[0])
    assert old_token != new_token
    assert rotated.verify(PANS[0], old_token) and rotated.verify(PANS[0], new_token)
    assert not rotated.verify(PANS[1], old_token)
    assert not old.verify(PANS[0], new_token)  # version 2 is unknown to a tokenizer that never had it


@pytest.mark.parametrize(
    "secret",
    [
        {"keys": SecretStr(json.dumps({"1": KEY_1}))},
        {"current_version": SecretStr("3"), "keys": SecretStr(json.dumps({"1": KEY_1}))},
        {"current_version": SecretStr("1"), "keys": SecretStr("not json")},
        {"something": SecretStr("x")},
    ],
)
def test_a_malformed_key_secret_is_named_never_shown(secret: dict[str, SecretStr]) -> None:
    with pytest.raises(PanKeyError) as err:
        PanTokenizer.from_secret(secret)
    assert KEY_1 not in str(err.value)


def test_vectorized_equals_scalar_and_hashes_each_distinct_value_once_per_batch() -> None:
    tok = PanTokenizer.from_secret(_secret("1", **{"1": KEY_1}))
    column = pa.array([PANS[0], None, PANS[1], PANS[0], "4111 1111 1111 1111", PANS[2]] * 1000)
    hashed: list[int] = []
    real_macs = tok.macs

    def counting(digits: pa.Array) -> pa.Array:
        hashed.append(len(digits))
        return real_macs(digits)

    tok.macs = counting  # type: ignore[method-assign]
    tokens, last4 = tok.tokenize(column)
    assert hashed == [4]  # distinct values: 3 cards, one of them also written with spaces
    tok.tokenize(pa.chunked_array([column]))
    assert hashed == [4, 4]  # a per-batch dictionary: a later batch hashes its own distinct values again
    tok.macs = real_macs  # type: ignore[method-assign]
    assert tokens.to_pylist() == [tok.token(p) for p in column.to_pylist()]
    assert last4.to_pylist() == [tok.last4(p) for p in column.to_pylist()]


def test_luhn_and_pan_detection() -> None:
    assert all(luhn_valid(p) for p in PANS)
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("123")
    assert looks_like_pan(pa.array(["hello", None, "4111-1111-1111-1111"]))
    assert not looks_like_pan(pa.array(["4111111111111112", "2026-11-27", None]))  # digits, but not a card
    assert not looks_like_pan(pa.array([1, 2, 3]))


def test_scrub_replaces_card_numbers_in_free_text() -> None:
    tok = PanTokenizer.from_secret(_secret("1", **{"1": KEY_1}))
    text = json.dumps({"note": f"card {PANS[0]} and 4111 1111 1111 1112", "nested": [{"pan": PANS[3]}]})
    scrubbed = scrub_pans(text, tok)
    assert PANS[0] not in scrubbed and PANS[3] not in scrubbed
    assert tok.token(PANS[0]) in scrubbed
    assert "4111 1111 1111 1112" in scrubbed  # not Luhn-valid: left alone
    assert json.loads(scrubbed)["nested"][0]["pan"] == tok.token(PANS[3])
