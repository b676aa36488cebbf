"""The AWS stack of one environment: wiring only; each concern lives in its own module."""

from __future__ import annotations

from cdktn import TerraformOutput, TerraformStack
from cdktn_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from finsight_infra.compute import build_compute
from finsight_infra.iam import snowflake_alerts_role, snowflake_storage_role
from finsight_infra.ingestion import build_ingestion
from finsight_infra.kms import build_keys
from finsight_infra.naming import Names
from finsight_infra.network import build_network
from finsight_infra.observability import build_alarms, build_alert_topics
from finsight_infra.secrets import build_secrets
from finsight_infra.snowflake_account import SnowflakeAccount
from finsight_infra.state import use_remote_state
from finsight_infra.storage import build_storage


class AwsStack(TerraformStack):
    def __init__(self, scope: Construct, names: Names, snowflake: SnowflakeAccount) -> None:
        super().__init__(scope, names.stack_id("aws"))
        use_remote_state(self, names, "aws")
        AwsProvider(
            self,
            "aws",
            region=names.region,
            allowed_account_ids=[names.account_id],  # never apply dev config to the prod account
            default_tags=[AwsProviderDefaultTags(tags=names.tags)],
        )
        keys = build_keys(self, names)
        network = build_network(self, names, keys.ops)
        storage = build_storage(self, names, keys.data)
        # Snowflake's IAM user and external ids come from the Snowflake stack (cross-stack references): the
        # Snowflake side only needs our role ARNs, which naming derives, so there is no dependency cycle.
        ingestion = build_ingestion(self, names, storage.raw, keys.data, snowflake.storage_iam_user_arn)
        secrets = build_secrets(self, names, keys.secrets)
        compute = build_compute(self, names, keys, network, secrets)
        alerts = build_alert_topics(self, names, keys.ops)
        build_alarms(
            self,
            names,
            alerts,
            keys.ops,
            compute.cluster,
            ingestion.queue,
            ingestion.dlq,
            compute.scheduler_dlq,
            names.schedule_group,
        )
        snowflake_storage_role(self, names, keys.data, snowflake.storage_iam_user_arn)
        snowflake_alerts_role(
            self,
            names,
            keys.ops,
            alerts.topics["data_engineering"].arn,
            snowflake.sns_iam_user_arn,
            snowflake.sns_external_id,
        )
        TerraformOutput(self, "raw_bucket", value=storage.raw.bucket)
        TerraformOutput(self, "raw_landed_topic_arn", value=ingestion.topic.arn)  # AWS_SNS_TOPIC of the pipes
        TerraformOutput(self, "connector_repository_url", value=compute.repository.repository_url)
