#!/usr/bin/env python3
"""Table maintenance over an hour of commits: does a table fed by `--continuous` keep its file count and the time
to open it bounded?

Two `connector sync kafka --continuous --commit-interval 1s` streams read the same topic into two lakes while a
producer (confluent-kafka) sends RATE JSON messages/s of about 1 KB: one with the writer's own maintenance as
shipped (a pass every 100 commits: compaction, checkpoint, log clean-up, VACUUM every tenth pass), one with it off
(`--maintenance-every-commits 0`, what every commit-per-second writer without maintenance does). Every SAMPLE
seconds it prints, for each table: the Delta version, its live data files, the files in its `_delta_log`, and the
time the `deltalake` Python package (delta-rs, not this connector) takes to open the table and list its files
(median of 3), and at the end both tables' row counts (each must hold every message produced by then once).

Usage: python3 bench/maintenance.py [--minutes 60] [--rate 200] [--sample 300] [--connector PATH] [--brokers B]
Needs PyPI `confluent-kafka`, `kafka-python` and `deltalake`; tansu as bench/kafka.py finds it.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from kafka import create_topic, start_tansu
from measure import connector_binary


def table_shape(path):
    """(version, live files, _delta_log files, median seconds to open and list)."""
    from deltalake import DeltaTable
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        table = DeltaTable(path)
        files = len(table.file_uris())
        seconds.append(time.perf_counter() - started)
    log_files = len(os.listdir(os.path.join(path, "_delta_log")))
    return table.version(), files, log_files, statistics.median(seconds)


def rows(path):
    # QueryBuilder reads through deletion vectors (the tables are created with them); to_pyarrow_dataset refuses.
    from deltalake import DeltaTable, QueryBuilder
    batches = QueryBuilder().register("t", DeltaTable(path)).execute("select count(*) as n from t").read_all()
    return batches.column("n")[0].as_py()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--rate", type=int, default=200, help="messages/s produced")
    parser.add_argument("--sample", type=int, default=300, help="seconds between samples")
    parser.add_argument("--connector", help="a connector binary built before instead of building this checkout")
    parser.add_argument("--brokers", help="an existing broker instead of a tansu started here")
    args = parser.parse_args()
    connector = connector_binary(args.connector)
    data = tempfile.mkdtemp(prefix="connector-bench-maintenance-")
    broker, brokers = (None, args.brokers) if args.brokers else start_tansu()
    topic = f"bench-maintenance-{int(time.time())}"
    create_topic(brokers, topic)
    streams = {}
    for name, extra in [("maintained", []), ("unmaintained", ["--maintenance-every-commits", "0"])]:
        dest = os.path.join(data, name)
        streams[name] = (dest, subprocess.Popen(
            [connector, "sync", "kafka", "--brokers", brokers, "--topics", topic, "--dest", dest, "--pipeline", name,
             "--continuous", "--commit-interval", "1s"] + extra,
            env=dict(os.environ, CONNECTOR_LOG="warn")))
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
    note = "x" * 900
    started = time.monotonic()
    next_sample = started + args.sample
    sent = 0
    print(f"== {args.rate} messages/s into `{topic}` for {args.minutes:g} min; lakes under {data}", flush=True)
    try:
        while time.monotonic() - started < args.minutes * 60:
            due = int((time.monotonic() - started) * args.rate)
            for i in range(sent, due):
                producer.produce(topic, value=json.dumps({"id": i, "note": note}))
            sent = max(sent, due)
            producer.poll(0)
            if time.monotonic() >= next_sample:
                next_sample += args.sample
                minute = (time.monotonic() - started) / 60
                for name, (dest, process) in streams.items():
                    if process.poll() is not None:
                        sys.exit(f"the {name} sync stopped with exit code {process.returncode}")
                    version, files, log_files, seconds = table_shape(os.path.join(dest, "kafka", topic))
                    print(f"{minute:5.1f} min {name:>12}: version {version:>5}, {files:>5} live files, "
                          f"{log_files:>5} log files, open and list {seconds * 1000:7.1f} ms", flush=True)
            time.sleep(0.01)
        producer.flush()
        # Let both catch up with the last messages (a few commit intervals).
        time.sleep(10)
        results = {}
        for name, (dest, process) in streams.items():
            path = os.path.join(dest, "kafka", topic)
            version, files, log_files, seconds = table_shape(path)
            results[name] = {"version": version, "live_files": files, "log_files": log_files,
                             "open_ms": round(seconds * 1000, 1), "rows": rows(path)}
        print(json.dumps({"minutes": args.minutes, "rate": args.rate, "produced": sent, "tables": results}, indent=1),
              flush=True)
    finally:
        for _, process in streams.values():
            process.terminate()
            process.wait()
        if broker:
            broker.terminate()
            broker.wait()


if __name__ == "__main__":
    main()
