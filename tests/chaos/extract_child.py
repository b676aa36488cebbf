"""A connector run in a process of its own, for the scenarios that SIGKILL it: `python -m tests.chaos.extract_child
<source> [--s3-endpoint URL] [--part-bytes N]`. It runs the real `connectors.run.extract_source`; the options only
point its S3 client at the fault proxy and shrink the multipart part size so a small local table uploads in parts.
"""

from __future__ import annotations

import argparse

import connectors.landing.s3_sink as s3_sink
from connectors.run import extract_source
from finsight.config import load_environment
from tests.chaos.harness import with_s3_endpoint


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("--s3-endpoint")
    parser.add_argument("--part-bytes", type=int)
    args = parser.parse_args()
    env = load_environment("local")
    if args.s3_endpoint:
        env = with_s3_endpoint(env, args.s3_endpoint)
    if args.part_bytes:
        s3_sink.PART_BYTES = args.part_bytes
    run = extract_source(env, args.source)
    print(f"extracted {run.rows} rows")


if __name__ == "__main__":
    main()
