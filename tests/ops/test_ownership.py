"""Ownership derived from the catalog: contacts for Snowflake only, one steward per CURATED table from its source,
applied by the R__table_contacts.sql migration."""

from __future__ import annotations

from finsight.config import Environment, load_environment
from finsight.migrate import render_all
from finsight.ops.ownership import contact_sql


def _one_line(sql: str) -> str:
    return " ".join(sql.split())


def _risk_owned_by_devops(env: Environment) -> Environment:
    sources = dict(env.postgres_sources)
    sources["risk"] = sources["risk"].model_copy(update={"owner": "@finsight/devops"})
    return env.model_copy(update={"postgres_sources": sources})


def test_contacts_render_for_snowflake_only_with_the_owner_of_every_table() -> None:
    assert contact_sql(load_environment("local")) == []  # fakesnow has no contacts
    env = _risk_owned_by_devops(load_environment("prod"))
    statements = [_one_line(s) for s in contact_sql(env)]
    creates = [s for s in statements if s.startswith("CREATE CONTACT")]
    assert len(creates) == 2 and all(env.aws.alert_topics[t] in " ".join(creates) for t in env.aws.alert_topics)
    alters = [s for s in statements if s.startswith("ALTER TABLE")]
    assert len(alters) == len(env.warehouse_tables())
    for table, sql in zip(env.warehouse_tables(), alters, strict=True):
        assert f".{table.curated_name} SET CONTACT STEWARD = " in sql
        team = "DEVOPS" if table.source == "risk" else "DATA_ENGINEERING"
        assert f"STEWARD = {env.snowflake.database}.OPS.{team}_ONCALL" in sql


def test_the_contacts_migration_applies_them_in_snowflake_only() -> None:
    prod = load_environment("prod")
    rendered = _one_line(render_all(prod)["R__table_contacts.sql"])
    for statement in contact_sql(prod):
        assert f"EXECUTE IMMEDIATE $$ {_one_line(statement)} $$" in rendered
    local = render_all(load_environment("local"))["R__table_contacts.sql"]
    assert "SET CONTACT" not in local and "CREATE CONTACT" not in local  # fakesnow has no contacts
