"""PAN protection applied before anything leaves the connector: a keyed, versioned token and the last four digits.

Tokens are HMAC-SHA256 of the card number's digits under a key from Secrets Manager, prefixed with the key's
version (`v2$<64 hex>`): equal PANs give equal tokens (joins work), nothing is reversible, and during a key rotation
tokens of the old and the new version both verify. Columns are tokenized per Arrow batch: each *distinct* PAN is
hashed once (card numbers repeat), then the tokens are taken back to row positions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import SecretStr

TOKEN_SEPARATOR = "$"  # noqa: S105 - a separator, not a secret
# 13-19 digits, optionally grouped by single spaces or dashes, not inside a longer digit run
PAN_IN_TEXT = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")
_NON_DIGITS = r"\D"
TOKEN_CACHE_SIZE = 2_000_000  # distinct card numbers kept per run (~200 MB at most)


class PanKeyError(ValueError):
    """The PAN tokenization secret is malformed (the message names the field, never a value)."""


def luhn_valid(digits: str) -> bool:
    """Luhn checksum of a string of digits (what every card number satisfies)."""
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _hmac_states(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """HMAC's inner and outer hash states, computed once per key: each token then costs two copies and updates."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


class PanTokenizer:
    """Versioned HMAC-SHA256 tokens; the current version signs, every known version verifies."""

    def __init__(self, keys: Mapping[str, SecretStr], current_version: str) -> None:
        if current_version not in keys:
            raise PanKeyError(f"current_version {current_version!r} has no key (versions: {', '.join(sorted(keys))})")
        self.version = current_version
        self._keys = {v: k.get_secret_value().encode() for v, k in keys.items()}
        self._inner, self._outer = _hmac_states(self._keys[current_version])
        # raw value -> (token, last4) of the card numbers seen in this run (card numbers repeat across batches)
        empty = pa.array([], pa.string())
        self._cache: tuple[pa.Array, pa.Array, pa.Array] = (empty, empty, empty)
        self._cache_lock = threading.Lock()

    @classmethod
    def from_secret(cls, secret: Mapping[str, SecretStr]) -> PanTokenizer:
        """`{"current_version": "2", "keys": {"1": k1, "2": k2}}`, or the legacy `{"hmac_key": k}` (= version 1)."""
        if "keys" in secret:
            try:
                keys = json.loads(secret["keys"].get_secret_value())
            except json.JSONDecodeError:
                raise PanKeyError("field 'keys' is not a JSON object of version -> key") from None
            if not isinstance(keys, dict) or not keys:
                raise PanKeyError("field 'keys' must map at least one version to a key")
            if "current_version" not in secret:
                raise PanKeyError("field 'current_version' is missing")
            current = secret["current_version"].get_secret_value()
            return cls({str(v): SecretStr(str(k)) for v, k in keys.items()}, current)
        if "hmac_key" in secret:
            return cls({"1": secret["hmac_key"]}, "1")
        raise PanKeyError("the PAN key secret needs 'keys' + 'current_version' (or the legacy 'hmac_key')")

    # -- scalar (API payloads, free text) ------------------------------------------------------
    def _mac(self, digits: str) -> str:
        inner, outer = self._inner.copy(), self._outer.copy()
        inner.update(digits.encode())
        outer.update(inner.digest())
        return f"v{self.version}{TOKEN_SEPARATOR}{outer.hexdigest()}"

    def token(self, pan: str | None) -> str | None:
        if pan is None:
            return None
        return self._mac(re.sub(_NON_DIGITS, "", pan))

    @staticmethod
    def last4(pan: str | None) -> str | None:
        if pan is None:
            return None
        return re.sub(_NON_DIGITS, "", pan)[-4:]

    def verify(self, pan: str, token: str) -> bool:
        """True when `token` is the MAC of `pan` under the key version it names (rotation: old tokens still verify)."""
        version, sep, digest = token.partition(TOKEN_SEPARATOR)
        key = self._keys.get(version.removeprefix("v")) if sep else None
        if key is None:
            return False
        expected = hmac.new(key, re.sub(_NON_DIGITS, "", pan).encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, digest)

    # -- vectorized (database columns) ---------------------------------------------------------
    def tokenize(self, pans: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
        """(token, last4) arrays for a column of PANs: one MAC per distinct card number, never one per row.

        The column is dictionary-encoded, its distinct values looked up (vectorized) among the card numbers
        already tokenized in this run; only new ones are normalized and hashed. Rows get theirs by `take`.
        """
        if isinstance(pans, pa.ChunkedArray):
            pans = pans.combine_chunks()
        encoded = pc.dictionary_encode(pans.cast(pa.string()))
        tokens, last4 = self._lookup(encoded.dictionary)
        return pc.take(tokens, encoded.indices), pc.take(last4, encoded.indices)

    def _lookup(self, values: pa.Array) -> tuple[pa.Array, pa.Array]:
        """(token, last4) per distinct raw value, from the run's cache; new values are tokenized and cached."""
        with self._cache_lock:
            known, tokens, last4 = self._cache
            found = pc.index_in(values, value_set=known)
            missing = pc.unique(pc.drop_null(pc.filter(values, pc.is_null(found))))
            if len(missing):
                if len(known) + len(missing) > TOKEN_CACHE_SIZE:  # bounded memory: start over ...
                    known = tokens = last4 = pa.array([], pa.string())
                    missing = pc.unique(pc.drop_null(values))  # ... with every value of this batch, cached or not
                digits = pc.replace_substring_regex(missing, _NON_DIGITS, "")
                fresh = pa.array([self._mac(d) for d in digits.to_pylist()], pa.string())
                fresh_last4 = pc.utf8_slice_codeunits(digits, -4)
                known = pa.concat_arrays([known, missing])
                tokens = pa.concat_arrays([tokens, fresh])
                last4 = pa.concat_arrays([last4, fresh_last4])
                self._cache = (known, tokens, last4)
                found = pc.index_in(values, value_set=known)
        return pc.take(tokens, found), pc.take(last4, found)

    def __repr__(self) -> str:
        return f"PanTokenizer(version={self.version}, key=***)"


def scrub_pans(text: str, tokenizer: PanTokenizer) -> str:
    """Replace every Luhn-valid 13-19 digit run in free text (a JSON payload, a CSV line) by its token."""

    def replace(match: re.Match[str]) -> str:
        digits = re.sub(_NON_DIGITS, "", match.group(0))
        return tokenizer._mac(digits) if luhn_valid(digits) else match.group(0)

    return PAN_IN_TEXT.sub(replace, text)


def looks_like_pan(values: pa.Array | pa.ChunkedArray) -> bool:
    """Does any value of a string column look like a card number (13-19 digits, Luhn-valid)?

    Vectorized pre-filter on the shape; only the few candidates get the Python Luhn check.
    """
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return False
    digits = pc.replace_substring_regex(values, r"[ -]", "")
    candidates = pc.filter(digits, pc.fill_null(pc.match_substring_regex(digits, r"^\d{13,19}$"), False))
    return any(luhn_valid(v) for v in pc.unique(candidates).to_pylist())
