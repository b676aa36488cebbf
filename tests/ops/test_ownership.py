"""Ownership derived from the catalog: contacts for Snowflake only, one steward per CURATED table from its source."""

from __future__ import annotations

from finsight.config import load_environment
from finsight.ops.ownership import contact_sql


def test_contacts_render_for_snowflake_only_with_the_owner_of_every_table() -> None:
    assert contact_sql(load_environment("local")) == []  # fakesnow has no contacts
    env = load_environment("prod")
    statements = contact_sql(env)
    creates = [s for s in statements if s.startswith("CREATE CONTACT")]
    assert len(creates) == 2 and all(env.aws.alert_topics[t] in " ".join(creates) for t in env.aws.alert_topics)
    alters = [s for s in statements if s.startswith("ALTER TABLE")]
    assert len(alters) == len(env.warehouse_tables())
    for table, sql in zip(env.warehouse_tables(), alters, strict=True):
        assert f".{table.curated_name} SET CONTACT STEWARD = " in sql
        team = "DEVOPS" if env.source(table.source).owner == "@finsight/devops" else "DATA_ENGINEERING"
        assert f"STEWARD = {env.snowflake.database}.OPS.{team}_ONCALL" in sql
