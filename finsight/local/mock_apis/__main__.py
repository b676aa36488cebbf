"""``python -m finsight.local.mock_apis --port P --seed S --scale X``: serve the mock payment APIs on 127.0.0.1.

Credentials come only from the FINSIGHT_MOCK_API_CREDENTIALS environment variable (a JSON object of source name ->
key), never from argv, and are never logged; request logs redact secret-looking query parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from datetime import UTC, datetime
from types import FrameType

from werkzeug.serving import WSGIRequestHandler, make_server

from finsight.local.mock_apis import CREDENTIALS_ENV, create_app

HOST = "127.0.0.1"  # loopback only: the admin endpoints have no auth
SECRET_PARAM = re.compile(r"(?i)((?:api_?key|access_token|token|secret|password|key)=)[^&\s]*")


def redact(text: str) -> str:
    return SECRET_PARAM.sub(r"\1***", text)


class RedactingRequestHandler(WSGIRequestHandler):
    """Werkzeug's access log, minus anything secret: the FX API takes its key as ``?apikey=``."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        line = f"{self.command} {self.path}" if hasattr(self, "path") else self.requestline
        self.log("info", '"%s" %s %s', redact(line), code, size)

    def log_error(self, format: str, *args: object) -> None:
        self.log("error", "%s", redact(format % args))


def parse_rate_limit(text: str) -> tuple[str, float]:
    source, sep, rate = text.partition("=")
    try:
        if not sep or float(rate) <= 0:
            raise ValueError
        return source, float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SOURCE=REQUESTS_PER_SECOND (> 0), got {text!r}") from None


def parse_now(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 timestamp, got {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def load_credentials(parser: argparse.ArgumentParser) -> dict[str, str]:
    raw = os.environ.get(CREDENTIALS_ENV)
    if not raw:
        parser.error(f"{CREDENTIALS_ENV} is not set; it must hold a JSON object of api source name -> key")
    try:
        creds = json.loads(raw)
    except json.JSONDecodeError:
        creds = None  # the message must not quote the (secret) value
    if not isinstance(creds, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in creds.items()):
        parser.error(f"{CREDENTIALS_ENV} must be a JSON object mapping source names to string keys")
    return creds


def main(argv: list[str] | None = None) -> int:
    from finsight.config.loader import load_environment

    local = load_environment("local").local
    assert local is not None  # the local environment always has a `local:` section (validated)
    parser = argparse.ArgumentParser(prog="python -m finsight.local.mock_apis", description=__doc__)
    parser.add_argument("--port", type=int, default=local.mock_api_port, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=local.seed)
    parser.add_argument("--scale", type=float, default=local.scale)
    parser.add_argument("--now", type=parse_now, default=None, help="pin the data's 'now' (ISO 8601, default UTC)")
    parser.add_argument(
        "--rate-limit",
        type=parse_rate_limit,
        action="append",
        default=[],
        metavar="SOURCE=PER_SECOND",
        help="override a source's rate_limit_per_second (repeatable)",
    )
    args = parser.parse_args(argv)
    credentials = load_credentials(parser)
    try:
        app = create_app(credentials, args.seed, args.scale, args.now, rate_limits=dict(args.rate_limit))
    except ValueError as exc:
        parser.error(str(exc))
    server = make_server(HOST, args.port, app, threaded=True, request_handler=RedactingRequestHandler)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)  # unwinds serve_forever so the socket is closed cleanly

    signal.signal(signal.SIGTERM, _stop)
    print(f"mock payment APIs listening on http://{HOST}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
