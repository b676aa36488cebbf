"""Cross-cutting habits of every mock provider: auth helpers, token-bucket rate limits, failure injection.

A request to ``/<source>/...`` passes, in order: injected fault (error burst / slow / truncate), rate limit (429 +
Retry-After), then the provider's own auth check (401 in the provider's error style), then the route.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.datastructures import ImmutableMultiDict

LOOPBACK = frozenset({"127.0.0.1", "::1"})


@dataclass(frozen=True)
class Provider:
    """One mock provider, served under ``/<name>`` where ``name`` is the source name from config."""

    name: str
    blueprint: Blueprint
    # None when the current request is authorized, else the provider-style 401 response
    authenticate: Callable[[], Response | None]
    # (status, message) -> a response with the provider's own error body
    error: Callable[[int, str], Response]
    # forget every access token issued so far (OAuth providers): the next call with one answers 401
    expire_tokens: Callable[[], None] | None = None
    # simulate provider activity (new records, late corrections); returns what changed
    mutate: Callable[[], dict[str, Any]] | None = None
    # stream name -> how many records the provider holds now (what a complete extraction must land)
    counts: Callable[[], dict[str, int]] | None = None


# -- auth helpers -----------------------------------------------------------------------------------------------


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison (bytes, so non-ASCII input cannot raise)."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def bearer_token() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def basic_credentials() -> str | None:
    """``client_id:secret`` from an HTTP Basic header, or None."""
    auth = request.authorization
    if auth is None or auth.type != "basic" or auth.username is None:
        return None
    return f"{auth.username}:{auth.password or ''}"


# -- rate limiting ----------------------------------------------------------------------------------------------


class TokenBucket:
    """``rate`` requests per second with a burst of one second's worth (at least one request)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate limit must be > 0 requests/second, got {rate}")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take a token: 0.0 when granted, else the seconds until the next token is available."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate


# -- failure injection ------------------------------------------------------------------------------------------


class FaultMode(StrEnum):
    ERROR_BURST = "error_burst"  # answer `status` (5xx by default) with the provider's error body
    SLOW = "slow"  # sleep `delay_seconds`, then answer normally
    TRUNCATE = "truncate"  # answer 200 but cut the body in half (client sees malformed JSON / CSV)
    NON_JSON = "non_json"  # answer 200 with an HTML error page (a proxy or gateway in the way)
    REPEAT_PAGE = "repeat_page"  # ignore the pagination parameter: the same page (and cursor) comes back again
    EXPIRE_TOKEN = "expire_token"  # noqa: S105 - revoke the OAuth access tokens issued so far, then answer normally (401)


@dataclass
class Fault:
    mode: FaultMode
    remaining: int
    status: int = 503
    delay_seconds: float = 2.0
    after: int = 0  # let this many requests through first (a failure in the middle of a run)


PAGINATION_PARAMS = frozenset({"starting_after", "ending_before", "page"})
HTML_ERROR_PAGE = "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"


class FaultInjector:
    """Per-source queue of the next N faulty responses, set at runtime through ``/_admin/faults``."""

    def __init__(self) -> None:
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()

    def set(self, source: str, fault: Fault) -> None:
        with self._lock:
            self._faults[source] = fault

    def clear(self, source: str | None = None) -> None:
        with self._lock:
            if source is None:
                self._faults.clear()
            else:
                self._faults.pop(source, None)

    def take(self, source: str) -> Fault | None:
        """Consume one faulty response for ``source``, if any is pending."""
        with self._lock:
            fault = self._faults.get(source)
            if fault is None:
                return None
            if fault.after > 0:
                fault.after -= 1
                return None
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self._faults[source]
            return fault

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {s: asdict(f) for s, f in self._faults.items()}


