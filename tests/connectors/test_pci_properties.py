"""PAN detection and tokenization, property-based: card numbers anywhere in free text, with an independent Luhn
implementation and the standard library's HMAC as oracles."""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import pyarrow as pa
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.pci import PanKeyError, PanTokenizer, looks_like_pan, luhn_valid, scrub_pans

KEY = "k3y-" * 8


def _luhn_oracle(digits: str) -> bool:
    """Luhn as the ISO/IEC 7812 text states it: double every second digit from the right, sum the digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d // 10 + d % 10
    return total % 10 == 0


def _with_check_digit(body: str) -> str:
    return next(body + c for c in "0123456789" if _luhn_oracle(body + c))


def _oracle_token(key: str, digits: str, version: str = "1") -> str:
    return f"v{version}${hmac.new(key.encode(), digits.encode(), hashlib.sha256).hexdigest()}"


def _tok(key: str = KEY) -> PanTokenizer:
    return PanTokenizer.from_secret({"current_version": SecretStr("1"), "keys": SecretStr(json.dumps({"1": key}))})


card_numbers = (
    st.integers(12, 18).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)).map(_with_check_digit)
)
# free text around a card number: no digits touching it (a longer digit run is not a card number)
prose = st.text(st.characters(blacklist_categories=("Nd", "Cs")), max_size=30)


@settings(deadline=None)
@given(st.text("0123456789", min_size=0, max_size=22))
@example("4111111111111111")
@example("41111111111111111115")  # 20 digits, Luhn-valid: too long for a card number
@example("411111111111")  # 12 digits
def test_luhn_agrees_with_the_textbook_algorithm(digits: str) -> None:
    assert luhn_valid(digits) == (13 <= len(digits) <= 19 and _luhn_oracle(digits))


@settings(deadline=None)
@given(card_numbers, st.data())
def test_changing_one_digit_breaks_luhn(pan: str, data: st.DataObject) -> None:
    assert luhn_valid(pan)
    i = data.draw(st.integers(0, len(pan) - 1))
    other = data.draw(st.sampled_from([c for c in "0123456789" if c != pan[i]]))
    assert not luhn_valid(pan[:i] + other + pan[i + 1 :])


@settings(deadline=None)
@given(st.text(min_size=13, max_size=19).filter(lambda s: not s.isdigit()))
def test_luhn_rejects_anything_but_digits(text: str) -> None:
    assert not luhn_valid(text)


@settings(max_examples=150, deadline=None)
@given(before=prose, after=prose, pan=card_numbers, sep=st.sampled_from(["", " ", "-"]))
def test_a_card_number_in_free_text_is_replaced_by_its_keyed_token(before: str, after: str, pan: str, sep: str):
    assume(not (before.endswith(("-", " ")) or after.startswith(("-", " "))))  # separators belong to the number
    written = sep.join(pan[i : i + 4] for i in range(0, len(pan), 4))
    scrubbed = scrub_pans(f"{before}{written}{after}", _tok())
    assert scrubbed == f"{before}{_oracle_token(KEY, pan)}{after}"
    assert pan not in re.sub(r"\D", "", scrubbed.replace(_oracle_token(KEY, pan), ""))


@settings(deadline=None)
@given(before=prose, after=prose, digits=st.text("0123456789", min_size=1, max_size=25))
def test_digits_that_are_not_a_card_number_are_left_alone(before: str, after: str, digits: str) -> None:
    assume(not (13 <= len(digits) <= 19 and _luhn_oracle(digits)))
    text = f"{before}{digits}{after}"
    assert scrub_pans(text, _tok()) == text


@settings(deadline=None)
@given(card_numbers, card_numbers)
def test_two_card_numbers_in_one_text_each_get_their_own_token(a: str, b: str) -> None:
    scrubbed = scrub_pans(f'{{"a": "{a}", "b": "{b}"}}', _tok())
    assert json.loads(scrubbed) == {"a": _oracle_token(KEY, a), "b": _oracle_token(KEY, b)}


@settings(deadline=None)
@given(st.binary(min_size=0, max_size=200).map(bytes.hex), card_numbers)
# the block-size edges written out: hypothesis's short-biased draws rarely pass 64 bytes (a mutant hid there)
@example("k" * 64, "4111111111111111")
@example("k" * 65, "4111111111111111")
@example("k" * 200, "4111111111111111")
def test_any_key_length_gives_the_standard_hmac(key: str, pan: str) -> None:
    """Keys longer than SHA-256's 64-byte block are hashed first, shorter ones padded (RFC 2104)."""
    assume(key)
    tok = _tok(key)
    assert tok.token(pan) == _oracle_token(key, pan)
    assert tok.verify(pan, _oracle_token(key, pan))
    assert not tok.verify(pan, _oracle_token(key + "x", pan))
    assert not tok.verify(pan, _oracle_token(key, pan).replace("v1$", "v2$"))
    assert not tok.verify(pan, _oracle_token(key, pan).replace("$", ""))


