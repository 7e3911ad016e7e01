#!/usr/bin/env python3
"""Idle pass over many tables: what a `connector sync postgres --once` costs when nothing changed, and what a
pass of a long-running `connector run` costs (--run-passes: it keeps what it knows of the tables between passes).

Starts a throwaway PostgreSQL (as bench/postgres.py does), creates TABLES small tables, syncs them once (the
copies), then times RUNS idle `--once` passes into a local lake and, with --s3, into a lake on a local
S3-compatible endpoint (`moto_server`, PyPI `moto[server]`). With --compare OTHER_BINARY, the passes alternate
between the two binaries (warm caches for both), so a change can be measured against the build before it.

Usage: python3 bench/idle_tables.py [--tables 1000] [--runs 3] [--s3] [--connector PATH] [--compare PATH]
                                    [--run-passes N]
Without --connector, builds the connector in release mode.
"""

import argparse
import os
import re
import socket
import statistics
import subprocess
import tempfile
import time

from measure import connector_binary, free_port, measured
from postgres import Server


def start_s3(bucket):
    port = free_port()
    server = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline:
                raise SystemExit(f"moto_server did not listen on {port}")
            time.sleep(0.05)
    import boto3
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket=bucket)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
    return server, env


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="also time a lake on a local S3 endpoint")
    parser.add_argument("--connector", help="the binary to measure (default: build the release binary)")
    parser.add_argument("--compare", help="another binary, measured in alternation with the first")
    parser.add_argument("--run-passes", type=int, default=0,
                        help="also time this many idle passes of one `connector run` (schedule every second)")
    args = parser.parse_args()

    connector = connector_binary(args.connector)
    binaries = {"connector": connector}
    if args.compare:
        binaries["compared"] = args.compare

    server = Server()
    s3 = None
    try:
        server.psql(f"""DO $$ BEGIN FOR i IN 1..{args.tables} LOOP
                        EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, note text)', i);
                        EXECUTE format('INSERT INTO t%s VALUES (1, ''one'')', i);
                        END LOOP; END $$""")
        lakes = {"local": (tempfile.mkdtemp(prefix="connector-bench-idle-"), {})}
        if args.s3:
            s3, s3_env = start_s3("idle")
            lakes["s3"] = ("s3://idle/lake", s3_env)
        # A pipeline per lake: one replication slot serves one destination.
        for where, (lake, extra_env) in lakes.items():
            env = dict(os.environ, CONNECTOR_LOG="warn", **extra_env)
            sync = ["sync", "postgres", "--url", server.url, "--schemas", "public", "--dest", lake,
                    "--pipeline", f"idle-{where}", "--once"]
            first, _ = measured([connector] + sync, env=env)
            print(f"{where}: first sync of {args.tables} tables (copies) {first:.1f} s", flush=True)
            times = {name: [] for name in binaries}
            for _ in range(args.runs):
                for name, binary in binaries.items():
                    seconds, rss = measured([binary] + sync, env=env)
                    times[name].append(seconds)
            for name, samples in times.items():
                median = statistics.median(samples)
                print(f"{where}: idle --once over {args.tables} tables, {name} ({binaries[name]}): median "
                      f"{median:.2f} s of {[round(s, 2) for s in samples]}, {args.tables / median:.0f} tables/s",
                      flush=True)
            if args.run_passes:
                for name, binary in binaries.items():
                    passes = run_passes(binary, server, lake, f"idle-{where}", env, args.run_passes)
                    median = statistics.median(passes[1:])
                    print(f"{where}: connector run, {name}: first pass {passes[0]:.2f} s, then idle passes median "
                          f"{median:.2f} s of {[round(s, 2) for s in passes[1:]]}, {args.tables / median:.0f} "
                          f"tables/s", flush=True)
    finally:
        if s3 is not None:
            s3.kill()
        server.stop()


def run_passes(binary, server, lake, pipeline, env, passes):
    """Seconds of each pass of one `connector run` whose pipeline is scheduled every second, as it logs them
    (`sync finished … elapsed_ms`): the first opens every table, the later ones reopen what the run knows."""
    directory = tempfile.mkdtemp(prefix="connector-bench-run-")
    config = os.path.join(directory, "pipelines.toml")
    with open(config, "w") as file:
        file.write(f'[profiles.db]\nkind = "postgres"\nurl = "{server.url}"\nschemas = ["public"]\n\n'
                   f'[[pipelines]]\nname = "{pipeline}"\nprofile = "db"\ntables = ["public.t1"]\ndest = "{lake}"\nschedule = "1s"\n')
    process = subprocess.Popen([binary, "run", "--config", config], env=dict(env, CONNECTOR_LOG="info"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = []
    try:
        for line in process.stderr:
            if "sync finished" in line:
                seconds.append(int(re.search(r"elapsed_ms\W+(\d+)", line).group(1)) / 1000)
                if len(seconds) > passes:
                    break
            elif "sync failed" in line:
                raise SystemExit(f"connector run failed: {line}")
    finally:
        process.terminate()
        process.wait()
    return seconds


if __name__ == "__main__":
    main()
