"""Object-created events on the raw prefix: S3 -> SNS topic -> (Snowpipe's queue, our pipeline-events queue).

Why a topic in the middle: S3 allows only one notification destination per overlapping prefix, and two consumers
need these events. Snowpipe auto-ingest subscribes *Snowflake's own* SQS queue to this topic (the pipe is created by
migrations/ with AWS_SNS_TOPIC = this topic's ARN; the topic policy lets the Snowflake account's IAM user
subscribe). Our own queue (KMS, with a DLQ) feeds the batch ledger / monitoring: it proves every landed file was
announced, and its depth and age are alarmed in observability.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktn_provider_aws.kms_key import KmsKey
from cdktn_provider_aws.s3_bucket import S3Bucket
from cdktn_provider_aws.s3_bucket_notification import S3BucketNotification, S3BucketNotificationTopic
from cdktn_provider_aws.sns_topic import SnsTopic
from cdktn_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktn_provider_aws.sns_topic_subscription import SnsTopicSubscription
from cdktn_provider_aws.sqs_queue import SqsQueue
from cdktn_provider_aws.sqs_queue_policy import SqsQueuePolicy
from constructs import Construct

from finsight_infra.naming import Names
from finsight_infra.policy import DENY_INSECURE_TRANSPORT, allow, aws_principal, deny, document, service_principal

MAX_RECEIVES = 5
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # SQS maximum: two weeks to investigate a poison event
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600


@dataclass(frozen=True)
class Ingestion:
    topic: SnsTopic
    queue: SqsQueue
    dlq: SqsQueue


def encrypted_queue_with_dlq(
    scope: Construct, cid: str, name: str, dlq_name: str, key: KmsKey, names: Names
) -> tuple[SqsQueue, SqsQueue]:
    dlq = SqsQueue(
        scope,
        f"{cid}-dlq",
        name=dlq_name,
        kms_master_key_id=key.arn,
        message_retention_seconds=DLQ_RETENTION_SECONDS,
        tags=names.tags,
    )
    queue = SqsQueue(
        scope,
        cid,
        name=name,
        kms_master_key_id=key.arn,
        message_retention_seconds=QUEUE_RETENTION_SECONDS,
        redrive_policy=json.dumps({"deadLetterTargetArn": dlq.arn, "maxReceiveCount": MAX_RECEIVES}),
        tags=names.tags,
    )
    return queue, dlq


def build_ingestion(
    scope: Construct, names: Names, raw: S3Bucket, data_key: KmsKey, snowflake_iam_user_arn: str | None
) -> Ingestion:
    topic = SnsTopic(scope, "raw-landed", name=names.raw_events_topic, kms_master_key_id=data_key.arn, tags=names.tags)
    topic_policy = SnsTopicPolicy(
        scope,
        "raw-landed-policy",
        arn=topic.arn,
        policy=document(
            allow(
                "S3Publishes",
                "sns:Publish",
                topic.arn,
                {"ArnLike": {"aws:SourceArn": raw.arn}, "StringEquals": {"aws:SourceAccount": names.account_id}},
                service_principal("s3.amazonaws.com"),
            ),
            # Snowpipe auto-ingest: Snowflake subscribes its own SQS queue to this topic (once its IAM user is known).
            *(
                [allow("SnowpipeSubscribes", "sns:Subscribe", topic.arn, None, aws_principal(snowflake_iam_user_arn))]
                if snowflake_iam_user_arn
                else []
            ),
            deny("DenyInsecureTransport", "sns:Publish", topic.arn, DENY_INSECURE_TRANSPORT, {"AWS": "*"}),
        ),
    )

    queue, dlq = encrypted_queue_with_dlq(
        scope, "pipeline-events", names.pipeline_events_queue, names.pipeline_events_dlq, data_key, names
    )
    SqsQueuePolicy(
        scope,
        "pipeline-events-policy",
        queue_url=queue.url,
        policy=document(
            allow(
                "TopicDelivers",
                "sqs:SendMessage",
                queue.arn,
                {"ArnEquals": {"aws:SourceArn": topic.arn}},
                service_principal("sns.amazonaws.com"),
            ),
            deny("DenyInsecureTransport", "sqs:*", queue.arn, DENY_INSECURE_TRANSPORT, {"AWS": "*"}),
        ),
    )
    SnsTopicSubscription(
        scope,
        "pipeline-events-subscription",
        topic_arn=topic.arn,
        protocol="sqs",
        endpoint=queue.arn,
        raw_message_delivery=True,  # consumers read the S3 event JSON directly, as Snowpipe does
    )
    S3BucketNotification(
        scope,
        "raw-notification",
        bucket=raw.id,
        topic=[
            S3BucketNotificationTopic(
                topic_arn=topic.arn, events=["s3:ObjectCreated:*"], filter_prefix=f"{names.raw_prefix}/"
            )
        ],
        depends_on=[topic_policy],  # S3 validates the destination's policy when the notification is created
    )
    return Ingestion(topic=topic, queue=queue, dlq=dlq)
