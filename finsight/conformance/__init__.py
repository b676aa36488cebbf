"""Snowflake conformance: the rules real Snowflake enforces that the local double (DuckDB) does not.

`rules` holds one function per rule, each citing the Snowflake docs page it enforces; `model` is the little state
some rules need (column types, task graphs, grants). Two users: the local fakesnow server refuses a violating
statement with Snowflake's own error text (finsight/local/snowflake_strict.py), and `finsight sql check` runs the
same rules over every rendered file and over a statement log (`check`).
"""
