"""Snowflake data metric functions (DMFs): which column types each system DMF accepts, the platform's own DMF for
TIMESTAMP_NTZ freshness, and the grants the table owner role needs before it can attach any DMF.

Pure data and small functions (no CLI, no connection): migrations/R__quality_metrics.sql is rendered from them
(finsight.quality.migration_vars), cdktf's Snowflake stack grants OWNER_ROLE_GRANTS, and the local strict
"Snowflake rules" layer may import the same table to refuse what Snowflake refuses. fakesnow runs no DMF at all,
so these rules are Snowflake's alone; each is quoted from its docs page below.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Column types of the DMFs' "Allowed data types" sections (docs.snowflake.com/en/sql-reference/functions/dmf_<name>):
# NULL_COUNT, NULL_PERCENT, NOT_NULL_COUNT, DUPLICATE_COUNT: DATE, FLOAT, NUMBER, TIMESTAMP_LTZ/NTZ/TZ, VARCHAR (no
# BOOLEAN, no VARIANT). FRESHNESS: DATE, TIMESTAMP_LTZ, TIMESTAMP_TZ (no TIMESTAMP_NTZ). ROW_COUNT takes no column.
_SCALAR = frozenset({"DATE", "FLOAT", "NUMBER", "TIMESTAMP_LTZ", "TIMESTAMP_NTZ", "TIMESTAMP_TZ", "VARCHAR"})
SYSTEM_DMF_ARGUMENT_TYPES: dict[str, frozenset[str]] = {
    "ROW_COUNT": frozenset(),  # ON (): no column argument
    "NULL_COUNT": _SCALAR,
    "NULL_PERCENT": _SCALAR,
    "NOT_NULL_COUNT": _SCALAR,
    "DUPLICATE_COUNT": _SCALAR,
    "FRESHNESS": frozenset({"DATE", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"}),
    "NULL_KEYWORD_COUNT": frozenset({"VARCHAR"}),
}
SYSTEM_DMF_SCHEMA = "SNOWFLAKE.CORE"

# Snowflake's synonyms, reduced to the names the "Allowed data types" lists use (docs: "Summary of data types").
_SYNONYMS = {
    "DECIMAL": "NUMBER", "NUMERIC": "NUMBER", "INT": "NUMBER", "INTEGER": "NUMBER", "BIGINT": "NUMBER",
    "SMALLINT": "NUMBER", "TINYINT": "NUMBER", "BYTEINT": "NUMBER",
    "DOUBLE": "FLOAT", "DOUBLE PRECISION": "FLOAT", "REAL": "FLOAT", "FLOAT4": "FLOAT", "FLOAT8": "FLOAT",
    "STRING": "VARCHAR", "TEXT": "VARCHAR", "CHAR": "VARCHAR", "CHARACTER": "VARCHAR", "NVARCHAR": "VARCHAR",
    "DATETIME": "TIMESTAMP_NTZ",
}  # fmt: skip
_PARAMS = re.compile(r"\s*\(.*\)\s*$")


def base_type(snowflake_type: str) -> str:
    """`NUMBER(38, 0)` -> `NUMBER`, `TIMESTAMP_NTZ(6)` -> `TIMESTAMP_NTZ`, `STRING` -> `VARCHAR`."""
    name = _PARAMS.sub("", snowflake_type.strip().upper())
    return _SYNONYMS.get(name, name)


def accepts(dmf: str, column_type: str) -> bool:
    """Whether system DMF `dmf` (bare or SNOWFLAKE.CORE.-qualified) may be attached to a column of this type."""
    allowed = SYSTEM_DMF_ARGUMENT_TYPES[dmf.upper().removeprefix(SYSTEM_DMF_SCHEMA + ".")]
    return base_type(column_type) in allowed


def system(dmf: str) -> str:
    return f"{SYSTEM_DMF_SCHEMA}.{dmf}"


@dataclass(frozen=True)
class CustomDmf:
    """A DMF the migrations create (CREATE DATA METRIC FUNCTION). Its body cannot be changed in place (CREATE OR
    ALTER DATA METRIC FUNCTION alters only the COMMENT), so `name` carries a version: a new body is a new name."""

    name: str
    argument_type: str
    body: str
    comment: str

    def signature(self) -> str:
        return f"(ARG_T TABLE(ARG_C {self.argument_type}))"


# FRESHNESS for TIMESTAMP_NTZ: the platform stores UTC in NTZ columns (_EXTRACTED_AT and every business timestamp),
# so the scheduled time is taken in UTC and compared as NTZ. Seconds, like SNOWFLAKE.CORE.FRESHNESS; the scheduled
# time, not the run time, as the system DMF does (docs: DATA_METRIC_SCHEDULED_TIME, "define custom freshness").
FRESHNESS_NTZ = CustomDmf(
    name="FRESHNESS_NTZ_V1",
    argument_type="TIMESTAMP_NTZ",
    body=(
        "SELECT TIMEDIFF(SECOND, MAX(ARG_C), "
        "CONVERT_TIMEZONE('UTC', SNOWFLAKE.CORE.DATA_METRIC_SCHEDULED_TIME())::TIMESTAMP_NTZ) FROM ARG_T"
    ),
    comment="Seconds since the newest UTC TIMESTAMP_NTZ value (SNOWFLAKE.CORE.FRESHNESS takes no NTZ column)",
)
CUSTOM_DMFS = (FRESHNESS_NTZ,)


def freshness_dmf(column_type: str, custom_schema: str) -> str | None:
    """The freshness DMF for a column: the system FRESHNESS where Snowflake accepts the type, the platform's NTZ
    variant (in `custom_schema`, DATABASE.SCHEMA) for TIMESTAMP_NTZ, else None (no freshness on that column)."""
    if accepts("FRESHNESS", column_type):
        return system("FRESHNESS")
    if base_type(column_type) == FRESHNESS_NTZ.argument_type:
        return f"{custom_schema}.{FRESHNESS_NTZ.name}"
    return None


@dataclass(frozen=True)
class OwnerRoleGrant:
    """A grant the role owning a table needs before it can attach a DMF to it (docs: "Access control for data
    quality"; the system DMF pages' "Access control requirements")."""

    kind: str  # "database_role": GRANT DATABASE ROLE <name> TO ROLE ...; "account": GRANT <name> ON ACCOUNT TO ROLE ...
    name: str

    def sql(self, role: str) -> str:
        if self.kind == "database_role":
            return f"GRANT DATABASE ROLE {self.name} TO ROLE {role}"
        return f"GRANT {self.name} ON ACCOUNT TO ROLE {role}"


# Granted to the pipeline role (owner of every CURATED table) by cdktf's Snowflake stack, as ACCOUNTADMIN.
OWNER_ROLE_GRANTS = (
    OwnerRoleGrant("database_role", "SNOWFLAKE.DATA_METRIC_USER"),  # USAGE on SNOWFLAKE.CORE and its system DMFs
    OwnerRoleGrant("account", "EXECUTE DATA METRIC FUNCTION"),  # the serverless compute that runs every DMF
)
