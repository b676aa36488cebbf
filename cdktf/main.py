"""Synthesize the FinSight infrastructure: for each environment an AWS stack and a Snowflake stack.

    python cdktf/main.py [--env dev] [--outdir cdktf/cdktf.out]

Output: <outdir>/stacks/finsight-<env>-{aws,snowflake}/cdk.tf.json (scan it with checkov; never applied here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent):  # finsight_infra (next to this file) and the finsight package (repo root)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from cdktn import App  # noqa: E402
from finsight_infra.aws_stack import AwsStack  # noqa: E402
from finsight_infra.naming import Names  # noqa: E402
from finsight_infra.snowflake_stack import SnowflakeStack  # noqa: E402
from finsight_infra.state import TARGET_VERSIONS  # noqa: E402

from finsight.config import ENVIRONMENTS, load_environment  # noqa: E402

# `local` is the embedded stack (moto, fakesnow): it has no cloud infrastructure.
INFRA_ENVIRONMENTS = tuple(e for e in ENVIRONMENTS if e != "local")
DEFAULT_OUTDIR = HERE / "cdktf.out"


def build_app(envs: tuple[str, ...] = INFRA_ENVIRONMENTS, outdir: Path = DEFAULT_OUTDIR) -> App:
    # S3-native state locking (use_lockfile) needs Terraform/OpenTofu >= 1.10: declare it so synth validates.
    app = App(outdir=str(outdir), context={"targetVersions": TARGET_VERSIONS})
    for env in envs:
        names = Names(load_environment(env))
        # Independent stacks: no cross-stack references, so each plans on its own (see aws_stack.py).
        SnowflakeStack(app, names)
        AwsStack(app, names)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=INFRA_ENVIRONMENTS, action="append", help="repeatable; default: all")
    parser.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR)
    args = parser.parse_args(argv)
    build_app(tuple(args.env or INFRA_ENVIRONMENTS), args.outdir).synth()


if __name__ == "__main__":
    main()
