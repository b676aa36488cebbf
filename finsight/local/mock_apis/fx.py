"""FX reference-rates API: daily rates per base currency, late corrections visible through ``published_at``."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from finsight.config.models import ApiSource
from finsight.local.mock_apis.data import FX_BASES, Clock, build_fx, fx_row, published_of
from finsight.local.mock_apis.faults import Provider, same_secret

PARAMS = {"apikey", "base", "date", "start_date", "end_date", "symbols", "published_since"}
MAX_RANGE_DAYS = 366


def error(status: int, message: str, type_: str | None = None) -> Response:
    """``{"error": {"code", "type", "message"}}``, the shape common to commercial FX-rate APIs."""
    type_ = type_ or {401: "invalid_api_key", 404: "not_found", 429: "rate_limit_reached"}.get(
        status, "server_error" if status >= 500 else "invalid_request"
    )
    resp = jsonify(error={"code": status, "type": type_, "message": message})
    resp.status_code = status
    return resp


class FxApi:
    def __init__(
        self, source: ApiSource, credential: str, rows: list[dict[str, Any]], clock: Clock | None = None
    ) -> None:
        if set(source.streams) != {"daily_rates"}:
            raise ValueError(f"fx mock serves exactly the stream 'daily_rates', config has {sorted(source.streams)}")
        self.path = source.streams["daily_rates"].path
        self.credential = credential
        self.rows = [(published_of(r), r) for r in rows]  # sorted by (date, base, quote)
        self.latest = max(r["date"] for r in rows)
        self.clock = clock
        self._lock = threading.Lock()
        self._corrections = 0

    def correct(self) -> dict[str, Any]:
        """A late correction: republish one USD rate of the day before the latest with a new revision, now."""
        assert self.clock is not None
        with self._lock:
            day = sorted({r["date"] for _, r in self.rows})[-2]
            usd = [i for i, (_, r) in enumerate(self.rows) if r["date"] == day and r["base"] == "USD"]
            i = usd[self._corrections % len(usd)]
            self._corrections += 1
            _, old = self.rows[i]
            row = fx_row(
                date.fromisoformat(old["date"]), old["base"], old["quote"], old["rate"] * 1.01, self.clock.ts(),
                old["revision"] + 1,
            )  # fmt: skip
            self.rows[i] = (published_of(row), row)
        return {"corrected": row}

    def authenticate(self) -> Response | None:
        key = request.args.get("apikey") or request.headers.get("X-API-Key")
        if key is None:
            return error(401, "No API key was specified; pass `apikey` or the X-API-Key header.", "missing_api_key")
        if not same_secret(key, self.credential):
            return error(401, "Invalid API key.")
        return None

    def rates(self) -> Response:
        args = request.args
        unknown = sorted(set(args) - PARAMS)
        if unknown:
            return error(400, f"Unknown parameter {unknown[0]!r}; allowed: {sorted(PARAMS - {'apikey'})}")
        base = args.get("base", "USD").upper()
        if base not in FX_BASES:
            return error(400, f"Unsupported base currency {base!r}; supported: {FX_BASES}", "invalid_base_currency")
        if "date" in args and ({"start_date", "end_date"} & set(args)):
            return error(400, "Pass either `date` or `start_date`/`end_date`, not both.")
        try:
            days = {k: date.fromisoformat(args[k]).isoformat() for k in ("date", "start_date", "end_date") if k in args}
            since = datetime.fromisoformat(args["published_since"]) if "published_since" in args else None
        except ValueError:
            return error(400, "Dates are YYYY-MM-DD; published_since is an ISO 8601 timestamp.", "invalid_date")
        if "date" in days:
            lo = hi = days["date"]
        else:  # no dates at all: the latest published date
            hi = days.get("end_date", self.latest)
            lo = days.get("start_date", hi)
        if lo > hi:
            return error(400, "start_date is after end_date.", "invalid_date_range")
        if (date.fromisoformat(hi) - date.fromisoformat(lo)).days > MAX_RANGE_DAYS:
            return error(400, f"A range may span at most {MAX_RANGE_DAYS} days.", "invalid_date_range")
        since_ts = (since if since.tzinfo else since.replace(tzinfo=UTC)).timestamp() if since else None
        symbols = set(args["symbols"].upper().split(",")) if args.get("symbols") else None
        with self._lock:
            rows = list(self.rows)
        out = [
            r
            for ts, r in rows
            if r["base"] == base
            and lo <= r["date"] <= hi
            and (symbols is None or r["quote"] in symbols)
            and (since_ts is None or ts >= since_ts)
        ]
        return jsonify(base=base, start_date=lo, end_date=hi, rates=out)


def build(name: str, source: ApiSource, credential: str, *, seed: int, scale: float, clock: Clock) -> Provider:
    api = FxApi(source, credential, build_fx(seed, scale, clock.start), clock)
    bp = Blueprint(f"mock_{name}", __name__)
    bp.add_url_rule(api.path, "rates", api.rates, methods=["GET"])
    return Provider(
        name=name,
        blueprint=bp,
        authenticate=api.authenticate,
        error=error,
        mutate=api.correct,
        counts=lambda: {"daily_rates": len(api.rows)},
    )
