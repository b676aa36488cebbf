"""PAN protection applied before anything leaves the connector: a keyed token and the last four digits only."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr


class PanTokenizer:
    """HMAC-SHA256 with a key from Secrets Manager: equal PANs give equal tokens (joins work), nothing reversible."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key.get_secret_value().encode()

    def token(self, pan: str | None) -> str | None:
        if pan is None:
            return None
        digits = "".join(ch for ch in pan if ch.isdigit())
        return hmac.new(self._key, digits.encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def last4(pan: str | None) -> str | None:
        if pan is None:
            return None
        digits = "".join(ch for ch in pan if ch.isdigit())
        return digits[-4:]

    def __repr__(self) -> str:
        return "PanTokenizer(key=***)"
