"""`finsight cost --env E|all [--horizon 84] [--json]`: the month-by-month bill against the budget (a CI gate).

`--env all` sums dev + staging + prod against `budget.platform_monthly_usd` minus `budget.required_headroom`, and
checks that the allocations (`budget.monthly_usd`) add up to no more than that; one environment is checked against
its allocation. Exit 1 when any month of the horizon is over, or the allocations are. Every line item names its
source: config keys, volumes.yaml keys, bench/results.json keys with ran_at, and prices.yaml entries.
"""

from __future__ import annotations

import json

import typer

from finsight.cli.common import environment, exits_cleanly
from finsight.cost.model import CLOUD_ENVIRONMENTS, DEFAULT_HORIZON_MONTHS, CostReport, Curve, allocations_fit, curve


def _items(report: CostReport) -> list[str]:
    head = ("service", "item", "quantity", "unit price", "monthly USD", "source")
    rows = [
        (
            i.service,
            i.item,
            f"{i.quantity:,.2f} {i.unit}" if i.quantity >= 1 else f"{i.quantity:.3g} {i.unit}",
            f"${i.unit_price_usd:,.6g}",
            f"{i.monthly_usd:,.2f}",
            i.source,
        )
        for i in sorted(report.items, key=lambda i: -i.monthly_usd)
    ]
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head) - 1)]

    def fmt(r: tuple[str, ...]) -> str:
        cells = [r[c].ljust(widths[c]) if c < 2 else r[c].rjust(widths[c]) for c in range(len(widths))]
        return "  ".join([*cells, r[-1]])  # the source is last and unpadded: it can be long

    rule = "-" * len(fmt((*head[:-1], "")))
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
        f"limit        ${c.limit_usd:,.2f}/month "
        + (
            f"(cap ${c.cap_usd:,.0f} minus {c.required_headroom:.0%} headroom)"
            if c.scope == "all"
            else f"(the {c.scope} allocation, budget.monthly_usd)"
        ),
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
    allocations = ""
    if env == "all":
        allocated, limit = allocations_fit(envs)
        over_allocated = allocated > limit
        allocations = (f"allocations  ${allocated:,.0f}/month (budget.monthly_usd of {', '.join(names)}) "
                       f"{'>' if over_allocated else '<='} ${limit:,.0f} (the cap minus the headroom)")  # fmt: skip
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        typer.echo(_table(result) + (f"\n{allocations}" if allocations else ""))
    if over_allocated:
        typer.secho(f"budget allocations add to ${allocated:,.0f} > ${limit:,.0f}, the platform cap minus the "
                    "required headroom", fg="red", err=True)  # fmt: skip
    if not result.passed or over_allocated:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("cost")(cost)
