"""`finsight cost --env E [--json]`: the monthly bill of an environment against its budget (a CI gate)."""

from __future__ import annotations

import json

import typer

from finsight.cli.common import EnvOption, environment, exits_cleanly
from finsight.cost.model import CostReport, estimate


def _table(report: CostReport) -> str:
    head = ("service", "item", "quantity", "unit price", "monthly USD")
    rows = [
        (
            i.service,
            i.item,
            f"{i.quantity:,.2f} {i.unit}" if i.quantity >= 1 else f"{i.quantity:.3g} {i.unit}",
            f"${i.unit_price_usd:,.6g}",
            f"{i.monthly_usd:,.2f}",
        )
        for i in sorted(report.items, key=lambda i: -i.monthly_usd)
    ]
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head))]

    def fmt(r: tuple[str, ...]) -> str:
        cells = [r[c].ljust(widths[c]) if c < 2 else r[c].rjust(widths[c]) for c in range(len(r))]
        return "  ".join(cells)

    rule = "-" * len(fmt(head))
    o = report.outlook
    kept = (
        "throughout retention"
        if o.headroom_kept_until_month is None
        else f"until month {o.headroom_kept_until_month} of operation"
    )
    status = "PASS" if report.passed else "OVER"
    return "\n".join(
        [
            f"FinSight monthly cost, env={report.env} (first year; storage at its end-of-year-1 size)",
            fmt(head),
            rule,
            *map(fmt, rows),
            rule,
            f"total      ${report.total_usd:,.2f}/month",
            f"budget     ${report.budget_usd:,.2f}/month",
            f"headroom   {report.headroom:.1%} (required {report.required_headroom:.0%})  {status}",
            f"storage    year 1: {o.year1_tb:,.1f} TB ${o.year1_usd:,.0f}/month; at the {o.ceiling_years}-year "
            f"retention ceiling: {o.ceiling_tb:,.1f} TB ${o.ceiling_usd:,.0f}/month, "
            f"whole bill ${o.ceiling_total_usd:,.0f}/month; required headroom kept {kept}",
            "prices: finsight/cost/prices.yaml (each cites its source); assumptions: finsight/cost/volumes.yaml",
        ]
    )


def cost(
    env: str = EnvOption,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Monthly cost of an environment; exit 1 when over budget or below the required headroom."""
    cfg = environment(env)
    with exits_cleanly():  # a broken prices.yaml / volumes.yaml is a config error, not a traceback
        report = estimate(cfg)
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else _table(report))
    if not report.passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("cost")(cost)
