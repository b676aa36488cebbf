"""Deterministic synthetic data for the 12 operational PostgreSQL sources of the local stack.

`create_source_tables` derives DDL from the catalog, `seed_sources` bulk-loads a reproducible history and
`mutate_sources` plays one hour of inserts, updates and hard deletes on top of it.
"""

from finsight.synthetic.ddl import Connect, create_source_tables
from finsight.synthetic.generator import seed_sources
from finsight.synthetic.mutations import MutationSummary, TableChanges, mutate_sources

__all__ = ["Connect", "MutationSummary", "TableChanges", "create_source_tables", "mutate_sources", "seed_sources"]
