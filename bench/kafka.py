#!/usr/bin/env python3
"""Kafka into Delta: `connector sync kafka --once` beside a plain consumer reading the same messages to /dev/null.

Produces MESSAGES JSON messages of about 1 KB on 6 partitions with `kcat -P` (librdkafka's producer, not ours)
into a topic for append mode, and the same count over KEYS keys into a second topic for upsert mode, then reads
each topic with the connector (append, upsert) and with `kcat -C -e` (the plain consumer: every message to
/dev/null), alternating the two for ROUNDS rounds on warm caches, and prints messages/s, MB/s (value bytes) and
peak RSS, with the connector's ratio to kcat. The targets (the Kafka issue): append at least 0.5 of the plain
consumer, peak RSS ≤ 512 MiB.

The broker is tansu (in memory; `scripts/test.sh` installs it into ~/.cache/connector-tools/tansu) started here,
or the broker at --brokers. A broker's own speed bounds both readers alike, which is why kcat is measured in the
same run against the same broker.

Usage: python3 bench/kafka.py [--messages 1000000] [--keys 100000] [--rounds 3] [--connector PATH] [--brokers B]
Needs Debian's `kcat`; without --connector, builds the connector in release mode.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from measure import connector_binary, free_port, measured

PARTITIONS = 6

# A line per message, `key<TAB>value` (kcat -K '\t'): an order of about 1 KB.
WRITE_MESSAGES = """
import json, sys
path, count, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "w") as out:
    for i in range(count):
        key = i % keys if keys else i
        value = {"id": i, "customer": f"customer-{key}", "amount": round(i * 0.37 % 1000, 2),
                 "created_at": f"2026-12-{1 + i % 28:02d}T10:{i % 60:02d}:00Z", "status": ("new", "paid", "sent")[i % 3],
                 "items": [{"sku": f"sku-{(i + n) % 5000}", "quantity": 1 + n} for n in range(3)],
                 "note": "x" * 700}
        out.write(f"k{key}\\t{json.dumps(value)}\\n")
"""


def start_tansu():
    binary = os.path.expanduser("~/.cache/connector-tools/tansu/bin/tansu")
    if not os.path.exists(binary):
        binary = shutil.which("tansu") or sys.exit("no tansu: run scripts/test.sh once, or pass --brokers")
    port = free_port()
    process = subprocess.Popen(
        [binary, "broker", "--storage-engine", "memory://tansu/", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    brokers = f"127.0.0.1:{port}"
    for _ in range(100):
        if subprocess.run(["kcat", "-b", brokers, "-L", "-m", "1"], capture_output=True).returncode == 0:
            return process, brokers
        time.sleep(0.1)
    process.kill()
    sys.exit("tansu did not start")


def produce(brokers, topic, path):
    subprocess.run([sys.executable, "-c", "import sys\nfrom kafka.admin import KafkaAdminClient, NewTopic\n"
                    "admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])\n"
                    "admin.create_topics([NewTopic(name=sys.argv[2], num_partitions=int(sys.argv[3]), "
                    "replication_factor=1)])\n", brokers, topic, str(PARTITIONS)], check=True)
    subprocess.run(["kcat", "-P", "-b", brokers, "-t", topic, "-K", "\t", "-l", path,
                    "-X", "linger.ms=20", "-X", "batch.num.messages=500"], check=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000, help="distinct keys of the upsert topic")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connector", help="a connector binary built before instead of building this checkout")
    parser.add_argument("--brokers", help="an existing broker instead of a tansu started here")
    args = parser.parse_args()
    connector = connector_binary(args.connector)

    data = tempfile.mkdtemp(prefix="connector-bench-kafka-")
    broker, brokers = (None, args.brokers) if args.brokers else start_tansu()
    results = {}
    try:
        suffix = str(int(time.time()))
        topics = {"append": (f"bench-append-{suffix}", 0), "upsert": (f"bench-upsert-{suffix}", args.keys)}
        value_bytes = {}
        for mode, (topic, keys) in topics.items():
            path = f"{data}/{mode}.tsv"
            subprocess.run([sys.executable, "-c", WRITE_MESSAGES, path, str(args.messages), str(keys)], check=True)
            with open(path) as lines:
                value_bytes[mode] = sum(len(line) - line.index("\t") - 2 for line in lines)
            print(f"== producing {args.messages:,} messages ({value_bytes[mode] / 1e6:,.0f} MB of values) "
                  f"on {PARTITIONS} partitions with kcat: {topic}", flush=True)
            produce(brokers, topic, path)
            os.remove(path)
        for mode, (topic, _) in topics.items():
            megabytes = value_bytes[mode] / 1e6
            runs = {"connector": [], "kcat": []}
            for round_number in range(args.rounds):
                for tool in runs:
                    out = tempfile.mkdtemp(prefix=f"connector-bench-{tool}-", dir=data)
                    if tool == "connector":
                        command = [connector, "sync", "kafka", "--brokers", brokers, "--topics", topic,
                                   "--mode", mode, "--dest", out, "--once"]
                    else:
                        command = ["kcat", "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q"]
                    seconds, rss = measured(command, env=dict(os.environ, CONNECTOR_LOG="warn"))
                    runs[tool].append((seconds, rss))
                    print(f"   round {round_number + 1} {tool} ({mode}): {args.messages / seconds:,.0f} messages/s, "
                          f"{megabytes / seconds:,.1f} MB/s, {rss:,.0f} MiB", flush=True)
                    shutil.rmtree(out)
            medians = {tool: statistics.median(seconds for seconds, _ in tool_runs) for tool, tool_runs in runs.items()}
            peaks = {tool: max(rss for _, rss in tool_runs) for tool, tool_runs in runs.items()}
            results[mode] = {
                tool: {"messages_per_s": args.messages / medians[tool], "mb_per_s": megabytes / medians[tool],
                       "peak_rss_mib": peaks[tool]}
                for tool in runs
            }
            ours, theirs = args.messages / medians["connector"], args.messages / medians["kcat"]
            target = " (target ≥ 0.5)" if mode == "append" else ""
            print(f"{mode}: connector {ours:,.0f} messages/s ({megabytes / medians['connector']:,.1f} MB/s) | "
                  f"kcat -C -e {theirs:,.0f} messages/s | ratio {ours / theirs:.2f}{target} | peak RSS connector "
                  f"{peaks['connector']:.0f} MiB, kcat {peaks['kcat']:.0f} MiB (target ≤ 512 MiB)", flush=True)
        print(json.dumps(results, indent=1))
    finally:
        if broker is not None:
            broker.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
