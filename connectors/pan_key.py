"""The PAN tokenizer of a run, under the environment's current key (Secrets Manager).

A leaf below every extraction path (PostgreSQL bulk, the Airbyte protocol's TableStream, the API sources), so
none of them imports another's orchestration to get it.
"""

from __future__ import annotations

from connectors.pci import PanTokenizer
from finsight.config import Environment
from finsight.secrets import read_secret


def tokenizer_for(env: Environment) -> PanTokenizer:
    """The PAN tokenizer under the environment's current key (Secrets Manager)."""
    return PanTokenizer.from_secret(read_secret(env, env.secrets.pan_tokenization_key))
