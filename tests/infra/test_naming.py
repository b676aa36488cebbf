"""Names come from config: no source, table, bucket, secret or topic name is typed in the IaC code."""

from __future__ import annotations

import re
from pathlib import Path

from finsight.config import load_environment, repo_root

STRING_LITERAL = re.compile(r"""(?<![A-Za-z0-9_])(?:"([^"\n]*)"|'([^'\n]*)')""")


def _config_names() -> set[str]:
    names: set[str] = set()
    for env_name in ("dev", "staging", "prod"):
        env = load_environment(env_name)
        names |= set(env.postgres_sources) | set(env.api_sources)
        names |= {t.name for t in env.tables()} | {t.raw_name for t in env.tables()}
        names |= {env.aws.s3.bucket, env.aws.s3.kms_key_alias, env.snowflake.database, env.snowflake.role}
        names |= {env.snowflake.user, *env.aws.alert_topics.values(), *env.secrets.model_dump().values()}
        names |= {pg.connection.secret for pg in env.postgres_sources.values() if pg.connection}
        names |= {api.secret for api in env.api_sources.values()}
    return names


def test_iac_code_types_no_configured_name() -> None:
    names = _config_names()
    offenders = []
    for path in sorted((repo_root() / "cdktf").rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for m in STRING_LITERAL.finditer(line):
                literal = m.group(1) if m.group(1) is not None else m.group(2)
                if literal in names:
                    offenders.append(f"{Path(path).name}:{lineno}: {literal!r}")
    assert not offenders, "names must come from finsight.config via naming.Names:\n" + "\n".join(offenders)
