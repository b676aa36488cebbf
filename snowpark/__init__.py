"""Snowpark Python procedure handlers (owner: data engineering).

Each handler is a plain function `handler(session, ...)`: Snowflake runs it as a stored procedure; the local DAG
runner calls it in-process with a Snowpark session on fakesnow. Handlers only use the Snowpark session they are given.
"""