def parse_fault(body: Any, sources: set[str]) -> tuple[str, Fault]:
    """Validate a ``POST /_admin/faults`` body; ValueError says which field is wrong."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    source = body.get("source")
    if source not in sources:
        raise ValueError(f"source must be one of {sorted(sources)}")
    try:
        mode = FaultMode(body.get("mode"))
    except ValueError:
        raise ValueError(f"mode must be one of {[m.value for m in FaultMode]}") from None
    count, status, delay = body.get("count", 1), body.get("status", 503), body.get("delay_seconds", 2.0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError("count must be an integer >= 1")
    if not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError("status must be an HTTP error status (400..599)")
    if not isinstance(delay, int | float) or not 0 <= delay <= 60:
        raise ValueError("delay_seconds must be a number in 0..60")
    after = body.get("after", 0)
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise ValueError("after must be an integer >= 0")
    return source, Fault(mode=mode, remaining=count, status=status, delay_seconds=float(delay), after=after)


# -- wiring -----------------------------------------------------------------------------------------------------


def install_guards(provider: Provider, limiter: TokenBucket, injector: FaultInjector) -> None:
    """Run faults, rate limit and auth before every route of the provider; truncate after, when asked to."""
    bp = provider.blueprint

    @bp.before_request
    def _guard() -> Response | None:
        fault = injector.take(provider.name)
        if fault is not None:
            if fault.mode is FaultMode.ERROR_BURST:
                resp = provider.error(fault.status, "Injected failure: the service is temporarily unavailable.")
                if fault.status == 429:
                    resp.headers["Retry-After"] = str(max(1, math.ceil(fault.delay_seconds)))
                return resp
            if fault.mode is FaultMode.SLOW:
                time.sleep(fault.delay_seconds)
            elif fault.mode is FaultMode.NON_JSON:
                return Response(HTML_ERROR_PAGE, status=200, mimetype="text/html")
            elif fault.mode is FaultMode.REPEAT_PAGE:
                kept = [(k, v) for k, v in request.args.items(multi=True) if k not in PAGINATION_PARAMS]
                request.args = ImmutableMultiDict(kept)  # type: ignore[misc]  # the route sees the first page
            elif fault.mode is FaultMode.EXPIRE_TOKEN:
                if provider.expire_tokens is not None:
                    provider.expire_tokens()
            else:
                g.truncate_body = True
        wait = limiter.acquire()
        if wait > 0:
            resp = provider.error(429, "Too many requests hit the API too quickly.")
            resp.headers["Retry-After"] = str(max(1, math.ceil(wait)))  # HTTP allows whole seconds only
            return resp
        return provider.authenticate()

    @bp.after_request
    def _truncate(resp: Response) -> Response:
        if g.pop("truncate_body", False) and resp.status_code == 200:
            body = resp.get_data()
            resp.set_data(body[: len(body) // 2])  # Content-Length follows, so the HTTP message itself is complete
        return resp


def admin_blueprint(
    injector: FaultInjector, sources: set[str], info: dict[str, Any], providers: dict[str, Provider] | None = None
) -> Blueprint:
    """``/_admin``: readiness, runtime failure injection and provider activity (``/mutate``). Loopback only."""
    bp = Blueprint("mock_admin", __name__, url_prefix="/_admin")

    @bp.before_request
    def _loopback_only() -> tuple[Response, int] | None:
        if request.remote_addr not in LOOPBACK:
            return jsonify(error="admin endpoints are loopback-only"), 403
        return None

    @bp.get("/health")
    def health() -> Response:
        return jsonify(status="ok", sources=sorted(sources), **info)

    @bp.get("/faults")
    def list_faults() -> Response:
        return jsonify(faults=injector.snapshot())

    @bp.post("/faults")
    def set_fault() -> tuple[Response, int]:
        try:
            source, fault = parse_fault(request.get_json(silent=True), sources)
        except ValueError as exc:
            return jsonify(error=str(exc)), 400
        injector.set(source, fault)
        return jsonify(faults=injector.snapshot()), 200

    @bp.delete("/faults")
    def clear_faults() -> Response:
        source = request.args.get("source")
        injector.clear(source)
        return jsonify(faults=injector.snapshot())

    @bp.get("/records")
    def records() -> tuple[Response, int]:
        provider = (providers or {}).get(request.args.get("source", ""))
        if provider is None or provider.counts is None:
            return jsonify(error=f"source must be one of {sorted(providers or {})}"), 400
        return jsonify(provider.counts()), 200

    @bp.post("/mutate")
    def mutate() -> tuple[Response, int]:
        body = request.get_json(silent=True) or {}
        provider = (providers or {}).get(body.get("source"))
        if provider is None or provider.mutate is None:
            known = sorted(n for n, p in (providers or {}).items() if p.mutate is not None)
            return jsonify(error=f"source must be one of {known}"), 400
        return jsonify(provider.mutate()), 200

    return bp
