"""`finsight` CLI root: each command group lives in its own module and registers itself here."""

from __future__ import annotations

import typer

import finsight.cli.backfill_cmd as backfill_cmd
import finsight.cli.dq_cmd as dq_cmd
import finsight.cli.pan_key_cmd as pan_key_cmd
import finsight.cli.warehouse_cmd as warehouse_cmd
from finsight.cli import config_cmd, cost_cmd, dag_cmd, extract_cmd, infra_cmd, local_cmd, run_cmd, sql_cmd

# show_locals=False: a traceback must never print a variable holding a credential
app = typer.Typer(
    help="FinSight data platform: config, local stack, pipeline runs, infra and cost.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

for module in (config_cmd, local_cmd, run_cmd, extract_cmd, infra_cmd, cost_cmd, sql_cmd, dag_cmd):
    module.register(app)
backfill_cmd.register(app)
pan_key_cmd.register(app)
warehouse_cmd.register(app)  # load, batches, quarantine, reconcile, marts (issue 8)
dq_cmd.register(app)  # data quality (issue 9)


if __name__ == "__main__":
    app()
