"""PostgreSQL source connector (Airbyte CDK)."""
