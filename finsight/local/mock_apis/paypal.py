"""PayPal Transaction Search-like wallet: OAuth2 client credentials, 31-day windows, page / total_pages."""

from __future__ import annotations

import math
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request

from finsight.config.models import ApiSource
from finsight.local.mock_apis.data import Clock, build_paypal, paypal_time
from finsight.local.mock_apis.faults import Provider, basic_credentials, bearer_token, same_secret

TOKEN_PATH = "/v1/oauth2/token"  # noqa: S105 - a URL path, not a secret
MAX_WINDOW = timedelta(days=31)
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
ACCOUNT_NUMBER = "FINSIGHTPP0001"
TOKEN_TTL_SECONDS = 32_400  # what PayPal answers for client-credential tokens
FIELD_GROUPS = {"transaction_info", "payer_info"}
ERROR_NAMES = {
    400: "INVALID_REQUEST",
    401: "AUTHENTICATION_FAILURE",
    403: "NOT_AUTHORIZED",
    404: "RESOURCE_NOT_FOUND",
    429: "RATE_LIMIT_REACHED",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def error(status: int, message: str, details: list[dict[str, str]] | None = None) -> Response:
    """PayPal's REST error body: name, message, debug_id, details."""
    name = ERROR_NAMES.get(status, "INTERNAL_SERVER_ERROR" if status >= 500 else "INVALID_REQUEST")
    body: dict[str, Any] = {"name": name, "message": message, "debug_id": uuid.uuid4().hex[:13]}
    if details:
        body["details"] = details
    resp = jsonify(body)
    resp.status_code = status
    return resp


def invalid(field: str, value: str | None, issue: str) -> Response:
    detail = {"field": field, "value": value or "", "location": "query", "issue": issue}
    return error(400, "Request is not well-formed, syntactically incorrect, or violates schema.", [detail])


def oauth_error(status: int, code: str, description: str) -> Response:
    """The OAuth endpoints answer in RFC 6749 style rather than PayPal's REST style."""
    resp = jsonify(error=code, error_description=description)
    resp.status_code = status
    return resp


def parse_when(raw: str) -> datetime:
    """ISO 8601 with an offset (``2026-11-01T00:00:00Z`` / ``-0700``); a missing offset means UTC."""
    when = datetime.fromisoformat(raw)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class PaypalApi:
    def __init__(self, source: ApiSource, credential: str, transactions: list[dict[str, Any]], clock: Clock) -> None:
        if set(source.streams) != {"transactions"}:
            raise ValueError(
                f"paypal mock serves exactly the stream 'transactions', config has {sorted(source.streams)}"
            )
        self.path = source.streams["transactions"].path
        self.credential = credential  # "client_id:secret"
        self.transactions = transactions
        self.clock = clock
        self._tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self._lock = threading.Lock()

    def authenticate(self) -> Response | None:
        if request.endpoint and request.endpoint.endswith(".token"):
            if not same_secret(basic_credentials(), self.credential):
                return oauth_error(401, "invalid_client", "Client Authentication failed")
            return None
        token = bearer_token()
        with self._lock:
            expiry = self._tokens.get(token or "")
        if token is None or expiry is None:
            return oauth_error(401, "invalid_token", "Token signature verification failed")
        if expiry < time.monotonic():
            return oauth_error(401, "invalid_token", "Access Token not found in cache")
        return None

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def mutate(self) -> dict[str, Any]:
        """Activity: the oldest pending transaction settles (its updated date moves to now) and a new one arrives."""
        now = self.clock.ts()
        with self._lock:
            changed = next((t for t in self.transactions if t["transaction_info"]["transaction_status"] == "P"), None)
            if changed is not None:
                changed["transaction_info"]["transaction_status"] = "S"
                changed["transaction_info"]["transaction_updated_date"] = paypal_time(now)
                changed["_updated_ts"] = now
            template = self.transactions[-1]
            info = dict(template["transaction_info"])
            info |= {
                "transaction_id": f"NEW{uuid.uuid4().hex[:14].upper()}",
                "transaction_initiation_date": paypal_time(now),
                "transaction_updated_date": paypal_time(now),
                "transaction_status": "S",
            }
            new = {"_updated_ts": now, "transaction_info": info, "payer_info": dict(template["payer_info"])}
            self.transactions.append(new)
            self.transactions.sort(key=lambda t: (t["_updated_ts"], t["transaction_info"]["transaction_id"]))
        return {
            "updated": changed["transaction_info"]["transaction_id"] if changed else None,
            "created": info["transaction_id"],
        }

    def token(self) -> Response:
        if request.form.get("grant_type") != "client_credentials":
            return oauth_error(400, "unsupported_grant_type", "Grant Type is NULL or not supported")
        token = "A21AA" + secrets.token_urlsafe(48)
        with self._lock:
            now = time.monotonic()
            self._tokens = {t: e for t, e in self._tokens.items() if e > now}  # forget expired tokens
            self._tokens[token] = now + TOKEN_TTL_SECONDS
        return jsonify(
            scope="https://uri.paypal.com/services/reporting/search/read",
            access_token=token,
            token_type="Bearer",  # noqa: S106 - the OAuth token type, not a secret
            app_id="APP-80W284485P519543T",
            expires_in=TOKEN_TTL_SECONDS,
            nonce=f"{paypal_time(self.clock.ts())}{secrets.token_hex(8)}",
        )

    def search(self) -> Response:
        args = request.args
        window: dict[str, datetime] = {}
        for name in ("start_date", "end_date"):
            raw = args.get(name)
            if not raw:
                return invalid(name, raw, f"{name} is required")
            try:
                window[name] = parse_when(raw)
            except ValueError:
                return invalid(name, raw, "Invalid date format; use ISO 8601, e.g. 2026-11-01T00:00:00-0700")
        start, end = window["start_date"], window["end_date"]
        if end < start:
            return invalid("end_date", args["end_date"], "end_date must not be before start_date")
        if end - start > MAX_WINDOW:
            return invalid("end_date", args["end_date"], "Date range is greater than 31 days")
        try:
            page = int(args.get("page", "1"))
            page_size = int(args.get("page_size", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            return invalid("page", args.get("page"), "page and page_size must be integers")
        if page < 1:
            return invalid("page", args.get("page"), "page must be >= 1")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            return invalid("page_size", args.get("page_size"), f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        fields = args.get("fields", "all")
        groups = FIELD_GROUPS if fields == "all" else set(fields.split(","))
        if not groups <= FIELD_GROUPS:
            return invalid("fields", fields, f"fields must be 'all' or a comma list of {sorted(FIELD_GROUPS)}")

        # The window applies to transaction_updated_date, half-open [start_date, end_date), so consecutive
        # windows never return the same transaction twice.
        lo, hi = start.timestamp(), end.timestamp()
        with self._lock:
            matches = [t for t in self.transactions if lo <= t["_updated_ts"] < hi]
        total_pages = math.ceil(len(matches) / page_size)
        chunk = matches[(page - 1) * page_size : page * page_size]
        links = [{"href": request.url, "rel": "self", "method": "GET"}]
        if page < total_pages:
            nxt = urlencode({**args.to_dict(), "page": page + 1})
            links.append({"href": f"{request.base_url}?{nxt}", "rel": "next", "method": "GET"})
        return jsonify(
            transaction_details=[{g: t[g] for g in ("transaction_info", "payer_info") if g in groups} for t in chunk],
            account_number=ACCOUNT_NUMBER,
            start_date=args["start_date"],
            end_date=args["end_date"],
            last_refreshed_datetime=paypal_time(self.clock.ts()),
            page=page,
            total_items=len(matches),
            total_pages=total_pages,
            links=links,
        )


def build(name: str, source: ApiSource, credential: str, *, seed: int, scale: float, clock: Clock) -> Provider:
    api = PaypalApi(source, credential, build_paypal(seed, scale, clock.start), clock)
    bp = Blueprint(f"mock_{name}", __name__)
    bp.add_url_rule(TOKEN_PATH, "token", api.token, methods=["POST"])
    bp.add_url_rule(api.path, "transactions", api.search, methods=["GET"])
    return Provider(
        name=name,
        blueprint=bp,
        authenticate=api.authenticate,
        error=error,
        expire_tokens=api.expire_tokens,
        mutate=api.mutate,
        counts=lambda: {"transactions": len(api.transactions)},
    )
