"""The AWS stack of every environment, read from the real synthesized JSON; expected values come from config."""

from __future__ import annotations

import json

from finsight import catalog
from tests.infra.conftest import Synth
from tests.infra.helpers import as_list, ref, referenced_id, statements

ROOT_USERS = {"0", "root"}


def _raw_bucket_id(s: Synth) -> str:
    (cid,) = [cid for cid, b in s.resources("aws", "aws_s3_bucket").items() if b["bucket"] == s.env.aws.s3.bucket]
    return cid


def _for_bucket(s: Synth, tf_type: str, bucket_cid: str) -> dict:
    (res,) = [r for r in s.resources("aws", tf_type).values() if r["bucket"] == ref("aws_s3_bucket", bucket_cid, "id")]
    return res


def _key_by_alias(s: Synth, alias: str) -> str:
    (a,) = [a for a in s.resources("aws", "aws_kms_alias").values() if a["name"] == alias]
    return referenced_id(a["target_key_id"], "aws_kms_key")


def test_every_environment_has_an_aws_and_a_snowflake_stack(synth_out: dict[str, Synth]) -> None:
    assert set(synth_out) == {"dev", "staging", "prod"}
    for s in synth_out.values():
        assert s.aws["resource"] and s.snowflake["resource"]


def test_raw_bucket_encrypted_with_cmk(stack: Synth) -> None:
    bucket = _raw_bucket_id(stack)
    key_id = _key_by_alias(stack, stack.env.aws.s3.kms_key_alias)
    (rule,) = as_list(_for_bucket(stack, "aws_s3_bucket_server_side_encryption_configuration", bucket)["rule"])
    default = rule["apply_server_side_encryption_by_default"]
    assert default["sse_algorithm"] == "aws:kms"
    assert default["kms_master_key_id"] == ref("aws_kms_key", key_id, "arn")
    for key in stack.resources("aws", "aws_kms_key").values():
        assert key["enable_key_rotation"] is True
        assert "policy" in key


def test_raw_bucket_blocks_public_access_and_versions(stack: Synth) -> None:
    bucket = _raw_bucket_id(stack)
    pab = _for_bucket(stack, "aws_s3_bucket_public_access_block", bucket)
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    assert all(pab[f] is True for f in flags)
    versioning = _for_bucket(stack, "aws_s3_bucket_versioning", bucket)["versioning_configuration"]
    assert versioning["status"] == "Enabled"
    logging = _for_bucket(stack, "aws_s3_bucket_logging", bucket)
    assert logging["target_bucket"] != ref("aws_s3_bucket", bucket, "id")  # logs go to a separate bucket


def test_raw_bucket_policy_denies_insecure_transport_and_foreign_encryption(stack: Synth) -> None:
    bucket = _raw_bucket_id(stack)
    sts = statements(_for_bucket(stack, "aws_s3_bucket_policy", bucket)["policy"])
    denies = [st for st in sts if st["Effect"] == "Deny"]
    assert any(st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for st in denies)
    key_arn = ref("aws_kms_key", _key_by_alias(stack, stack.env.aws.s3.kms_key_alias), "arn")
    conditions = [json.dumps(st["Condition"]) for st in denies if st["Action"] == ["s3:PutObject"]]
    assert any('"s3:x-amz-server-side-encryption": "aws:kms"' in c for c in conditions)
    assert any(key_arn in c for c in conditions)


def test_raw_lifecycle_follows_config_retention(stack: Synth) -> None:
    retention = stack.env.retention
    lifecycle = _for_bucket(stack, "aws_s3_bucket_lifecycle_configuration", _raw_bucket_id(stack))
    (raw_rule,) = [r for r in lifecycle["rule"] if r["filter"][0].get("prefix") == f"{stack.env.aws.s3.raw_prefix}/"]
    assert raw_rule["status"] == "Enabled"
    assert raw_rule["transition"] == [
        {"days": retention.raw_infrequent_access_after_days, "storage_class": "STANDARD_IA"}
    ]
    assert raw_rule["expiration"][0]["days"] == retention.raw_days
    assert raw_rule["noncurrent_version_expiration"][0]["noncurrent_days"] > 0
    assert raw_rule["abort_incomplete_multipart_upload"][0]["days_after_initiation"] > 0


