"""Monthly cost model of the platform: pure functions over the config plus an editable price table."""

from finsight.cost.model import (
    CostReport,
    Curve,
    LineItem,
    account_credit_quota,
    curve,
    estimate,
    monthly_snowflake_credits,
    resource_monitor_quotas,
)

__all__ = [
    "CostReport",
    "Curve",
    "LineItem",
    "account_credit_quota",
    "curve",
    "estimate",
    "monthly_snowflake_credits",
    "resource_monitor_quotas",
]
