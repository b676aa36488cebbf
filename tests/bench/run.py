"""`make bench`: throughput of the pipeline stages on the local stack, side by side with their peers, in one run.

Writes bench/results.json and bench/results.md (numbers, never pass/fail tests). Sizes: BENCH_ROWS (default 5 M,
the issue's minimum) for the extraction peers, BENCH_RSS_ROWS (default 10 M, a table larger than the connector's
1 GiB memory budget) for peak RSS.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finsight.cli.progress import stages
from finsight.config import Environment, load_environment, repo_root
from finsight.local.stack import LocalStack
from tests.bench.extract_bench import run_extract_bench

PEAK_ROWS_PER_HOUR = 333_000_000
EXTRACT_BUDGET_SECONDS = 600
DATABASES = 12


def _optional(module: str, function: str) -> Any:
    """Benchmarks other parts of the platform contribute (merge, cycle stages), when present."""
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        return None


def _markdown(results: dict[str, Any]) -> str:
    e = results["extract"]
    lines = [
        "# Benchmark results",
        "",
        f"Run {results['ran_at']} on {results['machine']} ({os.cpu_count()} cores), one run; "
        "every peer on the repeating-card table:",
        f"{e['table_rows']:,} rows x {e['columns']} columns (payments-shaped, PAN column tokenized by ours).",
        "",
        "| extraction | rows/s | vs COPY limit |",
        "|---|---:|---:|",
    ]
    limit = e["copy_limit_rows_per_s"]
    for label, key in (
        ("PostgreSQL `COPY ... (FORMAT binary)` -> /dev/null", "copy_limit_rows_per_s"),
        ("connectorx -> Arrow", "connectorx_arrow_rows_per_s"),
        ("dlt `sql_table` (connectorx backend) -> Parquet", "dlt_connectorx_rows_per_s"),
        ("dlt `sql_table` (pyarrow backend) -> Parquet", "dlt_pyarrow_rows_per_s"),
        ("**ours** -> Parquet in S3 (moto, KMS), 1 chunk", "ours_1_chunks_rows_per_s"),
        ("ours, 2 chunks", "ours_2_chunks_rows_per_s"),
        ("ours, 4 chunks", "ours_4_chunks_rows_per_s"),
    ):
        if key in e:
            lines.append(f"| {label} | {e[key]:,} | {e[key] / limit:.2f} |")
    lines += _shape_lines(e)
    lines += _cpu_lines(e)
    lines.append("")
    if "ours_vs_dlt_connectorx" in e["ratios"]:
        lines.append(f"Ours vs dlt(connectorx): {e['ratios']['ours_vs_dlt_connectorx']:.2f}x.")
    if "ours_peak_rss_mib" in e:
        lines.append(
            f"Peak RSS of ours on a {e['rss_table_rows']:,}-row distinct-card table ({e['rss_table_mib']:,} MiB in "
            f"PostgreSQL): {e['ours_peak_rss_mib']} MiB."
        )
    lines.append("")
    if (m := results.get("merge")) and "scaling" in m:
        lines += [f"MERGE of one {m['batch_rows']:,}-row batch into CURATED of {m['scaling']['base_rows']} rows: "
                  f"{m['scaling']['seconds']} s, ratio {m['scaling']['ratio']} (target <= 2); bytes scanned per "
                  f"batch {m['bytes_scanned_per_batch']:,}{_reached(m)}.", ""]  # fmt: skip
        if "whole_partition_ratio" in (scaling := m["scaling"]):
            lines += ["The same keys, every column of the updated rows changed (each touched partition rewritten "
                      f"whole, as on Snowflake; the run the cost model prices): {scaling['whole_partition_seconds']} "
                      f"s, ratio {scaling['whole_partition_ratio']}.", ""]  # fmt: skip
    if (c := results.get("cycle")) and "steady_s" in c:
        lines += [f"Cycle at scale 1: first {c['first_s']} s, steady {c['steady_s']} s (target <= 15).", ""]
    for section in ("merge", "cycle"):
        if section in results:
            lines += [f"## {section}", "", "```json", json.dumps(results[section], indent=2), "```", ""]
    return "\n".join(lines)


def _shape_lines(e: dict[str, Any]) -> list[str]:
    """COPY and ours on the repeating-card and the distinct-card table of the same run, side by side."""
    shapes = e.get("shapes")
    if not shapes or "distinct_copy_limit_rows_per_s" not in e:
        return []
    cpu, r = e["cpu_seconds"], e["ratios"]
    lines = [
        "",
        "Card-number shapes, same run (best of rounds, 1 chunk): repeating = the table above; distinct = production "
        "(cards mostly distinct per hour, a long tail of repeats).",
        "",
        "| shape | rows | distinct cards | COPY rows/s | ours rows/s | ours vs COPY | ours client CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for shape, prefix in (("repeating", ""), ("distinct", "distinct_")):
        s = shapes[shape]
        copy, ours = e[f"{prefix}copy_limit_rows_per_s"], e[f"{prefix}ours_1_chunks_rows_per_s"]
        lines.append(
            f"| {shape} | {s['rows']:,} | {s['distinct_cards']:,} | {copy:,} | {ours:,} | {ours / copy:.2f} | "
            f"{cpu[f'{prefix}ours_1_chunks']['client']} |"
        )
    lines += [
        "",
        f"Distinct vs repeating: ours at {r['distinct_ours_vs_copy']:.2f}x COPY against {r['ours_vs_copy']:.2f}x; "
        f"client CPU {r['distinct_vs_repeating_client_cpu']:.2f}x the repeating table's.",
    ]
    return lines


def _reached(merge: dict[str, Any]) -> str:
    """' (whole partitions: n of m at <size>x)' for the largest run, when the bench counted them."""
    name, run = max(merge.get("runs", {}).items(), key=lambda kv: kv[1].get("base_rows", 0), default=("", {}))
    if "partitions_reached" not in run:
        return ""
    return f" (whole partitions: {run['partitions_reached']} of {run['partitions_total']} at {name})"


def _cpu_lines(e: dict[str, Any]) -> list[str]:
    """CPU seconds per method on the three sides sharing the cores, and the wall time they allow at best."""
    cpu = e.get("cpu_seconds")
    if not cpu:
        return []
    cores = e.get("cores") or os.cpu_count() or 1
    lines = [
        "",
        f"CPU seconds per method (client = the bench process; {cores} cores shared by all three sides). "
        "'Best wall' is their sum over the cores: no client can finish sooner on this machine.",
        "",
        "| method | wall s | client | PostgreSQL | moto | best wall s | best vs COPY limit |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    copy_wall = cpu["copy_limit"]["wall"]
    for name, c in cpu.items():
        best = max((c["client"] + c["postgres"] + c["moto"]) / cores, c["postgres"])
        lines.append(
            f"| {name} | {c['wall']} | {c['client']} | {c['postgres']} | {c['moto']} | {best:.2f} | "
            f"{copy_wall / best:.2f} |"
        )
    return lines


def main() -> None:
    env = load_environment("local")
    with LocalStack(env).used() as stack:
        results = _extract_and_merge(env, stack)
    # after the bench's stack has stopped (when the bench started it): each cycle brings up a stack of its own, and a
    # DuckDB that has just merged into and dropped four CURATED tables of up to 10 M rows is not left beside it
    _cycles(results)
    out = repo_root() / "bench"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(_markdown(results))
    print(f"wrote {Path('bench') / 'results.json'} and results.md")


def _extract_and_merge(env: Environment, stack: LocalStack) -> dict[str, Any]:
    results: dict[str, Any] = {
        "ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    rows = int(os.environ.get("BENCH_ROWS", 5_000_000))
    started = time.monotonic()

    with stages("bench", ["extract"]) as progress:
        progress("extract")
        results["extract"] = run_extract_bench(env, stack, rows, int(os.environ.get("BENCH_RSS_ROWS", 10_000_000)))
    needed = PEAK_ROWS_PER_HOUR / EXTRACT_BUDGET_SECONDS / DATABASES
    results["extract"]["production_need_rows_per_s_per_db"] = round(needed)
    print(json.dumps(results["extract"], indent=2), f"({time.monotonic() - started:.0f}s)")
    with stages("bench", ["merge"]) as progress:
        if merge_bench := _optional("tests.bench.merge_bench", "run_merge_bench"):
            progress("merge")
            results["merge"] = merge_bench()
    return results


def _cycles(results: dict[str, Any]) -> None:
    """The hourly cycle at scale 1 and 10, each in a process and on a stack of its own."""
    with stages("bench", ["cycle scale 1", "cycle scale 10"]) as progress:
        if cycle_stages := _optional("tests.bench.merge_bench", "run_cycle_process"):
            results["cycle"] = {}
            for scale in (1, 10):
                progress(f"cycle scale {scale}")
                results["cycle"][f"scale_{scale}"] = cycle_stages(scale)
            # the figures: whole-cycle wall seconds at scale 1 (first cycle, then a steady hour)
            one = results["cycle"]["scale_1"]
            results["cycle"]["first_s"], results["cycle"]["steady_s"] = one.get("first_s"), one.get("steady_s")


if __name__ == "__main__":
    main()
