"""Defense in depth: a card number anywhere in an API payload is tokenized before anything lands.

APIs should never send a PAN; if one does (a free-text description, a metadata field, a number), every
Luhn-valid run of 13-19 digits (single spaces or dashes between digit groups allowed) is replaced by its token.
"""

from __future__ import annotations

import re
from typing import Any

from connectors.pci import PanTokenizer

# 13..19 digits, optionally grouped by single spaces or dashes ("4111 1111 1111 1111"), not inside a longer number
_CANDIDATE = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _pan_digits(candidate: str) -> str | None:
    digits = candidate.replace(" ", "").replace("-", "")
    return digits if 13 <= len(digits) <= 19 and luhn_valid(digits) else None


def scrub_text(text: str, tokenizer: PanTokenizer) -> str:
    """`text` with every Luhn-valid 13-19 digit run replaced by its PAN token."""
    if len(text) < 13:
        return text

    def replace(match: re.Match[str]) -> str:
        digits = _pan_digits(match.group(0))
        return match.group(0) if digits is None else str(tokenizer.token(digits))

    return _CANDIDATE.sub(replace, text)


def scrub_json(value: Any, tokenizer: PanTokenizer) -> Any:
    """Walk a decoded JSON value; strings are scrubbed, and an integer that is a PAN becomes its token (a string)."""
    if isinstance(value, str):
        return scrub_text(value, tokenizer)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        text = str(abs(value))
        return tokenizer.token(text) if 13 <= len(text) <= 19 and luhn_valid(text) else value
    if isinstance(value, dict):
        return {scrub_text(str(k), tokenizer): scrub_json(v, tokenizer) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_json(v, tokenizer) for v in value]
    return value
