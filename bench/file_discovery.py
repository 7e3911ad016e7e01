#!/usr/bin/env python3
"""Many small files: `connector sync files --once` over FILES small CSV files (100 directories, as date partitions
are), beside DuckDB reading the same files into Parquet, then the cost of a pass that finds nothing new.

For each of ROUNDS rounds (alternating the tools, warm caches) it measures:
- ingest: the first sync of every file (files/s, peak RSS) beside DuckDB's `read_csv` of the same files;
- idle pass: a sync when nothing is new (reading the ledger, listing, skipping every file), full listing and
  incremental listing, beside the floor of any listing: Python's `os.walk` over the same directories.
Prints medians and the ratios. The files issue asks for discovery that stays bounded with the number of files.

Usage: python3 bench/file_discovery.py [--files 100000] [--rounds 3] [--connector PATH]
Needs PyPI `duckdb`; without --connector, builds the connector in release mode.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from measure import connector_binary, measured

WRITE_FILES = """
import csv, os, sys
root, files = sys.argv[1], int(sys.argv[2])
for index in range(files):
    directory = f"{root}/day={index % 100:03d}"
    os.makedirs(directory, exist_ok=True)
    with open(f"{directory}/event-{index:07d}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "kind", "amount"])
        writer.writerows([index * 3 + row, "click", f"{row}.5"] for row in range(3))
"""

DUCKDB = """
import sys, duckdb
source, out = sys.argv[1], sys.argv[2]
duckdb.sql(f"COPY (SELECT * FROM read_csv('{source}/*/*.csv')) TO '{out}/out.parquet' (FORMAT parquet)")
"""

WALK = """
import os, sys
print(sum(len(names) for _, _, names in os.walk(sys.argv[1])))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connector", help="a connector binary built before instead of building this checkout")
    args = parser.parse_args()
    connector = connector_binary(args.connector)
    env = dict(os.environ, CONNECTOR_LOG="warn")

    data = tempfile.mkdtemp(prefix="connector-bench-discovery-")
    try:
        landing = f"{data}/landing"
        print(f"== writing {args.files:,} CSV files with Python's csv module", flush=True)
        subprocess.run([sys.executable, "-c", WRITE_FILES, landing, str(args.files)], check=True)
        runs = {name: [] for name in ("connector ingest", "duckdb ingest", "connector idle pass (full listing)",
                                      "connector idle pass (incremental)", "os.walk listing")}
        for round_number in range(args.rounds):
            lake = f"{data}/lake-{round_number}"
            sync = [connector, "sync", "files", "--path", landing, "--table", "bench.events", "--dest", lake,
                    "--once", "--incremental-listing"]
            out = tempfile.mkdtemp(prefix="duckdb-", dir=data)
            steps = [
                ("connector ingest", sync),
                ("duckdb ingest", [sys.executable, "-c", DUCKDB, landing, out]),
                # The first sync listed in full; an hour has not passed, so the next lists from the newest path.
                ("connector idle pass (incremental)", sync),
                ("connector idle pass (full listing)", sync[:-1]),
                ("os.walk listing", [sys.executable, "-c", WALK, landing]),
            ]
            for name, command in steps:
                seconds, rss = measured(command, env=env)
                runs[name].append((seconds, rss))
                print(f"   round {round_number + 1} {name}: {seconds:.2f} s, {args.files / seconds:,.0f} files/s, "
                      f"{rss:,.0f} MiB", flush=True)
            shutil.rmtree(lake)
            shutil.rmtree(out)
        medians = {name: statistics.median(seconds for seconds, _ in values) for name, values in runs.items()}
        peaks = {name: max(rss for _, rss in values) for name, values in runs.items()}
        for name in runs:
            print(f"{name}: {medians[name]:.2f} s, {args.files / medians[name]:,.0f} files/s, "
                  f"peak RSS {peaks[name]:.0f} MiB")
        print(f"ingest ratio connector/duckdb (files/s): {medians['duckdb ingest'] / medians['connector ingest']:.2f}")
        for mode in ("full listing", "incremental"):
            name = f"connector idle pass ({mode})"
            print(f"idle pass ({mode}) / os.walk listing: {medians[name] / medians['os.walk listing']:.1f}× the time")
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
