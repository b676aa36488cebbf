"""Monthly cost model of one environment: pure functions over the config plus an editable price table."""

from finsight.cost.model import CostReport, LineItem, estimate, monthly_snowflake_credits, resource_monitor_quotas

__all__ = ["CostReport", "LineItem", "estimate", "monthly_snowflake_credits", "resource_monitor_quotas"]