@settings(deadline=None)
@given(st.lists(st.one_of(st.none(), card_numbers, st.text(max_size=20)), max_size=30))
def test_looks_like_pan_is_true_exactly_when_a_value_is_a_card_number(values: list[str | None]) -> None:
    expected = any(v is not None and luhn_valid(re.sub(r"[ -]", "", v)) for v in values)
    assert looks_like_pan(pa.array(values, pa.string())) == expected
    assert looks_like_pan(pa.array(values, pa.large_string())) == expected


def test_the_legacy_secret_and_each_malformed_secret_say_what_is_wrong() -> None:
    legacy = PanTokenizer.from_secret({"hmac_key": SecretStr(KEY)})
    assert legacy.version == "1" and legacy.token("4111111111111111") == _oracle_token(KEY, "4111111111111111")
    cases = {
        "not json": "field 'keys' is not a JSON object of version -> key",
        "[]": "field 'keys' must map at least one version to a key",
        "{}": "field 'keys' must map at least one version to a key",
    }
    for keys, message in cases.items():
        with pytest.raises(PanKeyError) as err:
            PanTokenizer.from_secret({"current_version": SecretStr("1"), "keys": SecretStr(keys)})
        assert str(err.value) == message
    with pytest.raises(PanKeyError, match=r"^field 'current_version' is missing$"):
        PanTokenizer.from_secret({"keys": SecretStr('{"1": "k"}')})
    with pytest.raises(PanKeyError, match=r"^current_version '9' has no key \(versions: 1, 2\)$"):
        PanTokenizer.from_secret({"current_version": SecretStr("9"), "keys": SecretStr('{"2": "a", "1": "b"}')})
    with pytest.raises(PanKeyError) as err:
        PanTokenizer.from_secret({})
    assert str(err.value) == "the PAN key secret needs 'keys' + 'current_version' (or the legacy 'hmac_key')"
    numeric = PanTokenizer.from_secret({"current_version": SecretStr("2"), "keys": SecretStr('{"2": 12345}')})
    assert numeric.token("4111111111111111") == _oracle_token("12345", "4111111111111111", "2")
    assert repr(numeric) == "PanTokenizer(version=2, key=***)"


def _old_scalar_token(key: str, version: str, pan: str) -> str:
    """The token definition already landed in S3 and Snowflake (join keys): HMAC-SHA256 of the digits, hex.

    Digits are ASCII 0-9, as the column path has always stripped them (RE2's \\D); non-ASCII digits are not PANs.
    """
    digits = re.sub(r"[^0-9]", "", pan).encode()
    return f"v{version}${hmac.new(key.encode(), digits, hashlib.sha256).hexdigest()}"


EDGE_PANS = [
    "4111111111111111",
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "4111 1111-11111111",
    "340000000000009",
    "6011000990139424",
    "4" * 19,
    "0000000000000",
    "",
    "abc",
    " - ",
    "4111111111111111 ",
    "x4111_1111/1111.1111x",
]


