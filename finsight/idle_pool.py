"""Connections for work that runs side by side (graph tasks, pipes): one per worker at a time, opened on demand."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class IdlePool(Generic[T]):
    """Lends `first` (the caller's, never closed here) and then more, each opened by `open_one` only when every one
    already open is lent out; `close` closes those opened here. `open_one` returns (resource, how to close it)."""

    def __init__(self, first: T, open_one: Callable[[], tuple[T, Callable[[], None]]]) -> None:
        self._idle: queue.SimpleQueue[T] = queue.SimpleQueue()
        self._idle.put(first)
        self._open_one = open_one
        self._closers: list[Callable[[], None]] = []

    @contextmanager
    def borrowed(self) -> Iterator[T]:
        try:
            resource = self._idle.get_nowait()
        except queue.Empty:
            resource, closer = self._open_one()
            self._closers.append(closer)
        try:
            yield resource
        finally:
            self._idle.put(resource)

    def close(self) -> None:
        for closer in self._closers:
            closer()
