"""The local moto server, with SNS actions authorized against their topic (as AWS does), not against "*".

moto 5.2 checks an action against a resource only where its response class names one (`_determine_resource`: S3,
SQS, STS, IAM); every other service is checked against "*", so a statement scoped to a topic ARN never matches and a
statement on "*" lets a role publish anywhere. Naming the request's TopicArn here makes `sns:Publish` on one topic
(the alert publisher's grant, finsight.iam_policy) refuse every other topic. Requests without a TopicArn
(CreateTopic, ListTopics) stay checked against "*".

Run as `python -m finsight.local.moto_server <moto.server arguments>` (finsight.local.stack does).
"""

from __future__ import annotations

import sys
from typing import Any

from moto.sns.responses import SNSResponse


def _topic_resource(self: Any) -> str:
    try:
        topic = self._get_param("TopicArn")
    except (AttributeError, KeyError, TypeError):
        topic = None
    return topic if isinstance(topic, str) and topic else "*"


def install() -> None:
    SNSResponse._determine_resource = _topic_resource  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    install()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