def test_raw_prefix_events_reach_an_encrypted_queue_with_dlq(stack: Synth) -> None:
    bucket = _raw_bucket_id(stack)
    notification = _for_bucket(stack, "aws_s3_bucket_notification", bucket)
    (topic_cfg,) = notification["topic"]
    assert topic_cfg["filter_prefix"] == f"{stack.env.aws.s3.raw_prefix}/"
    assert topic_cfg["events"] == ["s3:ObjectCreated:*"]
    topic_id = referenced_id(topic_cfg["topic_arn"], "aws_sns_topic")
    (sub,) = [
        s
        for s in stack.resources("aws", "aws_sns_topic_subscription").values()
        if s["topic_arn"] == ref("aws_sns_topic", topic_id, "arn")
    ]
    queue = stack.resources("aws", "aws_sqs_queue")[referenced_id(sub["endpoint"], "aws_sqs_queue")]
    assert queue["kms_master_key_id"].startswith("${aws_kms_key.")
    dlq_ref = json.loads(queue["redrive_policy"])["deadLetterTargetArn"]
    assert stack.resources("aws", "aws_sqs_queue")[referenced_id(dlq_ref, "aws_sqs_queue")]["kms_master_key_id"]
    for q in stack.resources("aws", "aws_sqs_queue").values():
        assert q["kms_master_key_id"].startswith("${aws_kms_key.")


def _containers(s: Synth) -> dict[str, tuple[dict, dict]]:
    out = {}
    for td in s.resources("aws", "aws_ecs_task_definition").values():
        (container,) = json.loads(td["container_definitions"])
        out[td["family"]] = (td, container)
    return out


def test_one_task_definition_per_source(stack: Synth) -> None:
    sources = {**stack.env.postgres_sources, **stack.env.api_sources}
    containers = _containers(stack)
    assert set(containers) == {stack.names.task_family(src) for src in sources}
    for src in stack.names.sources:
        td, container = containers[stack.names.task_family(src.name)]
        assert td["requires_compatibilities"] == ["FARGATE"]
        assert td["cpu"] == str(stack.env.connectors.cpu)
        assert td["memory"] == str(stack.env.connectors.memory_mb)
        assert td["task_role_arn"] != td["execution_role_arn"]
        assert container["readonlyRootFilesystem"] is True
        assert container["user"].split(":")[0] not in ROOT_USERS
        assert container["privileged"] is False
        # the connector reads its secrets itself (task role); nothing is injected into its environment
        assert "secrets" not in container
        assert container["image"] == "${var.connector_image}"
        log = container["logConfiguration"]
        assert log["logDriver"] == "awslogs"
        assert log["options"]["awslogs-group"].startswith("${aws_cloudwatch_log_group.")
    # the PAN source of the catalog really is detected from column metadata
    assert any(src.needs_pan_key for src in stack.names.sources)


