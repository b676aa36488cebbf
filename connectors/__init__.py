"""Connectors (owner: data engineering; runtime: DevOps on ECS Fargate).

Airbyte-CDK sources read PostgreSQL and the payment APIs; the landing writer puts Parquet batches, a manifest and
the new watermark into S3 (SSE-KMS). Connectors never talk to Snowflake: Snowpipe picks the files up.
"""

# Run modes of every source kind (the entrypoint parses them without importing the heavy extraction code)
MODES = ("incremental", "full", "backfill")
