"""The PAN tokenizer of a run, under the environment's current key (Secrets Manager).

A leaf below every extraction path (PostgreSQL bulk, the Airbyte protocol's TableStream, the API sources), so
none of them imports another's orchestration to get it.

The key is read on first use, not at start: a source that meets no card number never asks for it. Which task roles
may read it (sources with PAN columns, and the API sources, which scrub stray card numbers) is
finsight.iam_policy.needs_pan_key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from connectors.pci import PanTokenizer
from finsight.config import Environment
from finsight.secrets import read_secret


class LazyPanTokenizer(PanTokenizer):
    """A PanTokenizer whose key is loaded on the first attribute that needs it (once, thread-safe)."""

    def __init__(self, load: Callable[[], PanTokenizer]) -> None:  # no super().__init__: it would read the key
        self.__dict__["_load"] = load
        self.__dict__["_loading"] = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # only called for attributes not set yet: the key's state
        if name.startswith("__"):
            raise AttributeError(name)
        with self._loading:
            if "version" not in self.__dict__:
                self.__dict__.update(self._load().__dict__)
        return object.__getattribute__(self, name)

    @property
    def loaded(self) -> bool:
        return "version" in self.__dict__


def tokenizer_for(env: Environment) -> PanTokenizer:
    """The PAN tokenizer under the environment's current key (Secrets Manager), read when first needed."""
    return LazyPanTokenizer(lambda: PanTokenizer.from_secret(read_secret(env, env.secrets.pan_tokenization_key)))
