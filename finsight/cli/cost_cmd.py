"""`finsight cost --env E|all [--horizon 84] [--json]`: the month-by-month bill against the budget (a CI gate).

`--env all` sums dev + staging + prod against `budget.platform_monthly_usd`; one environment is checked against its
allocation (`budget.monthly_usd`). Exit 1 when any month of the horizon exceeds the cap minus the required headroom.
"""

from __future__ import annotations

import json

import typer

from finsight.cli.common import environment, exits_cleanly
from finsight.cost.model import CLOUD_ENVIRONMENTS, DEFAULT_HORIZON_MONTHS, CostReport, Curve, allocations_fit, curve


def _items(report: CostReport) -> list[str]:
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
        return "  ".join(r[c].ljust(widths[c]) if c < 2 else r[c].rjust(widths[c]) for c in range(len(r)))

    rule = "-" * len(fmt(head))
    return [f"{report.env}, month {report.month}: ${report.total_usd:,.2f}", fmt(head), rule, *map(fmt, rows), rule]


def _table(c: Curve) -> str:
    envs = list(c.by_env)
    lines = [f"FinSight monthly cost, scope={c.scope}, months 1-{c.months[-1]} (cap ${c.cap_usd:,.0f}, required "
             f"headroom {c.required_headroom:.0%}: limit ${c.limit_usd:,.0f}/month)",
             "month  " + "  ".join(f"{e:>10}" for e in envs) + f"  {'total':>10}  status"]  # fmt: skip
    for i, m in enumerate(c.months):
        total = c.totals[i]
        cells = "  ".join(f"{c.by_env[e][i]:>10,.0f}" for e in envs)
        lines.append(f"{m:>5}  {cells}  {total:>10,.0f}  {'OVER' if total > c.limit_usd else 'ok'}")
    lines.append("")
    lines.append(f"line items in the worst month ({c.worst_month}):")
    for report in c.worst.values():
        lines += _items(report)
    status = "PASS" if c.passed else f"OVER in {len(c.months_over)} month(s), first {c.months_over[0]}"
    lines += [
        f"worst month  {c.worst_month}: ${c.worst_usd:,.2f}/month",
        f"limit        ${c.limit_usd:,.2f}/month (cap ${c.cap_usd:,.0f} minus {c.required_headroom:.0%} headroom)",
        f"headroom     {1 - c.worst_usd / c.cap_usd:.1%} at the worst month  {status}",
        "prices: finsight/cost/prices.yaml (each cites its source); assumptions: finsight/cost/volumes.yaml",
    ]
    return "\n".join(lines)


def cost(
    env: str = typer.Option("all", "--env", "-e", help="dev, staging, prod, local, or all (dev+staging+prod)."),
    horizon: int = typer.Option(DEFAULT_HORIZON_MONTHS, "--horizon", help="Months of operation to check."),
    as_json: bool = typer.Option(False, "--json", help="Print the curve and line items as JSON."),
) -> None:
    """Month-by-month bill; exit 1 when any month exceeds the cap minus the required headroom."""
    names = list(CLOUD_ENVIRONMENTS) if env == "all" else [env]
    envs = [environment(n) for n in names]
    with exits_cleanly():  # a broken prices.yaml / volumes.yaml is a config error, not a traceback
        if horizon < 1:
            typer.secho(f"--horizon: must be at least 1 month, got {horizon}", fg="red", err=True)
            raise typer.Exit(2)
        result = curve(envs, horizon)
    over_allocated = False
    if env == "all":
        allocated, cap = allocations_fit(envs)
        over_allocated = allocated > cap
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else _table(result))
    if over_allocated:
        typer.secho(f"budget allocations add to ${allocated:,.0f} > the ${cap:,.0f} platform cap", fg="red", err=True)
    if not result.passed or over_allocated:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("cost")(cost)
