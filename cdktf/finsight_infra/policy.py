"""Tiny IAM policy builders: statements stay readable dicts and render with `json.dumps`.

Token strings (e.g. `bucket.arn`) survive `json.dumps` unchanged and resolve at synth, so policies can mix
literal ARNs derived from naming with references to resources in the same stack.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

Statement = dict[str, Any]


def _listify(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allow(
    sid: str,
    actions: str | Sequence[str],
    resources: str | Sequence[str],
    condition: dict[str, Any] | None = None,
    principal: dict[str, Any] | None = None,
) -> Statement:
    return _statement("Allow", sid, actions, resources, condition, principal)


def deny(
    sid: str,
    actions: str | Sequence[str],
    resources: str | Sequence[str],
    condition: dict[str, Any] | None = None,
    principal: dict[str, Any] | None = None,
) -> Statement:
    return _statement("Deny", sid, actions, resources, condition, principal)


def _statement(
    effect: str,
    sid: str,
    actions: str | Sequence[str],
    resources: str | Sequence[str],
    condition: dict[str, Any] | None,
    principal: dict[str, Any] | None,
) -> Statement:
    st: Statement = {"Sid": sid, "Effect": effect}
    if principal is not None:
        st["Principal"] = principal
    st["Action"] = _listify(actions)
    st["Resource"] = _listify(resources)
    if condition:
        st["Condition"] = condition
    return st


def document(*statements: Statement) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def service_principal(service: str) -> dict[str, str]:
    return {"Service": service}


def aws_principal(arn: str | Sequence[str]) -> dict[str, Any]:
    return {"AWS": arn if isinstance(arn, str) else list(arn)}


def assume_role(principal: dict[str, Any], condition: dict[str, Any] | None = None) -> str:
    st: Statement = {"Sid": "AssumeRole", "Effect": "Allow", "Principal": principal, "Action": ["sts:AssumeRole"]}
    if condition:
        st["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [st]})


DENY_INSECURE_TRANSPORT = {"Bool": {"aws:SecureTransport": "false"}}
