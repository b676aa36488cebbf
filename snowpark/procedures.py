"""The catalog of stored procedures: name, signature and Python handler (one definition for Snowflake and local)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CODE_STAGE = "OPS.CODE"  # internal stage holding snowpark.zip, uploaded by `finsight dag deploy`


@dataclass(frozen=True)
class Procedure:
    name: str  # SCHEMA.NAME
    handler: str  # module.function inside this package
    args: tuple[tuple[str, str], ...]
    # the access role (finsight.catalog.access_roles key) that owns it, when not the pipeline role: an owner's-rights
    # procedure runs as its owner, which the masking policies can name (INVOKER_ROLE())
    owner: str | None = None

    def function(self) -> Callable[..., Any]:
        module, _, func = self.handler.rpartition(".")
        return getattr(importlib.import_module(module), func)

    def create_sql(self) -> str:
        signature = ", ".join(f"{n} {t}" for n, t in self.args)
        return (
            f"CREATE OR REPLACE PROCEDURE {self.name}({signature})\nRETURNS VARCHAR\nLANGUAGE PYTHON\n"
            "RUNTIME_VERSION = '3.11'\nPACKAGES = ('snowflake-snowpark-python')\n"
            f"IMPORTS = ('@{CODE_STAGE}/snowpark.zip')\nHANDLER = '{self.handler}'\nEXECUTE AS OWNER"
        )

    def ownership_sql(self, owner_role: str, caller_role: str) -> list[str]:
        """Hand the procedure to its owner role; the caller (the pipeline's task) keeps the right to CALL it."""
        signature = f"{self.name}({', '.join(t for _, t in self.args)})"
        return [
            f"GRANT OWNERSHIP ON PROCEDURE {signature} TO ROLE {owner_role} COPY CURRENT GRANTS",
            f"GRANT USAGE ON PROCEDURE {signature} TO ROLE {caller_role}",
        ]


START_RUN = Procedure(
    "OPS.START_RUN",
    "snowpark.run_log.start_run",
    (("RUN_ID", "VARCHAR"), ("CONFIG", "VARCHAR"), ("TRIGGER_SOURCE", "VARCHAR")),
)
MERGE_TABLE = Procedure(
    "OPS.MERGE_TABLE",
    "snowpark.merge.merge_table",
    (("SPEC_JSON", "VARCHAR"), ("RUN_ID", "VARCHAR"), ("REPLAY_BATCH", "VARCHAR")),
)
BUILD_MART = Procedure(
    "OPS.BUILD_MART",
    "snowpark.marts_build.build_mart",
    (("MART", "VARCHAR"), ("RUN_ID", "VARCHAR"), ("CONFIG", "VARCHAR")),
)
VALIDATE_MART = Procedure(
    "OPS.VALIDATE_MART", "snowpark.validate.validate_mart", (("MART", "VARCHAR"), ("RUN_ID", "VARCHAR"))
)
FINALIZE_RUN = Procedure(
    "OPS.FINALIZE_RUN", "snowpark.run_log.finalize_run", (("RUN_ID", "VARCHAR"), ("FINALIZER", "VARCHAR"))
)
BACKFILL = Procedure(
    "OPS.BACKFILL",
    "snowpark.backfill.backfill",
    (("TABLE_NAME", "VARCHAR"), ("WINDOW_START", "VARCHAR"), ("WINDOW_END", "VARCHAR")),
)
PRUNE_RAW = Procedure("OPS.PRUNE_RAW", "snowpark.retention.prune_raw", (("RUN_ID", "VARCHAR"), ("DAYS", "NUMBER")))
APPLY_RETENTION = Procedure(
    "OPS.APPLY_RETENTION", "snowpark.retention.apply_retention", (("RUN_ID", "VARCHAR"), ("YEARS", "NUMBER"))
)
CHECK_TABLE = Procedure(
    "OPS.CHECK_TABLE", "snowpark.quality.checks.check_table", (("SPEC_JSON", "VARCHAR"), ("RUN_ID", "VARCHAR"))
)

ALL = (START_RUN, MERGE_TABLE, BUILD_MART, VALIDATE_MART, FINALIZE_RUN, BACKFILL, PRUNE_RAW, APPLY_RETENTION)
ALL = (*ALL, CHECK_TABLE)  # data quality (issue 9)
ARCHIVE_CURATED = Procedure(
    "OPS.ARCHIVE_CURATED",
    "snowpark.archive.archive_curated",
    (("RUN_ID", "VARCHAR"), ("SPEC_JSON", "VARCHAR")),
    owner="archiver",  # reads CURATED's PII clear, so the archive keeps it (migrations/R__governance.sql)
)
ALL = (*ALL, ARCHIVE_CURATED)  # CURATED history -> Iceberg archive (issue 11)
