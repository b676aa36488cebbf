"""The IAM policy builders, from finsight.iam_policy: the local stack renders the same role policies on moto."""

from __future__ import annotations

from finsight.iam_policy import (
    DENY_INSECURE_TRANSPORT,
    Statement,
    allow,
    assume_role,
    aws_principal,
    deny,
    document,
    service_principal,
)

__all__ = [
    "DENY_INSECURE_TRANSPORT",
    "Statement",
    "allow",
    "assume_role",
    "aws_principal",
    "deny",
    "document",
    "service_principal",
]
