"""The ids every structured log line of a run carries: run_id, source, table, batch_id (and task).

Bound once where they become known (`with bind(run_id=...)`, `bind(table=...)`, `bind(batch_id=...)`) and stamped
on every record by `IdsFilter`, so one batch can be followed from the connector's log to S3 (the batch id is in
every key), RAW (`_BATCH_ID`), OPS.MERGED_BATCHES and the task history (the run id). Context variables do not
cross into worker threads by themselves: submit work with `submit(pool, fn, ...)`, which carries them along.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import Any, TypeVar

ID_FIELDS = ("run_id", "source", "table", "batch_id", "task")
_ids: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("finsight_log_ids", default={})  # noqa: B039
T = TypeVar("T")


def current() -> dict[str, str]:
    return dict(_ids.get())


@contextmanager
def bind(**ids: Any) -> Iterator[None]:
    """Add ids (None values are ignored) for the code inside the block, this thread and the work it submits."""
    token = _ids.set({**_ids.get(), **{k: str(v) for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _ids.reset(token)


def submit(pool: Executor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
    """`pool.submit` that runs `fn` with the caller's bound ids."""
    return pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)


class IdsFilter(logging.Filter):
    """Stamps the bound ids on a record's structured `fields` (fields the call site set itself win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _ids.get()
        if ids:
            record.fields = {**ids, **getattr(record, "fields", {})}
        return True
