"""The quarantine Lambda: what the local pipe player does for a file a pipe cannot load, in AWS.

Snowpipe skips such a file and publishes an INGEST_FAILED_FILE notification through the pipes' ERROR_INTEGRATION
to the data-engineering alert topic (so on-call is alerted by Snowflake itself). This function is subscribed to
that topic (filtered to those notifications) and runs `finsight.quarantine.handler`: it moves each file to
s3://<raw bucket>/quarantine/<original key> under the raw KMS key and writes one JSON record per file under
<raw prefix>/_load_errors/, which the LOAD_ERRORS pipe copies into OPS.LOAD_ERRORS.

The code is finsight/quarantine.py alone (stdlib + the runtime's boto3), zipped deterministically at synth, so the
deployed function and the local pipe player run the same move. Failures (a copy that cannot be verified, a
malformed notification) fail the invocation: Lambda retries the SNS event, then parks it in the DLQ (alarmed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cdktn import AssetType, TerraformAsset
from cdktn_provider_aws.iam_role import IamRole
from cdktn_provider_aws.iam_role_policy import IamRolePolicy
from cdktn_provider_aws.kms_key import KmsKey
from cdktn_provider_aws.lambda_function import (
    LambdaFunction,
    LambdaFunctionDeadLetterConfig,
    LambdaFunctionEnvironment,
    LambdaFunctionTracingConfig,
)
from cdktn_provider_aws.lambda_permission import LambdaPermission
from cdktn_provider_aws.sns_topic import SnsTopic
from cdktn_provider_aws.sns_topic_subscription import SnsTopicSubscription
from cdktn_provider_aws.sqs_queue import SqsQueue
from constructs import Construct

from finsight import quarantine
from finsight.iam_policy import lambda_runtime_statements, quarantine_handler_statements
from finsight_infra.ingestion import DLQ_RETENTION_SECONDS
from finsight_infra.logs import log_group
from finsight_infra.naming import Names
from finsight_infra.observability import metric_alarm
from finsight_infra.policy import assume_role, document, service_principal

RUNTIME = "python3.12"
HANDLER = "finsight.quarantine.handler"
TIMEOUT_SECONDS = 120  # a few copies of bounded-size Parquet parts
MEMORY_MB = 256
# Failed files are rare; two concurrent moves keep a burst from hammering S3/KMS and leave account concurrency free.
RESERVED_CONCURRENCY = 2
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)  # fixed entry times: the same code gives the same zip, so no spurious redeploy


@dataclass(frozen=True)
class Quarantine:
    function: LambdaFunction
    role: IamRole
    dlq: SqsQueue


def _package() -> tuple[str, str]:
    """finsight/__init__.py (empty) + finsight/quarantine.py in a reproducible zip; returns (path, base64 sha256)."""
    out = Path(tempfile.mkdtemp(prefix="finsight-quarantine-")) / "quarantine.zip"
    source = Path(quarantine.__file__).read_bytes()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in (("finsight/__init__.py", b""), ("finsight/quarantine.py", source)):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    return str(out), base64.b64encode(hashlib.sha256(out.read_bytes()).digest()).decode()


def policy_statements(names: Names, data_key_arn: str, dlq_arn: str, log_group_arn: str) -> list[dict]:
    """Least privilege: the handler's statements (finsight.iam_policy, the ones the local move acts under) plus
    the Lambda runtime's own: its log group and its DLQ."""
    return [
        *quarantine_handler_statements(names.env, data_key_arn),
        *lambda_runtime_statements(log_group_arn, dlq_arn),
    ]


def build_quarantine(
    scope: Construct, names: Names, data_key: KmsKey, ops_key: KmsKey, alerts_topic: SnsTopic
) -> Quarantine:
    # the DLQ holds SNS events naming raw object keys: the raw key's trust zone (as the S3 event queues)
    dlq = SqsQueue(
        scope,
        "quarantine-dlq",
        name=names.quarantine_dlq,
        kms_master_key_id=data_key.arn,
        message_retention_seconds=DLQ_RETENTION_SECONDS,
        tags=names.tags,
    )
    logs = log_group(scope, "quarantine-logs", names.quarantine_log_group, ops_key, names)
    role = IamRole(
        scope,
        "quarantine-role",
        name=names.quarantine_role,
        assume_role_policy=assume_role(service_principal("lambda.amazonaws.com")),
        tags=names.tags,
    )
    policy = IamRolePolicy(
        scope,
        "quarantine-role-policy",
        name=names.quarantine_role,
        role=role.id,
        policy=document(*policy_statements(names, data_key.arn, dlq.arn, logs.arn)),
    )
    code_path, code_hash = _package()
    code = TerraformAsset(scope, "quarantine-code", path=code_path, type=AssetType.FILE)
    function = LambdaFunction(
        scope,
        "quarantine-function",
        function_name=names.quarantine_function,
        description="Moves files Snowpipe could not load to the quarantine prefix and records them",
        role=role.arn,
        runtime=RUNTIME,
        handler=HANDLER,
        filename=code.path,
        source_code_hash=code_hash,
        timeout=TIMEOUT_SECONDS,
        memory_size=MEMORY_MB,
        reserved_concurrent_executions=RESERVED_CONCURRENCY,
        dead_letter_config=LambdaFunctionDeadLetterConfig(target_arn=dlq.arn),
        tracing_config=LambdaFunctionTracingConfig(mode="PassThrough"),
        kms_key_arn=data_key.arn,  # its environment names the bucket and key: encrypted with the raw key
        environment=LambdaFunctionEnvironment(
            variables={
                quarantine.ENV_BUCKET: names.raw_bucket,
                quarantine.ENV_KMS_KEY: data_key.arn,  # the raw bucket policy admits only puts naming this key
                quarantine.ENV_QUARANTINE_PREFIX: names.quarantine_prefix,
                quarantine.ENV_RECORDS_PREFIX: names.load_errors_records_prefix,
            }
        ),
        depends_on=[logs, policy],
        tags=names.tags,
    )
    LambdaPermission(
        scope,
        "quarantine-invoked-by-alerts",
        statement_id="SnowpipeErrorNotifications",
        action="lambda:InvokeFunction",
        function_name=function.function_name,
        principal="sns.amazonaws.com",
        source_arn=alerts_topic.arn,
    )
    SnsTopicSubscription(
        scope,
        "quarantine-subscription",
        topic_arn=alerts_topic.arn,
        protocol="lambda",
        endpoint=function.arn,
        # the topic also carries alarms and task errors: only Snowpipe's failed-file notifications invoke it
        filter_policy_scope="MessageBody",
        filter_policy=json.dumps({"messageType": [quarantine.FAILED_FILE]}),
    )
    metric_alarm(
        scope,
        "quarantine-dlq-depth",
        names,
        alerts_topic,
        "Snowpipe error notifications the quarantine Lambda could not handle are in its DLQ",
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        {"QueueName": dlq.name},
        1,
    )
    return Quarantine(function=function, role=role, dlq=dlq)