def test_one_task_role_per_source_scoped_to_its_prefix(stack: Synth) -> None:
    roles = stack.resources("aws", "aws_iam_role")
    policies = {p["role"]: p["policy"] for p in stack.resources("aws", "aws_iam_role_policy").values()}
    bucket = stack.env.aws.s3.bucket
    for src in stack.names.sources:
        (cid,) = [cid for cid, r in roles.items() if r["name"] == stack.names.task_role(src.name)]
        sts = statements(policies[ref("aws_iam_role", cid, "id")])
        s3 = [st for st in sts if any(a.startswith("s3:") for a in st["Action"])]
        assert s3 == [
            {
                "Sid": "WriteOwnRawPrefix",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
                "Resource": [f"arn:aws:s3:::{bucket}/{stack.env.aws.s3.raw_prefix}/{src.name}/*"],
            },
            {
                "Sid": "ReadWriteOwnState",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/{catalog.STATE_PREFIX}/{src.name}/*"],
            },
            {
                # its own state prefix only: backfill checkpoints, and a missing watermark answers 404, not 403
                "Sid": "ListOwnState",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
                "Condition": {"StringLike": {"s3:prefix": [f"{catalog.STATE_PREFIX}/{src.name}/*"]}},
            },
        ]
        (read,) = [st for st in sts if "secretsmanager:GetSecretValue" in st["Action"]]
        expected = {stack.names.secret_arn_pattern(src.secret)}
        if src.needs_pan_key:
            expected.add(stack.names.secret_arn_pattern(stack.env.secrets.pan_tokenization_key))
        assert set(read["Resource"]) == expected
        kms = [st for st in sts if "kms:GenerateDataKey" in st["Action"]]
        assert kms and all(st["Resource"] != ["*"] for st in kms)
        for st in sts:  # no wildcard resources anywhere in a task role
            assert "*" not in st["Resource"]


def test_no_per_environment_image_repository(stack: Synth) -> None:
    # one release repository (config `release:`), one digest promoted everywhere: no env builds its own image
    assert "aws_ecr_repository" not in stack.aws["resource"]


def test_log_groups_are_kms_encrypted_with_retention(stack: Synth) -> None:
    groups = stack.resources("aws", "aws_cloudwatch_log_group")
    assert {stack.names.log_group(s.name) for s in stack.names.sources} <= {g["name"] for g in groups.values()}
    for group in groups.values():
        assert group["kms_key_id"].startswith("${aws_kms_key.")
        assert group["retention_in_days"] >= 365


def test_cluster_has_container_insights(stack: Synth) -> None:
    (cluster,) = stack.resources("aws", "aws_ecs_cluster").values()
    assert {"name": "containerInsights", "value": "enabled"} in cluster["setting"]


def test_schedules_run_each_source_task(stack: Synth) -> None:
    schedule = stack.env.schedule
    schedules = {s["name"]: s for s in stack.resources("aws", "aws_scheduler_schedule").values()}
    task_ids = {td["family"]: cid for cid, td in stack.resources("aws", "aws_ecs_task_definition").items()}
    security_groups = {
        "postgres": ref("aws_security_group", "sg-postgres-connectors", "id"),
        "api": ref("aws_security_group", "sg-api-connectors", "id"),
    }
    assert len(schedules) == 2 * len(stack.names.sources)
    for src in stack.names.sources:
        task_arn = ref("aws_ecs_task_definition", task_ids[stack.names.task_family(src.name)], "arn_without_revision")
        hourly = schedules[stack.names.schedule(src.name, "hourly")]
        expected_state = "ENABLED" if src.kind == "postgres" or stack.env.api_sources[src.name].enabled else "DISABLED"
        assert hourly["state"] == expected_state
        assert hourly["schedule_expression"] == f"cron({schedule.hourly_cron})"
        assert hourly["schedule_expression_timezone"] == schedule.timezone
        ecs = hourly["target"]["ecs_parameters"]
        assert ecs["task_definition_arn"] == task_arn
        assert ecs["network_configuration"]["security_groups"] == [security_groups[src.kind]]
        assert ecs["network_configuration"]["assign_public_ip"] is False
        backfill = schedules[stack.names.schedule(src.name, "backfill")]
        assert backfill["schedule_expression"] == f"cron({schedule.backfill_cron})"
        run_task = json.loads(backfill["target"]["input"])
        assert run_task["TaskDefinition"] == task_arn
        assert run_task["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"] == [security_groups[src.kind]]
        for s in (hourly, backfill):
            assert s["target"]["dead_letter_config"]["arn"].startswith("${aws_sqs_queue.")


def test_postgres_secrets_rotate_and_all_secrets_use_a_cmk(stack: Synth) -> None:
    secrets = stack.resources("aws", "aws_secretsmanager_secret")
    expected = {s.secret for s in stack.names.sources} | set(stack.env.secrets.model_dump().values())
    assert {s["name"] for s in secrets.values()} == expected
    for secret in secrets.values():
        assert secret["kms_key_id"].startswith("${aws_kms_key.")
    rotated = {
        secrets[referenced_id(r["secret_id"], "aws_secretsmanager_secret")]["name"]
        for r in stack.resources("aws", "aws_secretsmanager_secret_rotation").values()
    }
    assert rotated == {pg.connection.secret for pg in stack.env.postgres_sources.values() if pg.connection}
    # containers only: no secret value is ever part of the IaC
    assert "aws_secretsmanager_secret_version" not in stack.aws["resource"]


def test_alert_topics_one_per_team_and_alarms_route_to_them(stack: Synth) -> None:
    topics = {cid: t for cid, t in stack.resources("aws", "aws_sns_topic").items() if cid.startswith("alerts-")}
    assert {t["name"] for t in topics.values()} == set(stack.env.aws.alert_topics.values())
    assert len(topics) == 2
    for topic in stack.resources("aws", "aws_sns_topic").values():
        assert topic["kms_master_key_id"].startswith("${aws_kms_key.")
    alarms = stack.resources("aws", "aws_cloudwatch_metric_alarm").values()
    targets = {a for alarm in alarms for a in alarm["alarm_actions"]}
    assert targets == {ref("aws_sns_topic", cid, "arn") for cid in topics}
    metrics = {(a["namespace"], a["metric_name"]) for a in alarms}
    assert ("AWS/Events", "TriggeredRules") in metrics  # ECS task failures
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in metrics  # DLQ depth
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage") in metrics


def test_network_private_subnets_endpoints_and_one_nat(stack: Synth) -> None:
    subnets = stack.resources("aws", "aws_subnet").values()
    private = [s for s in subnets if "private" in s["tags"]["Name"]]
    assert len({s["availability_zone"] for s in private}) == 2
    assert all(s["map_public_ip_on_launch"] is False for s in subnets)
    assert len(stack.resources("aws", "aws_nat_gateway")) == stack.env.network.nat_gateways
    services = {e["service_name"].rsplit(".", 1)[-1] for e in stack.resources("aws", "aws_vpc_endpoint").values()}
    assert {"s3", "secretsmanager", "api", "dkr", "logs"} <= services
    for rule in stack.resources("aws", "aws_vpc_security_group_egress_rule").values():
        assert rule["ip_protocol"] == "tcp" and rule["from_port"] == rule["to_port"]  # no all-ports egress


def test_backend_is_s3_with_native_locking(stack: Synth) -> None:
    keys = set()
    for kind in ("aws", "snowflake"):
        terraform = getattr(stack, kind)["terraform"]
        s3 = terraform["backend"]["s3"]
        assert s3["use_lockfile"] is True and s3["encrypt"] is True
        assert s3["bucket"] == stack.names.state_bucket
        keys.add(s3["key"])
    assert len(keys) == 2


def test_connector_failures_publish_the_connector_alert_to_data_engineering(stack: Synth) -> None:
    """EventBridge ECS task-state rule -> the data-engineering topic, as the alert `finsight alerts` lists."""
    topics = {t["name"]: cid for cid, t in stack.resources("aws", "aws_sns_topic").items()}
    data_eng = ref("aws_sns_topic", topics[stack.env.aws.alert_topics["data_engineering"]], "arn")
    targets = [t for t in stack.resources("aws", "aws_cloudwatch_event_target").values() if t["arn"] == data_eng]
    assert len(targets) == 1
    template = targets[0]["input_transformer"]["input_template"]
    filled = template.replace("<group>", "family:x").replace("<task>", "t").replace("<family>", "f")
    alert = json.loads(filled.replace("<reason>", "Essential container in task exited"))
    assert alert["alert_type"] == "connector_failed" and alert["team"] == "data_engineering"
    assert alert["runbook"] == "docs/runbooks/source-db-unreachable.md" and alert["env"] == stack.env.name
    policies = [p for p in stack.resources("aws", "aws_sns_topic_policy").values() if p["arn"] == data_eng]
    assert policies and "events.amazonaws.com" in policies[0]["policy"]
