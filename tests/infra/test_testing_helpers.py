"""The same stacks through cdktn's own Testing helpers (in-process synth of one environment).

`cdktn.Testing` stays qualified: imported bare, pytest would try to collect it as a test class.
"""

from __future__ import annotations

import cdktn
import pytest
from cdktn_provider_aws.kms_alias import KmsAlias
from cdktn_provider_aws.s3_bucket import S3Bucket
from cdktn_provider_snowflake.warehouse import Warehouse
from finsight_infra.aws_stack import AwsStack
from finsight_infra.naming import Names
from finsight_infra.snowflake_stack import SnowflakeStack
from finsight_infra.state import TARGET_VERSIONS

from finsight.config import Environment, load_environment


@pytest.fixture(scope="module")
def dev() -> tuple[Environment, str, str]:
    env = load_environment("dev")
    names = Names(env)
    app = cdktn.Testing.app(context={"targetVersions": TARGET_VERSIONS})
    snowflake = SnowflakeStack(app, names)
    aws = AwsStack(app, names)
    return env, cdktn.Testing.synth(aws, run_validations=True), cdktn.Testing.synth(snowflake, run_validations=True)


def test_aws_resources_with_properties(dev: tuple[Environment, str, str]) -> None:
    env, aws, _ = dev
    assert cdktn.Testing.to_have_resource_with_properties(aws, S3Bucket.TF_RESOURCE_TYPE, {"bucket": env.aws.s3.bucket})
    assert cdktn.Testing.to_have_resource_with_properties(
        aws, KmsAlias.TF_RESOURCE_TYPE, {"name": env.aws.s3.kms_key_alias}
    )
    assert not cdktn.Testing.to_have_resource_with_properties(
        aws, S3Bucket.TF_RESOURCE_TYPE, {"bucket": "not-configured"}
    )


def test_snowflake_warehouses_with_properties(dev: tuple[Environment, str, str]) -> None:
    env, _, snowflake = dev
    for wh in env.snowflake.warehouses.values():
        assert cdktn.Testing.to_have_resource_with_properties(
            snowflake, Warehouse.TF_RESOURCE_TYPE, {"warehouse_size": wh.size, "auto_suspend": wh.auto_suspend_seconds}
        )
