"""Stripe-like card acquirer: Bearer auth, newest-first cursor lists, ``created[...]`` filters, idempotent refunds."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

from flask import Blueprint, Response, jsonify, request

from finsight.config.models import ApiSource
from finsight.local.mock_apis.data import Clock, StripeData, balance_txn, build_stripe, make_id, newest_first
from finsight.local.mock_apis.faults import Provider, bearer_token, same_secret

OBJECT_NAMES = {
    "charges": "charge",
    "refunds": "refund",
    "disputes": "dispute",
    "payouts": "payout",
    "balance_transactions": "balance_transaction",
}
CREATED_OPS = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}
LIST_PARAMS = {"limit", "starting_after", "ending_before", *(f"created[{op}]" for op in CREATED_OPS)}
# equality filters Stripe offers per list endpoint (a subset)
STREAM_FILTERS = {
    "charges": {"customer"},
    "refunds": {"charge"},
    "disputes": {"charge"},
    "payouts": {"status"},
    "balance_transactions": {"type", "source"},
}
REFUND_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}


def error(
    status: int, message: str, *, type_: str | None = None, code: str | None = None, param: str | None = None
) -> Response:
    """Stripe's error envelope: ``{"error": {"type", "code", "message", "param"}}`` plus a Request-Id header."""
    body: dict[str, Any] = {"type": type_ or ("api_error" if status >= 500 else "invalid_request_error")}
    if code:
        body["code"] = code
    body["message"] = message
    if param:
        body["param"] = param
    resp = jsonify(error=body)
    resp.status_code = status
    resp.headers["Request-Id"] = f"req_{uuid.uuid4().hex[:14]}"
    return resp


def _key(obj: dict[str, Any]) -> tuple[int, str]:
    return obj["created"], obj["id"]


