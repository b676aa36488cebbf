"""Progress bars (rich, on stderr) for long work: stages of a run, stacks of a synth or scan, benchmark sections."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def stages(title: str, names: list[str]) -> Iterator[Callable[[str], None]]:
    """A bar over known stages; call the yielded function with a stage's name when it starts."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                        "{task.total}"), TimeElapsedColumn(), console=Console(stderr=True), transient=True)  # fmt: skip
    task = progress.add_task(title, total=len(names))
    seen: list[str] = []

    def start(name: str) -> None:
        if seen:
            progress.advance(task)
        seen.append(name)
        progress.update(task, description=f"{title}: {name}")

    with progress:
        yield start
        progress.update(task, completed=len(names))
