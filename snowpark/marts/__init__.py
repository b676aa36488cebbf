"""Marts: one folder per mart (query.sql + metadata.yaml); see finsight/marts.py and docs/marts.md."""