class StripeApi:
    def __init__(self, source: ApiSource, credential: str, data: StripeData, clock: Clock, seed: int) -> None:
        unknown = set(source.streams) - set(OBJECT_NAMES)
        if unknown:
            raise ValueError(f"stripe mock does not serve stream(s) {sorted(unknown)}; known: {sorted(OBJECT_NAMES)}")
        self.source = source
        self.credential = credential
        self.data = data
        self.clock = clock
        self.rng = random.Random(f"{seed}:stripe:runtime")  # ids of refunds created at runtime
        self.idempotent: dict[str, tuple[str, dict[str, Any]]] = {}  # key -> (request fingerprint, response body)

    def authenticate(self) -> Response | None:
        token = bearer_token()
        if token is None:
            return error(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if not same_secret(token, self.credential):
            return error(401, "Invalid API Key provided.", code="api_key_invalid")  # never echo the key
        return None

    def list_objects(self, stream: str) -> Response:
        args = request.args
        unknown = sorted(set(args) - LIST_PARAMS - STREAM_FILTERS[stream])
        if unknown:
            return error(400, f"Received unknown parameter: {unknown[0]}", code="parameter_unknown", param=unknown[0])
        try:
            limit = int(args.get("limit", "10"))
        except ValueError:
            return error(400, f"Invalid integer: {args['limit']}", code="parameter_invalid_integer", param="limit")
        if not 1 <= limit <= 100:
            return error(400, "limit must be between 1 and 100.", code="parameter_invalid_integer", param="limit")
        bounds: list[tuple[Any, int]] = []
        for op, fn in CREATED_OPS.items():
            if (raw := args.get(f"created[{op}]")) is not None:
                try:
                    bounds.append((fn, int(raw)))
                except ValueError:
                    return error(
                        400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param=f"created[{op}]"
                    )
        after, before = args.get("starting_after"), args.get("ending_before")
        if after and before:
            return error(400, "You may only specify one of these parameters: ending_before, starting_after.")
        equals = {k: v for k, v in args.items() if k in STREAM_FILTERS[stream]}

        with self.data.lock:  # refunds may be created concurrently
            objects = self.data.streams[stream]
            rows = [
                o
                for o in objects
                if all(fn(o["created"], v) for fn, v in bounds) and all(str(o.get(k)) == v for k, v in equals.items())
            ]
            if after or before:
                cursor = next((o for o in objects if o["id"] == (after or before)), None)
                if cursor is None:
                    name = OBJECT_NAMES[stream]
                    param = "starting_after" if after else "ending_before"
                    return error(400, f"No such {name}: '{after or before}'", code="resource_missing", param=param)
                ck = _key(cursor)
                if after:  # list is newest first: "after" means older than the cursor
                    rest = [o for o in rows if _key(o) < ck]
                    page, has_more = rest[:limit], len(rest) > limit
                else:
                    rest = [o for o in rows if _key(o) > ck]
                    page, has_more = rest[-limit:], len(rest) > limit
            else:
                page, has_more = rows[:limit], len(rows) > limit
            return jsonify(object="list", data=page, has_more=has_more, url=self.source.streams[stream].path)

    def create_refund(self) -> Response:
        params = request.form.to_dict()
        key = request.headers.get("Idempotency-Key")
        fingerprint = json.dumps(sorted(params.items()))
        with self.data.lock:
            if key and key in self.idempotent:
                seen, body = self.idempotent[key]
                if seen != fingerprint:
                    return error(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        "used with. Try using a key other than the one you used if you meant to execute a "
                        "different request.",
                        type_="idempotency_error",
                    )
                resp = jsonify(body)
                resp.headers["Idempotent-Replayed"] = "true"
                return resp
            result = self._refund(params)
            if isinstance(result, Response):
                return result  # validation errors are not stored, as with Stripe
            if key:
                self.idempotent[key] = (fingerprint, result)
            return jsonify(result)

    def _refund(self, params: dict[str, str]) -> dict[str, Any] | Response:
        allowed = {"charge", "amount", "reason"}
        unknown = sorted(k for k in params if k not in allowed and not k.startswith("metadata["))
        if unknown:
            return error(400, f"Received unknown parameter: {unknown[0]}", code="parameter_unknown", param=unknown[0])
        charge_id = params.get("charge")
        if not charge_id:
            return error(400, "Missing required param: charge.", code="parameter_missing", param="charge")
        charge = next((c for c in self.data.streams["charges"] if c["id"] == charge_id), None)
        if charge is None:
            return error(400, f"No such charge: '{charge_id}'", code="resource_missing", param="charge")
        remaining = charge["amount_captured"] - charge["amount_refunded"]
        if charge["status"] != "succeeded" or remaining <= 0:
            return error(400, f"Charge {charge_id} has already been refunded.", code="charge_already_refunded")
        try:
            amount = int(params.get("amount", remaining))
        except ValueError:
            return error(400, f"Invalid integer: {params['amount']}", code="parameter_invalid_integer", param="amount")
        if not 1 <= amount <= remaining:
            msg = f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})."
            return error(400, msg, code="amount_too_large", param="amount")
        reason = params.get("reason")
        if reason is not None and reason not in REFUND_REASONS:
            return error(400, f"Invalid reason: must be one of {sorted(REFUND_REASONS)}", param="reason")
        metadata = {k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")}
        refund = {
            "id": make_id(self.rng, "re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": None,
            "charge": charge_id,
            "created": self.clock.ts(),
            "currency": charge["currency"],
            "metadata": metadata,
            "reason": reason,
            "status": "succeeded",
        }
        txn = balance_txn(self.rng, refund, -amount, 0, "refund", self.clock.ts())
        refund["balance_transaction"] = txn["id"]
        streams = self.data.streams
        streams["refunds"] = newest_first([refund, *streams["refunds"]])
        streams["balance_transactions"] = newest_first([txn, *streams["balance_transactions"]])
        charge["amount_refunded"] += amount  # like Stripe: the charge changes, its `created` does not
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        return refund

    def mutate(self) -> dict[str, Any]:
        """Activity: a new succeeded charge (with its balance transaction), created now."""
        with self.data.lock:
            template = self.data.streams["charges"][-1]
            charge = json.loads(json.dumps(template)) | {
                "id": make_id(self.rng, "ch"),
                "created": self.clock.ts(),
                "status": "succeeded",
                "paid": True,
                "captured": True,
                "amount_refunded": 0,
                "refunded": False,
                "disputed": False,
                "failure_code": None,
                "failure_message": None,
            }
            charge["amount_captured"] = charge["amount"]
            txn = balance_txn(self.rng, charge, charge["amount"], 0, "charge", self.clock.ts())
            charge["balance_transaction"] = txn["id"]
            streams = self.data.streams
            streams["charges"] = newest_first([charge, *streams["charges"]])
            streams["balance_transactions"] = newest_first([txn, *streams["balance_transactions"]])
        return {"created": {"charges": charge["id"], "balance_transactions": txn["id"]}}


def build(name: str, source: ApiSource, credential: str, *, seed: int, scale: float, clock: Clock) -> Provider:
    api = StripeApi(source, credential, build_stripe(seed, scale, clock.start), clock, seed)
    bp = Blueprint(f"mock_{name}", __name__)
    for stream, spec in source.streams.items():
        bp.add_url_rule(spec.path, f"list_{stream}", lambda s=stream: api.list_objects(s), methods=["GET"])
    if "refunds" in source.streams:
        bp.add_url_rule(source.streams["refunds"].path, "create_refund", api.create_refund, methods=["POST"])
    return Provider(
        name=name,
        blueprint=bp,
        authenticate=api.authenticate,
        error=provider_error,
        mutate=api.mutate,
        counts=lambda: {s: len(v) for s, v in api.data.streams.items()},
    )


def provider_error(status: int, message: str) -> Response:
    return error(status, message, code="rate_limit" if status == 429 else None)
