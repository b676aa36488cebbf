"""One Flask app playing the four payment providers, each under ``/<source name>`` as configured in api_sources."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from finsight.config.models import ApiSource
from finsight.local.mock_apis import adyen, fx, paypal, stripe
from finsight.local.mock_apis.data import Clock
from finsight.local.mock_apis.faults import FaultInjector, Provider, TokenBucket, admin_blueprint, install_guards

Builder = Callable[..., Provider]
BUILDERS: dict[str, Builder] = {"stripe": stripe.build, "paypal": paypal.build, "adyen": adyen.build, "fx": fx.build}


def default_now() -> datetime:
    """Current UTC time floored to the hour: servers started within the same hour serve identical data."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def configured_sources() -> dict[str, ApiSource]:
    from finsight.config.loader import load_environment  # late import: reads environments/ only when needed

    return dict(load_environment("local").api_sources)


def create_app(
    credentials: Mapping[str, str],
    seed: int = 42,
    scale: float = 1.0,
    now: datetime | None = None,
    *,
    rate_limits: Mapping[str, float] | None = None,
    sources: Mapping[str, ApiSource] | None = None,
) -> Flask:
    """Build the mock server.

    credentials: source name -> the API key / secret that source expects (paypal: ``"client_id:secret"``).
    now: data is generated for the 3 days before it (naive = UTC; default: this hour, see ``default_now``).
    rate_limits: source name -> requests per second, overriding the config's ``rate_limit_per_second``.
    sources: the api_sources to serve (default: ``load_environment("local").api_sources``).
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    sources = dict(sources) if sources is not None else configured_sources()
    rate_limits = dict(rate_limits or {})
    missing = sorted(set(sources) - set(credentials))
    if missing:
        raise ValueError(f"no credential for api source(s) {missing}")  # names only, never values
    unknown = sorted(set(rate_limits) - set(sources))
    if unknown:
        raise ValueError(f"rate_limits names unknown source(s) {unknown}; known: {sorted(sources)}")
    start = now or default_now()
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    clock = Clock(start.astimezone(UTC))

    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep provider field order, like the real APIs
    injector = FaultInjector()
    providers: dict[str, Provider] = {}
    for name, source in sources.items():
        provider = BUILDERS[source.kind](name, source, credentials[name], seed=seed, scale=scale, clock=clock)
        install_guards(provider, TokenBucket(rate_limits.get(name, source.rate_limit_per_second)), injector)
        app.register_blueprint(provider.blueprint, url_prefix=f"/{name}")
        providers[name] = provider
    info = {"seed": seed, "scale": scale, "now": clock.start.isoformat()}
    app.register_blueprint(admin_blueprint(injector, set(providers), info, providers))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        # Unknown paths and methods answer in the addressed provider's error style.
        provider = providers.get(request.path.strip("/").split("/", 1)[0])
        status = exc.code or 500
        if provider is not None:
            return provider.error(status, f"Unrecognized request: {request.method} {request.path}")
        resp = jsonify(error=exc.name, message=exc.description)
        resp.status_code = status
        return resp

    return app
