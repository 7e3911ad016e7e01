#!/usr/bin/env python3
"""Files into Delta: `connector sync files --once` and `connector load` beside DuckDB (files → Parquet) and Polars
(files → Delta).

Writes ROWS order rows (id, customer, amount, day, created_at, note; about 100 bytes each as CSV) with Polars as
(a) one CSV file and (b) the same rows as FILES JSON-lines files, then ingests each shape, alternating the four
runs for ROUNDS rounds on warm caches (every tool reads the same files the same number of times), and prints for
each its median rows/s and MB/s (input bytes) and its peak RSS, and the connector's ratios (both commands) to the
others.
The targets (the files issue): at least 1.5 of Polars → Delta, at least 1.0 of DuckDB → Parquet, peak RSS ≤ 512 MiB.

Usage: python3 bench/files.py [--rows 5000000] [--files 200] [--rounds 3] [--connector PATH]
Needs PyPI `polars`, `deltalake` and `duckdb`; without --connector, builds the connector in release mode.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from measure import connector_binary, measured

DUCKDB = """
import sys, duckdb
source, kind, out = sys.argv[1], sys.argv[2], sys.argv[3]
reader = f"read_csv('{source}')" if kind == "csv" else f"read_json('{source}/*.jsonl', format='newline_delimited')"
duckdb.sql(f"COPY (SELECT * FROM {reader}) TO '{out}/out.parquet' (FORMAT parquet)")
"""

POLARS = """
import sys, polars as pl
source, kind, out = sys.argv[1], sys.argv[2], sys.argv[3]
frame = pl.read_csv(source) if kind == "csv" else pl.read_ndjson(f"{source}/*.jsonl")
frame.write_delta(out)
"""


def write_data(directory, rows, files):
    """The rows as one CSV file and as `files` JSON-lines files, written by Polars."""
    script = """
import datetime, os, sys, polars as pl
directory, rows, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
frame = pl.DataFrame({"id": pl.int_range(0, rows, eager=True)}).with_columns(
    pl.format("customer-{}", pl.col("id") % 100_003).alias("customer"),
    ((pl.col("id") * 37 % 100_000) / 100).alias("amount"),
    (pl.lit(datetime.date(2020, 1, 1)) + pl.duration(days=pl.col("id") % 2000)).alias("day"),
    (pl.lit(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
     + pl.duration(seconds=pl.col("id") * 7)).alias("created_at"),
    pl.when(pl.col("id") % 3 == 0).then(pl.lit("gift wrap, please")).otherwise(pl.lit("")).alias("note"),
)
frame.write_csv(f"{directory}/orders.csv")
os.makedirs(f"{directory}/jsonl")
step = (rows + files - 1) // files
for index in range(files):
    frame.slice(index * step, step).write_ndjson(f"{directory}/jsonl/part-{index:04d}.jsonl")
"""
    subprocess.run([sys.executable, "-c", script, directory, str(rows), str(files)], check=True)


def input_bytes(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(path, name)) for name in os.listdir(path))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--files", type=int, default=200, help="JSON-lines files the rows are split into")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connector", help="a connector binary built before instead of building this checkout")
    args = parser.parse_args()
    connector = connector_binary(args.connector)

    data = tempfile.mkdtemp(prefix="connector-bench-files-")
    results = {}
    try:
        print(f"== writing {args.rows:,} rows with Polars: one CSV file, {args.files} JSON-lines files", flush=True)
        write_data(data, args.rows, args.files)
        shapes = {"csv": f"{data}/orders.csv", "jsonl": f"{data}/jsonl"}
        for kind, source in shapes.items():
            megabytes = input_bytes(source) / 1e6
            print(f"== {kind}: {megabytes:,.0f} MB", flush=True)
            runs = {"connector": [], "load": [], "duckdb": [], "polars": []}
            for round_number in range(args.rounds):
                for tool in runs:
                    out = tempfile.mkdtemp(prefix=f"connector-bench-{tool}-", dir=data)
                    if tool == "connector":
                        command = [connector, "sync", "files", "--path", source, "--table", "bench.orders",
                                   "--dest", out, "--once"]
                    elif tool == "load":
                        files = source if kind == "csv" else f"{source}/*.jsonl"
                        command = [connector, "load", files, "--table", "bench.orders", "--dest", out]
                    else:
                        command = [sys.executable, "-c", DUCKDB if tool == "duckdb" else POLARS, source, kind,
                                   out if tool == "duckdb" else f"{out}/orders"]
                    seconds, rss = measured(command, env=dict(os.environ, CONNECTOR_LOG="warn"))
                    runs[tool].append((seconds, rss))
                    print(f"   round {round_number + 1} {tool}: {args.rows / seconds:,.0f} rows/s, "
                          f"{megabytes / seconds:,.1f} MB/s, {rss:,.0f} MiB", flush=True)
                    shutil.rmtree(out)
            medians = {tool: statistics.median(seconds for seconds, _ in measured_runs)
                       for tool, measured_runs in runs.items()}
            peaks = {tool: max(rss for _, rss in measured_runs) for tool, measured_runs in runs.items()}
            results[kind] = {
                tool: {"rows_per_s": args.rows / medians[tool], "mb_per_s": megabytes / medians[tool],
                       "peak_rss_mib": peaks[tool]}
                for tool in runs
            }
            for command_name, ours_name in (("sync files", "connector"), ("load", "load")):
                ours = args.rows / medians[ours_name]
                for tool, target in (("duckdb", 1.0), ("polars", 1.5)):
                    theirs = args.rows / medians[tool]
                    print(f"{kind}: connector {command_name} {ours:,.0f} rows/s "
                          f"({megabytes / medians[ours_name]:,.1f} MB/s) | {tool} {theirs:,.0f} rows/s | "
                          f"ratio {ours / theirs:.2f} (target ≥ {target}) | peak RSS connector "
                          f"{peaks[ours_name]:.0f} MiB, {tool} {peaks[tool]:.0f} MiB (target ≤ 512 MiB)", flush=True)
        print(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
