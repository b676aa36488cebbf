"""JSON payloads of the payment APIs, property-based: field paths into nested objects, and card numbers anywhere in
a payload (values, keys, numbers, any depth) replaced by their keyed token before anything lands."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.apis.pans import scrub_json
from connectors.apis.records import lookup
from connectors.pci import PanTokenizer

KEY = "api-key-" * 4
TOKENIZER = PanTokenizer.from_secret({"current_version": SecretStr("1"), "keys": SecretStr(json.dumps({"1": KEY}))})


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d // 10 + d % 10
    return total % 10 == 0


def _token(pan: str) -> str:
    return "v1$" + hmac.new(KEY.encode(), pan.encode(), hashlib.sha256).hexdigest()


card_numbers = (
    st.integers(12, 18)
    .flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n))
    .map(lambda body: next(body + c for c in "0123456789" if _luhn(body + c)))
    .filter(lambda pan: pan[0] != "0")  # an integer cannot start with 0
)
keys = st.text("abcdefgh_", min_size=1, max_size=6)
# JSON values without digit runs that could be card numbers (ints stay below 13 digits, text has no digits)
plain = st.none() | st.booleans() | st.integers(-(10**12) + 1, 10**12 - 1) | st.text("abc xyz-:", max_size=10)
payloads = st.recursive(
    plain, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3), max_leaves=12
)


def _leaves(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    return [(path, value)]


@settings(deadline=None)
@given(st.dictionaries(keys, payloads, max_size=4))
def test_every_nested_field_is_found_by_its_dotted_path(record: dict[str, Any]) -> None:
    for path, value in _leaves(record):
        if path:
            assert lookup(record, ".".join(path)) == value
    assert lookup(record, "no_such_field.x") is None
    assert lookup({"a.b": 1, "a": {"b": 2}}, "a.b") == 1  # a key containing dots (CSV header) wins whole


@settings(deadline=None)
@given(payloads)
def test_a_payload_without_card_numbers_is_unchanged(payload: Any) -> None:
    assert scrub_json(payload, TOKENIZER) == payload


def _place(payload: Any, pan: str, where: int, as_number: bool) -> Any:
    """Put the card number into the payload: as a value, inside text, or as a key, at some depth."""
    value: Any = int(pan) if as_number else f"card {pan} on file"
    if where == 0:
        return {"note": value, "nested": payload}
    if where == 1:
        return [payload, {"deep": [value]}]
    return {pan: payload, "meta": {"x": value}}  # as a key (metadata maps)


@settings(deadline=None, max_examples=80)
@given(payload=payloads, pan=card_numbers, where=st.integers(0, 2), as_number=st.booleans())
def test_a_card_number_anywhere_becomes_its_keyed_token(payload: Any, pan: str, where: int, as_number: bool) -> None:
    scrubbed = scrub_json(_place(payload, pan, where, as_number), TOKENIZER)
    text = json.dumps(scrubbed)
    assert pan not in text
    assert _token(pan) in text
    if not as_number:  # in text: only the digits are replaced, everything around them stays
        assert scrubbed == _place(payload, _token(pan), where, False)
