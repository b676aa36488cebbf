"""Data-quality procedures: CHECK_TABLE (in the Task DAG after each merge) and the merge-time quarantine gate."""
