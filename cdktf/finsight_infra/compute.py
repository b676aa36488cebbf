"""Connector runtime: one Fargate cluster, and per source (names from config) a log group, task + execution role,
task definition, an hourly schedule and a daily backfill schedule.

The image is the `connector_image` variable: the digest the build job pushed to the shared release repository
(config `release:`), promoted unchanged from dev to prod. No environment builds or stores its own image.
Task definitions carry no secrets: the connector reads its credentials and the PAN key itself from Secrets Manager
under its task role, so nothing secret sits in the container environment or in the task definition.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktn import TerraformVariable, TerraformVariableValidationConfig
from cdktn_provider_aws.ecs_cluster import (
    EcsCluster,
    EcsClusterConfiguration,
    EcsClusterConfigurationExecuteCommandConfiguration,
    EcsClusterConfigurationExecuteCommandConfigurationLogConfiguration,
    EcsClusterSetting,
)
from cdktn_provider_aws.ecs_task_definition import (
    EcsTaskDefinition,
    EcsTaskDefinitionRuntimePlatform,
    EcsTaskDefinitionVolume,
)
from cdktn_provider_aws.scheduler_schedule import (
    SchedulerSchedule,
    SchedulerScheduleFlexibleTimeWindow,
    SchedulerScheduleTarget,
    SchedulerScheduleTargetDeadLetterConfig,
    SchedulerScheduleTargetEcsParameters,
    SchedulerScheduleTargetEcsParametersNetworkConfiguration,
    SchedulerScheduleTargetRetryPolicy,
)
from cdktn_provider_aws.scheduler_schedule_group import SchedulerScheduleGroup
from cdktn_provider_aws.sqs_queue import SqsQueue
from constructs import Construct

from finsight import tfvars
from finsight.aws import DATA_KEY_ARN_VAR
from finsight_infra.iam import ConnectorRoles, connector_roles, scheduler_role
from finsight_infra.kms import Keys
from finsight_infra.logs import log_group
from finsight_infra.naming import Names, Source
from finsight_infra.network import Network

CONTAINER_USER = "10001:10001"  # non-root uid:gid baked into the connector image
SCRATCH_VOLUME = "scratch"  # the only writable path: Parquet staging before upload (root FS is read-only)
SCRATCH_PATH = "/tmp"  # noqa: S108 - a task-private ephemeral volume, not a shared host /tmp
SCHEDULE_RETRIES = 2
RUN_TASK_UNIVERSAL_TARGET = "arn:aws:scheduler:::aws-sdk:ecs:runTask"


@dataclass(frozen=True)
class Compute:
    cluster: EcsCluster
    image: TerraformVariable
    task_definitions: dict[str, EcsTaskDefinition]
    roles: dict[str, ConnectorRoles]
    schedules: dict[str, SchedulerSchedule]
    scheduler_dlq: SqsQueue


def _image(scope: Construct, names: Names) -> TerraformVariable:
    var = tfvars.variable("connector_image")
    pattern = tfvars.image_pattern(names.env).replace("\\", "\\\\")  # a backslash is an escape in HCL strings
    return TerraformVariable(
        scope,
        var.name,
        type="string",
        description=var.description,
        nullable=False,
        # a tag could be re-pointed; only a digest of the shared release repository is accepted
        validation=[
            TerraformVariableValidationConfig(
                condition=f'${{can(regex("{pattern}", var.{var.name}))}}',
                error_message=f"{var.name} must be {names.release.registry()}/{names.release.ecr_repository}"
                "@sha256:<digest> (the digest the build job pushed).",
            )
        ],
    )


def _cluster(scope: Construct, names: Names, keys: Keys) -> EcsCluster:
    exec_logs = log_group(scope, "ecs-exec-logs", names.platform_log_group("ecs-exec"), keys.ops, names)
    return EcsCluster(
        scope,
        "cluster",
        name=names.cluster,
        setting=[EcsClusterSetting(name="containerInsights", value="enabled")],
        # ECS Exec is not used by the batch tasks; if someone ever enables it, sessions are encrypted and logged.
        configuration=EcsClusterConfiguration(
            execute_command_configuration=EcsClusterConfigurationExecuteCommandConfiguration(
                kms_key_id=keys.ops.arn,
                logging="OVERRIDE",
                log_configuration=EcsClusterConfigurationExecuteCommandConfigurationLogConfiguration(
                    cloud_watch_encryption_enabled=True, cloud_watch_log_group_name=exec_logs.name
                ),
            )
        ),
        tags=names.tags,
    )


def _container(
    names: Names, src: Source, image: str, log_group_name: str, data_key_arn: str
) -> list[dict[str, object]]:
    return [
        {
            "name": names.container_name,
            "image": image,
            "essential": True,
            "user": CONTAINER_USER,
            "readonlyRootFilesystem": True,
            "privileged": False,
            "linuxParameters": {"initProcessEnabled": True, "capabilities": {"drop": ["ALL"]}},
            # The connector loads environments/<env>.yaml itself: only the coordinates travel here. No `secrets`:
            # credentials are read at run time through Secrets Manager under the task role (finsight.secrets).
            "environment": [
                {"name": "FINSIGHT_ENV", "value": names.env_name},
                {"name": "FINSIGHT_SOURCE", "value": src.name},
                # S3 writes name the data key by ARN, as the bucket policy pins it (no kms:DescribeKey at run time)
                {"name": DATA_KEY_ARN_VAR, "value": data_key_arn},
                {"name": "FINSIGHT_MODE", "value": "incremental"},
            ],
            "mountPoints": [{"sourceVolume": SCRATCH_VOLUME, "containerPath": SCRATCH_PATH, "readOnly": False}],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group_name,
                    "awslogs-region": names.region,
                    "awslogs-stream-prefix": names.container_name,
                },
            },
        }
    ]


def _task_definition(
    scope: Construct,
    names: Names,
    src: Source,
    image: str,
    roles: ConnectorRoles,
    log_group_name: str,
    data_key_arn: str,
) -> EcsTaskDefinition:
    runtime = names.env.connectors
    return EcsTaskDefinition(
        scope,
        f"task-{src.name}",
        family=names.task_family(src.name),
        requires_compatibilities=["FARGATE"],
        network_mode="awsvpc",
        cpu=str(runtime.cpu),
        memory=str(runtime.memory_mb),
        runtime_platform=EcsTaskDefinitionRuntimePlatform(operating_system_family="LINUX", cpu_architecture="X86_64"),
        execution_role_arn=roles.execution.arn,
        task_role_arn=roles.task.arn,
        volume=[EcsTaskDefinitionVolume(name=SCRATCH_VOLUME)],
        container_definitions=json.dumps(_container(names, src, image, log_group_name, data_key_arn)),
        tags=names.tags,
    )


def build_compute(scope: Construct, names: Names, keys: Keys, network: Network) -> Compute:
    image_var = _image(scope, names)
    cluster = _cluster(scope, names, keys)
    image = image_var.string_value

    task_definitions: dict[str, EcsTaskDefinition] = {}
    roles: dict[str, ConnectorRoles] = {}
    for src in names.sources:
        group = log_group(scope, f"logs-{src.name}", names.log_group(src.name), keys.ops, names)
        roles[src.name] = connector_roles(scope, names, src, keys, group)
        task_definitions[src.name] = _task_definition(
            scope, names, src, image, roles[src.name], group.name, keys.data.arn
        )

    dlq = SqsQueue(scope, "scheduler-dlq", name=names.scheduler_dlq, kms_master_key_id=keys.ops.arn, tags=names.tags)
    role = scheduler_role(
        scope,
        names,
        cluster.arn,
        # schedules name the family (latest ACTIVE revision); IAM may see either form
        [arn for td in task_definitions.values() for arn in (td.arn_without_revision, f"{td.arn_without_revision}:*")],
        [arn for r in roles.values() for arn in (r.task.arn, r.execution.arn)],
        dlq.arn,
        keys.ops,
    )
    group = SchedulerScheduleGroup(scope, "schedule-group", name=names.schedule_group, tags=names.tags)
    schedules: dict[str, SchedulerSchedule] = {}
    for src in names.sources:
        sg = network.postgres_connector_sg if src.kind == "postgres" else network.api_connector_sg
        td = task_definitions[src.name]
        common = {
            "group_name": group.name,
            "schedule_expression_timezone": names.env.schedule.timezone,
            "flexible_time_window": SchedulerScheduleFlexibleTimeWindow(mode="OFF"),
            "kms_key_arn": keys.ops.arn,
            # a source whose connector has not shipped would fail every hour and page for nothing
            "state": "ENABLED" if src.enabled else "DISABLED",
        }
        retry = SchedulerScheduleTargetRetryPolicy(
            maximum_retry_attempts=SCHEDULE_RETRIES,
            # a start later than the SLA is useless: the next hourly run picks the window up
            maximum_event_age_in_seconds=names.env.schedule.sla_minutes * 60,
        )
        dead_letter = SchedulerScheduleTargetDeadLetterConfig(arn=dlq.arn)
        schedules[f"{src.name}-hourly"] = SchedulerSchedule(
            scope,
            f"schedule-{src.name}-hourly",
            name=names.schedule(src.name, "hourly"),
            schedule_expression=f"cron({names.env.schedule.hourly_cron})",
            target=SchedulerScheduleTarget(
                arn=cluster.arn,
                role_arn=role.arn,
                ecs_parameters=SchedulerScheduleTargetEcsParameters(
                    task_definition_arn=td.arn_without_revision,  # latest ACTIVE revision
                    launch_type="FARGATE",
                    platform_version="LATEST",
                    enable_ecs_managed_tags=True,
                    propagate_tags="TASK_DEFINITION",
                    network_configuration=SchedulerScheduleTargetEcsParametersNetworkConfiguration(
                        subnets=network.private_subnet_ids, security_groups=[sg.id], assign_public_ip=False
                    ),
                ),
                retry_policy=retry,
                dead_letter_config=dead_letter,
            ),
            **common,
        )
        # The templated ECS target cannot override environment variables, so the backfill run uses the
        # universal RunTask target to set FINSIGHT_MODE=backfill on the same task definition.
        run_task = {
            "Cluster": cluster.arn,
            "TaskDefinition": td.arn_without_revision,
            "LaunchType": "FARGATE",
            "NetworkConfiguration": {
                "AwsvpcConfiguration": {
                    "Subnets": network.private_subnet_ids,
                    "SecurityGroups": [sg.id],
                    "AssignPublicIp": "DISABLED",
                }
            },
            "Overrides": {
                "ContainerOverrides": [
                    {
                        "Name": names.container_name,
                        "Environment": [
                            {"Name": "FINSIGHT_MODE", "Value": "backfill"},
                            {
                                "Name": "FINSIGHT_BACKFILL_CHUNK_DAYS",
                                "Value": str(names.env.schedule.backfill_chunk_days),
                            },
                        ],
                    }
                ]
            },
        }
        schedules[f"{src.name}-backfill"] = SchedulerSchedule(
            scope,
            f"schedule-{src.name}-backfill",
            name=names.schedule(src.name, "backfill"),
            schedule_expression=f"cron({names.env.schedule.backfill_cron})",
            target=SchedulerScheduleTarget(
                arn=RUN_TASK_UNIVERSAL_TARGET,
                role_arn=role.arn,
                input=json.dumps(run_task),
                retry_policy=retry,
                dead_letter_config=dead_letter,
            ),
            **common,
        )
    return Compute(
        cluster=cluster,
        image=image_var,
        task_definitions=task_definitions,
        roles=roles,
        schedules=schedules,
        scheduler_dlq=dlq,
    )
