"""The AWS stack of one environment: wiring only; each concern lives in its own module.

It reads nothing from the Snowflake stack's state: the identities Snowflake generates for its integrations come
from config (`governance.identities`, recorded once after the first Snowflake apply). Until they are recorded,
no role or policy trusts Snowflake, so on a fresh account both stacks plan and apply in any order.
"""

from __future__ import annotations

from cdktn import TerraformOutput, TerraformStack
from cdktn_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from finsight_infra.budgets import build_budget
from finsight_infra.compute import build_compute
from finsight_infra.iam import snowflake_alerts_role, snowflake_archive_role, snowflake_storage_role
from finsight_infra.ingestion import build_ingestion
from finsight_infra.kms import build_keys
from finsight_infra.naming import Names
from finsight_infra.network import build_network
from finsight_infra.observability import build_alarms, build_alert_topics
from finsight_infra.quarantine import build_quarantine
from finsight_infra.secrets import build_secrets
from finsight_infra.state import use_remote_state
from finsight_infra.storage import build_storage


class AwsStack(TerraformStack):
    def __init__(self, scope: Construct, names: Names) -> None:
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
        identities = names.sf_identities
        snowflake_user = identities.aws_iam_user_arn if identities else None
        ingestion = build_ingestion(self, names, storage.raw, keys.data, snowflake_user)
        build_secrets(self, names, keys.secrets)
        compute = build_compute(self, names, keys, network)
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
        build_budget(self, names, alerts.topics["devops"])  # AWS Budgets -> DevOps topic (budget.aws_monthly_usd)
        # files Snowpipe could not load: its error notifications reach the data-engineering topic
        build_quarantine(self, names, keys.data, keys.ops, alerts.topics["data_engineering"])
        if identities is not None:
            snowflake_storage_role(self, names, keys.data, identities.aws_iam_user_arn)
            snowflake_archive_role(self, names, keys.data, storage.archive.arn, identities.aws_iam_user_arn)
            snowflake_alerts_role(
                self,
                names,
                keys.ops,
                alerts.topics["data_engineering"].arn,
                identities.aws_iam_user_arn,  # one IAM user per Snowflake account serves every integration
                identities.sns_external_id,
            )
        TerraformOutput(self, "raw_bucket", value=storage.raw.bucket)
        TerraformOutput(self, "raw_landed_topic_arn", value=ingestion.topic.arn)  # AWS_SNS_TOPIC of the pipes
        TerraformOutput(self, "deployed_connector_image", value=compute.image.string_value)
