"""FinSight infrastructure as code (CDK Terrain): AWS and account-level Snowflake stacks per environment.

Every name comes from `finsight.config` through `naming.Names`; nothing here spells a bucket, source or table.
"""