@pytest.mark.parametrize("key", ["k", "k3y-" * 16, "k" * 64, "k" * 65, "K" * 200, "ключ-é"])
@pytest.mark.parametrize("native", [True, False], ids=["native", "hashlib"])
def test_the_vector_path_gives_the_old_scalar_tokens_byte_for_byte(
    key: str, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many PANs (separators, 13-19 digits, empty, non-digits, nulls, repeats) through `tokenize`, native loop and
    hashlib fallback both, equal the old scalar definition. Red: a wrong pad byte, a long key not hashed first,
    a digest not hex or in another case, a lost prefix, taking tokens back to the wrong rows."""
    from connectors import pci

    if native:
        assert pci._native_hmac_hex is not None, "make setup builds connectors/_panmac.c"
    else:
        monkeypatch.setattr(pci, "_native_hmac_hex", None)
    tok = PanTokenizer.from_secret({"current_version": SecretStr("7"), "keys": SecretStr(json.dumps({"7": key}))})
    generated = [f"{4000 + i % 5000}{(i * 7919) % 10**12:012d}"[: 13 + i % 7] for i in range(3000)]
    pans = [*EDGE_PANS, None, *generated, *generated[:500], None, *EDGE_PANS]
    tokens, last4 = tok.tokenize(pa.chunked_array([pans[:1000], pans[1000:]], pa.large_string()))
    assert tokens.to_pylist() == [None if p is None else _old_scalar_token(key, "7", p) for p in pans]
    assert last4.to_pylist() == [None if p is None else re.sub(r"[^0-9]", "", p)[-4:] for p in pans]
    assert tokens.type == pa.string() and tokens.null_count == 2
    assert tok.token(pans[20]) == tokens[20].as_py() and tok.verify(pans[20], tokens[20].as_py())


@pytest.mark.parametrize(
    "pans",
    [
        ["4111111111111111", "5500005555555559", "4111111111111111", "123"],  # ASCII digits alone: no rewrite
        ["4111111111111111", "\u0664" + "\u0661" * 15, "4111\u06611111111111111"],  # digits, not all ASCII: rewritten
    ],
    ids=["ascii-digits", "unicode-digits"],
)
def test_a_batch_of_digits_gets_the_tokens_of_its_ascii_digits(pans: list[str]) -> None:
    """Only ASCII 0-9 are hashed and cut for last4, whether the batch's values needed rewriting or not. Red: the
    rewrite skipped for a batch that is all Unicode digits (`utf8_is_digit` as the check)."""
    tok = _tok()
    tokens, last4 = tok.tokenize(pa.array(pans))
    assert tokens.to_pylist() == [_old_scalar_token(KEY, "1", p) for p in pans]
    assert last4.to_pylist() == [re.sub(r"[^0-9]", "", p)[-4:] for p in pans]


def test_the_native_loop_on_a_sliced_column_and_its_guards() -> None:
    """Arrow slices start at an offset; out-of-range offsets raise instead of reading past the buffers."""
    from connectors import pci

    tok = _tok()
    column = pa.array(["x", "4111111111111111", "5500005555555559", "y"]).slice(1, 2)
    assert tok.macs(column).to_pylist() == [_oracle_token(KEY, p) for p in ("4111111111111111", "5500005555555559")]
    assert tok.macs(pa.array([], pa.string())).to_pylist() == []
    with pytest.raises(ValueError, match="no nulls"):
        tok.macs(pa.array(["1", None]))
    native = pci._native_hmac_hex
    assert native is not None
    _, offsets, data = pa.array(["12", "34"]).buffers()
    out = bytearray(3 * 67)
    with pytest.raises(ValueError, match="offsets buffer too short"):
        native(b"k", b"v1$", offsets, data, 0, 3, out)
    with pytest.raises(ValueError, match="output buffer too short"):
        native(b"k", b"v1$", offsets, data, 0, 2, bytearray(2 * 67 - 1))
    bad = pa.py_buffer(bytes(pa.array([0, 4, 2], pa.int32()).buffers()[1]))
    with pytest.raises(ValueError, match="not monotonic"):
        native(b"k", b"v1$", bad, data, 0, 2, out)


def test_tokenize_keeps_nothing_across_batches() -> None:
    """A per-batch dictionary: the tokenizer holds no state that grows with the card numbers it has seen."""
    tok = _tok()
    before = dict(vars(tok))
    tok.tokenize(pa.array([f"4111{i:012d}" for i in range(1000)]))
    assert vars(tok).keys() == before.keys() and all(vars(tok)[k] is v for k, v in before.items())


@settings(deadline=None)
@given(card_numbers, st.lists(st.sampled_from([" ", "-"]), min_size=1, max_size=4), st.data())
def test_a_formatted_card_number_has_the_digits_last4_and_verifies(pan: str, seps: list[str], data: st.DataObject):
    """Separators anywhere (the last four digits split too) change neither last4 nor the token check."""
    formatted = pan
    for sep in seps:
        at = data.draw(st.integers(1, len(formatted) - 1))
        formatted = formatted[:at] + sep + formatted[at:]
    tok = _tok()
    assert PanTokenizer.last4(formatted) == pan[-4:]
    assert tok.verify(formatted, _oracle_token(KEY, pan)) and tok.token(formatted) == _oracle_token(KEY, pan)
