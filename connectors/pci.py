"""PAN protection applied before anything leaves the connector: a keyed, versioned token and the last four digits.

Tokens are HMAC-SHA256 of the card number's digits under a key from Secrets Manager, prefixed with the key's
version (`v2$<64 hex>`): equal PANs give equal tokens (joins work), nothing is reversible, and during a key rotation
tokens of the old and the new version both verify. Columns are tokenized per Arrow batch as a vector operation:
the batch's distinct PANs (a per-batch dictionary) are hashed in one native call (connectors/_panmac.c), then the
tokens are taken back to row positions. Cost per row does not depend on how often a card repeats, and nothing grows
across batches (production card numbers are mostly distinct within an hour: a run-wide cache only grew).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import SecretStr

try:  # built by `make setup` (pyproject ext-modules); absent, tokens come from hashlib: same bytes, more CPU
    from connectors._panmac import hmac_sha256_hex as _native_hmac_hex
except ImportError:  # pragma: no cover - depends on the build
    _native_hmac_hex = None

TOKEN_SEPARATOR = "$"  # noqa: S105 - a separator, not a secret
# 13-19 digits, optionally grouped by single spaces or dashes, not inside a longer digit run
PAN_IN_TEXT = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")
_NON_DIGITS = r"\D"
_NATIVE_SLICE = 1 << 24  # values per native call: their tokens' int32 offsets stay below 2**31


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
        """(token, last4) arrays for a column of PANs: one MAC per distinct card number of the batch, never per row.

        The column is dictionary-encoded (a per-batch dictionary, nothing kept across batches), its distinct values
        normalized to digits and hashed in one call; rows get theirs by `take`.
        """
        if isinstance(pans, pa.ChunkedArray):
            pans = pans.combine_chunks()
        encoded = pc.dictionary_encode(pans.cast(pa.string()))
        digits = _digits_only(encoded.dictionary)
        tokens = self.macs(digits)
        last4 = pc.binary_slice(digits.cast(pa.binary()), -4).cast(pa.string())  # ASCII: a byte is a character
        return pc.take(tokens, encoded.indices), pc.take(last4, encoded.indices)

    def macs(self, digits: pa.Array) -> pa.Array:
        """`_mac` of every value of a string column (no nulls), as one string array; native when built."""
        digits = digits.cast(pa.string())
        if _native_hmac_hex is None:
            return pa.array([self._mac(d) for d in digits.to_pylist()], pa.string())
        prefix = f"v{self.version}{TOKEN_SEPARATOR}".encode()
        width = len(prefix) + 64
        parts = []
        for first in range(0, len(digits), _NATIVE_SLICE):
            part = digits.slice(first, _NATIVE_SLICE)
            if part.null_count:
                raise ValueError("macs() takes no nulls")  # tokenize() hands it a dictionary: never null
            _, offsets, data = part.buffers()
            out = np.empty(len(part) * width, np.uint8)
            _native_hmac_hex(self._keys[self.version], prefix, offsets, data or b"", part.offset, len(part), out)
            ends = np.arange(0, (len(part) + 1) * width, width, dtype=np.int32)
            parts.append(pa.StringArray.from_buffers(len(part), pa.py_buffer(ends), pa.py_buffer(out)))
        return pa.concat_arrays(parts) if parts else pa.array([], pa.string())

    def __repr__(self) -> str:
        return f"PanTokenizer(version={self.version}, key=***)"


def _digits_only(values: pa.Array) -> pa.Array:
    """The values with every character but ASCII 0-9 removed (RE2's \\D). A column of ASCII digits alone, what a card
    number column holds, is returned as it is: the check costs about a seventeenth of the regex's rewrite."""
    if pc.all(pc.ascii_is_decimal(values)).as_py():
        return values
    return pc.replace_substring_regex(values, _NON_DIGITS, "")


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
