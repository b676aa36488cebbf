"""The Snowflake stack of one environment: three provider aliases (one profile per admin role; the job maps each
profile to a role) and the account objects."""

from __future__ import annotations

from cdktn import TerraformOutput, TerraformStack
from cdktn_provider_snowflake.provider import SnowflakeProvider
from constructs import Construct

from finsight import tfvars
from finsight_infra.naming import Names
from finsight_infra.snowflake_account import Providers, SnowflakeAccount, build_snowflake_account
from finsight_infra.snowflake_preview import required_features, used_types
from finsight_infra.state import use_remote_state


class SnowflakeStack(TerraformStack):
    account: SnowflakeAccount

    def __init__(self, scope: Construct, names: Names) -> None:
        super().__init__(scope, names.stack_id("snowflake"))
        use_remote_state(self, names, "snowflake")
        # config.snowflake.account is the `<organization>-<account>` identifier. Key-pair (JWT) auth: the user and
        # its private key come from SNOWFLAKE_USER / SNOWFLAKE_PRIVATE_KEY in the job's environment (GitHub
        # environment variable + secret), never from code or state; the role from the profile the job writes
        # (finsight.tfvars.snowflake_profiles): the read-only plan role in plan jobs, the admin roles in apply.
        organization, _, account = names.env.snowflake.account.partition("-")

        def provider(profile: str) -> SnowflakeProvider:
            return SnowflakeProvider(
                self,
                f"snowflake-{profile}",
                alias=profile,
                organization_name=organization,
                account_name=account,
                profile=profile,
                authenticator="SNOWFLAKE_JWT",
            )

        providers = Providers(**{profile: provider(profile) for profile in tfvars.SNOWFLAKE_PROVIDER_PROFILES})
        self.account = build_snowflake_account(self, names, providers)
        # The provider refuses a preview resource unless its feature is enabled: enable exactly those this stack uses,
        # as the pinned provider version classifies them (finsight_infra/snowflake_preview.py).
        features = required_features(used_types(self))
        for p in (providers.sysadmin, providers.securityadmin, providers.accountadmin):
            p.preview_features_enabled = features
        for logical, wh in self.account.warehouses.items():
            TerraformOutput(self, f"warehouse_{logical}", value=wh.name)
        # What governance.identities in config records after the first apply (the AWS stack then trusts them).
        TerraformOutput(
            self,
            "storage_aws_iam_user_arn",
            value=self.account.storage_integration.describe_output.get(0).iam_user_arn,
        )
        TerraformOutput(self, "sns_aws_external_id", value=self.account.notification_integration.aws_sns_external_id)
