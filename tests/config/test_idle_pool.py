"""IdlePool: what the DAG player and the pipe player lend their workers (tasks/runner.py, local/snowpipe.py)."""

from __future__ import annotations

from finsight.idle_pool import IdlePool


def test_the_callers_own_is_lent_first_and_more_are_opened_only_while_all_are_lent() -> None:
    opened: list[str] = []
    closed: list[str] = []

    def open_one() -> tuple[str, object]:
        name = f"extra-{len(opened)}"
        opened.append(name)
        return name, lambda: closed.append(name)

    pool = IdlePool("caller's", open_one)
    with pool.borrowed() as first:
        assert first == "caller's" and opened == []
        with pool.borrowed() as second:
            assert second == "extra-0"
    with pool.borrowed() as again, pool.borrowed() as other:
        assert {again, other} == {"caller's", "extra-0"} and opened == ["extra-0"]  # both idle: nothing new opened
    pool.close()
    assert closed == ["extra-0"]  # the caller's own is the caller's to close
