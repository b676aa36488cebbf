"""Defense in depth: a card number anywhere in an API payload is tokenized before anything lands.

APIs should never send a PAN; if one does (a free-text description, a metadata field, a bare number), every
Luhn-valid run of 13-19 digits is replaced by its PAN token (`connectors.pci.scrub_pans`). This module walks the
decoded JSON so strings, numbers and keys at any depth are covered.
"""

from __future__ import annotations

from typing import Any

from connectors.pci import PanTokenizer, luhn_valid, scrub_pans

__all__ = ["luhn_valid", "scrub_json", "scrub_text"]


def scrub_text(text: str, tokenizer: PanTokenizer) -> str:
    """`text` with every Luhn-valid 13-19 digit run replaced by its PAN token."""
    return text if len(text) < 13 else scrub_pans(text, tokenizer)


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
