#!/usr/bin/env python3
"""A chunked copy killed with SIGKILL resumes after its last committed chunk.

Starts a throwaway PostgreSQL, loads a table (5M rows by default), runs `connector sync postgres` and kills it
with SIGKILL after a random number of committed chunks, then syncs again. Prints the chunks each run committed
and fails unless the second run copied no more than the chunks not yet committed plus one, and the Delta table
holds exactly the source's rows (count, sum of keys, sum of a column).

Usage: python3 bench/chunk_resume.py [--rows 5000000] [--chunk-rows 250000] [--seed N]
Needs the `postgresql` Debian package and the `deltalake` PyPI package; builds the connector in release mode.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from measure import connector_binary
from postgres import Server

CHUNK_LINE = re.compile(r"copied a chunk.*rows=(\d+)|copied the table.*rows=(\d+)")


def committed_chunks(lines):
    return sum(1 for line in lines if CHUNK_LINE.search(line))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--connector", help="a connector binary built before (e.g. a copy of an earlier release build) instead of building this checkout")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    # The chunk after the last full one ends the copy (it may read nothing).
    total_chunks = args.rows // args.chunk_rows + 1
    kill_after = rng.randrange(1, total_chunks)

    connector = connector_binary(args.connector)
    server = Server()
    lake = tempfile.mkdtemp(prefix="connector-resume-lake-")
    try:
        server.psql("CREATE TABLE bench (id bigint PRIMARY KEY, qty int, note text, created timestamptz)")
        server.psql(f"""INSERT INTO bench SELECT g, g % 1000, 'note number ' || g, now() - g * interval '1 second'
                        FROM generate_series(1, {args.rows}) g""")
        server.psql("VACUUM ANALYZE bench")
        sync = [connector, "sync", "postgres", "--url", server.url, "--tables", "public.bench", "--dest", lake,
                "--pipeline", "resume", "--copy-chunk-rows", str(args.chunk_rows)]
        env = dict(os.environ, CONNECTOR_LOG="info")

        # The first run, killed once it has committed `kill_after` chunks.
        first = subprocess.Popen(sync, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first_lines = []
        for line in first.stderr:
            first_lines.append(line)
            if committed_chunks(first_lines) >= kill_after:
                first.send_signal(signal.SIGKILL)
                break
        first.wait()
        before_kill = committed_chunks(first_lines)

        second = subprocess.run(sync, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                check=True)
        second_lines = second.stderr.splitlines()
        after_restart = committed_chunks(second_lines)
        resumed = [line.strip() for line in second_lines if "copied a chunk" in line][:1]

        # The tables have deletion vectors, which deltalake's QueryBuilder reads (to_pyarrow_table refuses them).
        from deltalake import DeltaTable, QueryBuilder
        counted = QueryBuilder().register("bench", DeltaTable(f"{lake}/public/bench")).execute(
            "SELECT count(*) AS n, sum(id) AS ids, sum(qty) AS qtys FROM bench").read_all()
        import pyarrow
        counted = pyarrow.table(counted).to_pylist()[0]
        lake_rows = (counted["n"], counted["ids"], counted["qtys"])
        source_rows = tuple(int(value) for value in server.psql(
            "SELECT count(*), sum(id), sum(qty) FROM bench", capture=True).split("|"))
        result = {"seed": seed, "rows": args.rows, "chunk_rows": args.chunk_rows, "chunks": total_chunks,
                  "committed_before_kill": before_kill, "committed_after_restart": after_restart,
                  "most_allowed_after_restart": total_chunks - before_kill + 1,
                  "lake_equals_source": lake_rows == source_rows, "first_chunk_after_restart": resumed}
        print(json.dumps(result, indent=1))
        if after_restart > total_chunks - before_kill + 1 or lake_rows != source_rows:
            sys.exit(f"FAILED: lake {lake_rows} vs source {source_rows}")
    finally:
        server.stop()
        shutil.rmtree(lake, ignore_errors=True)


if __name__ == "__main__":
    main()
