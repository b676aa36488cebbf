"""`finsight` CLI root: each command group lives in its own module and registers itself here.

The modules are imported lazily (only the one a command needs), so `finsight --help` answers without loading
Snowflake, boto3, pyarrow or the connectors. A stopped local stack answers every command with one line.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from finsight.cli.errors import STACK_DOWN, is_stack_down

# command name -> (module registering it, one-line help shown by `finsight --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("finsight.cli.config_cmd", "Validate and inspect environments/<env>.yaml."),
    "local": ("finsight.cli.local_cmd", "Run the whole platform on this machine (127.0.0.1 only)."),
    "run": ("finsight.cli.run_cmd", "Run one full hourly cycle (local)."),
    "extract": ("finsight.cli.extract_cmd", "Run one source's connector."),
    "connectors": ("finsight.cli.connectors_cmd", "Airbyte connector configs (--config for spec/check/discover/read)."),
    "infra": ("finsight.cli.infra_cmd", "Synthesize and scan the CDK Terrain stacks (never applies)."),
    "cost": ("finsight.cli.cost_cmd", "Month-by-month bill against the budget."),
    "migrate": ("finsight.cli.sql_cmd", "Apply the schemachange migrations."),
    "sql": ("finsight.cli.sql_cmd", "Render and lint the SQL we ship (migrations, Task DAG, procedures)."),
    "dag": ("finsight.cli.dag_cmd", "The hourly Task DAG: render, deploy, run locally, read its history."),
    "replay": ("finsight.cli.dag_cmd", "Re-merge one landed batch."),
    "backfill": ("finsight.cli.backfill_cmd", "Chunked, resumable backfills."),
    "pan-key": ("finsight.cli.pan_key_cmd", "PAN tokenization key: status and rotation."),
    "load": ("finsight.cli.warehouse_cmd", "Drain the landing queue, run the graph if batches landed."),
    "batches": ("finsight.cli.warehouse_cmd", "Landed batches: landed / loaded / merged / waiting, and why."),
    "quarantine": ("finsight.cli.warehouse_cmd", "Files a pipe could not load (OPS.LOAD_ERRORS)."),
    "reconcile": ("finsight.cli.warehouse_cmd", "Every source table vs CURATED."),
    "marts": ("finsight.cli.warehouse_cmd", "The marts catalog (snowpark/marts/<mart>/)."),
    "status": ("finsight.cli.ops_cmd", "Per source and table: freshness, lag vs SLA, last error, owner, next action."),
    "slo": ("finsight.cli.ops_cmd", "Monthly DAG success rate and end-to-end latency against the SLOs."),
    "alerts": ("finsight.cli.ops_cmd", "Alerts on the teams' topics, with owner and runbook [--follow]."),
    "metrics": ("finsight.cli.ops_cmd", "Pipeline metrics from the local sink (CloudWatch EMF in AWS)."),
    "dashboard": ("finsight.cli.ops_cmd", "The ops dashboard (Streamlit) against the environment's warehouse."),
    "dq": ("finsight.cli.dq_cmd", "Data-quality results, history, explain and release (OPS.QUALITY_RESULTS)."),
}


class LazyGroup(TyperGroup):
    """Root group: loads a command's module on first use; help is listed from COMMANDS."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(COMMANDS[cmd_name][0])
        sub = typer.Typer(pretty_exceptions_show_locals=False)
        sub.callback()(lambda: None)  # always a group, so the command is looked up by name
        module.register(sub)
        group = typer.main.get_command(sub)
        assert isinstance(group, TyperGroup)
        return group.get_command(ctx, cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list((name, text) for name, (_, text) in COMMANDS.items()))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if is_stack_down(exc):
                typer.secho(STACK_DOWN, fg="red", err=True)
                raise typer.Exit(1) from None
            raise


# show_locals=False: a traceback must never print a variable holding a credential
app = typer.Typer(
    cls=LazyGroup,
    help="FinSight data platform: config, local stack, pipeline runs, infra and cost.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # plain help: rich's renderer would import every command to read its help
)


@app.callback()
def _root() -> None:
    """FinSight data platform: config, local stack, pipeline runs, ops, infra and cost."""


if __name__ == "__main__":
    app()
