#!/usr/bin/env python3
"""Kafka into Delta: `connector sync kafka --once` beside a plain consumer reading the same messages and dropping them.

Produces MESSAGES JSON messages of about 1 KB on 6 partitions with confluent-kafka (librdkafka's producer, not
ours) into a topic for append mode, and the same count over KEYS keys into a second topic for upsert mode, then
reads each topic with the connector (append, upsert) and with the plain consumer (confluent-kafka's consumer,
librdkafka 2.x, assigned every partition from its start, reading batches of 10,000 until each partition's end,
keeping nothing: what `kcat -C -e > /dev/null` does; Debian's kcat is built on a librdkafka whose ApiVersion
request tansu 0.6 does not answer), alternating the two for ROUNDS rounds on warm caches, and prints messages/s,
MB/s (value bytes) and peak RSS, with the connector's ratio to the plain consumer. The targets (the Kafka issue): append at least 0.5 of the plain
consumer, peak RSS ≤ 512 MiB.

Then (unless --continuous-seconds 0) the latency of `--continuous`: a producer sends RATE messages/s for that long
while the connector streams the topic with --commit-interval 1s; a message is visible when the Delta commit that
adds its file is written (the commit file's modification time, the moment readers can see it), and the script
prints the p50/p99/max of visible − produced (the message's Kafka timestamp, set by the producer). Target: p99 ≤ 3 s
at 10,000 messages/s.

The broker is tansu (in memory; `scripts/test.sh` installs it into ~/.cache/connector-tools/tansu-with-sqlite) started here,
or the broker at --brokers. A broker's own speed bounds both readers alike, which is why the plain consumer is measured in the
same run against the same broker.

Usage: python3 bench/kafka.py [--messages 1000000] [--keys 100000] [--rounds 3] [--connector PATH] [--brokers B]
                              [--continuous-seconds 60] [--rate 10000]
Needs PyPI `confluent-kafka`, `kafka-python` and `pyarrow`; without --connector, builds the connector in release
mode.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from measure import connector_binary, free_port, measured

PARTITIONS = 6

# Produces `count` orders of about 1 KB, keyed `k<i % keys>` (or `k<i>`), and prints their values' bytes.
PRODUCE = """
import json, sys
from confluent_kafka import Producer
brokers, topic, count, keys = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "batch.num.messages": 2000,
                     "queue.buffering.max.messages": 200000})
total = 0
for i in range(count):
    key = i % keys if keys else i
    value = json.dumps({"id": i, "customer": f"customer-{key}", "amount": round(i * 0.37 % 1000, 2),
                        "created_at": f"2026-12-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
                        "status": ("new", "paid", "sent")[i % 3],
                        "items": [{"sku": f"sku-{(i + n) % 5000}", "quantity": 1 + n} for n in range(3)],
                        "note": "x" * 700})
    total += len(value)
    while True:
        try:
            producer.produce(topic, key=f"k{key}", value=value)
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)
producer.flush()
print(total)
"""

# The plain consumer: every message of every partition from its start to its end, kept nowhere.
PLAIN_CONSUMER = """
import sys
from confluent_kafka import Consumer, TopicPartition
brokers, topic = sys.argv[1], sys.argv[2]
consumer = Consumer({"bootstrap.servers": brokers, "group.id": "bench-plain", "enable.auto.commit": False,
                     "enable.partition.eof": True})
partitions = consumer.list_topics(topic, timeout=15).topics[topic].partitions
consumer.assign([TopicPartition(topic, partition, 0) for partition in partitions])
open_partitions, count = set(partitions), 0
while open_partitions:
    for message in consumer.consume(num_messages=10000, timeout=1):
        if message.error():
            open_partitions.discard(message.partition())
        else:
            count += 1
consumer.close()
print(count)
"""


def start_tansu():
    binary = os.path.expanduser("~/.cache/connector-tools/tansu-with-sqlite/bin/tansu")
    if not os.path.exists(binary):
        binary = shutil.which("tansu") or sys.exit("no tansu: run scripts/test.sh once, or pass --brokers")
    port = free_port()
    process = subprocess.Popen(
        [binary, "broker", "--storage-engine", "memory://tansu/", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    brokers = f"127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, brokers
        except OSError:
            time.sleep(0.1)
    process.kill()
    sys.exit("tansu did not start")


def create_topic(brokers, topic):
    subprocess.run([sys.executable, "-c", "import sys\nfrom kafka.admin import KafkaAdminClient, NewTopic\n"
                    "admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])\n"
                    "admin.create_topics([NewTopic(name=sys.argv[2], num_partitions=int(sys.argv[3]), "
                    "replication_factor=1)])\n", brokers, topic, str(PARTITIONS)], check=True)


def produce(brokers, topic, count, keys):
    """Produces the topic's messages; returns their values' bytes."""
    create_topic(brokers, topic)
    out = subprocess.run([sys.executable, "-c", PRODUCE, brokers, topic, str(count), str(keys)], check=True,
                         stdout=subprocess.PIPE, text=True)
    return int(out.stdout.strip())


def continuous_latency(connector, brokers, data, seconds, rate):
    """Streams a topic produced at `rate` messages/s for `seconds`; returns the produce-to-visible latencies (s)."""
    import glob
    import pyarrow.parquet as pq
    topic = f"bench-continuous-{int(time.time())}"
    create_topic(brokers, topic)
    out = tempfile.mkdtemp(prefix="connector-bench-continuous-", dir=data)
    streaming = subprocess.Popen([connector, "sync", "kafka", "--brokers", brokers, "--topics", topic, "--dest", out,
                                  "--continuous", "--commit-interval", "1s"],
                                 env=dict(os.environ, CONNECTOR_LOG="warn"))
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
    note = "x" * 900
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        due = int((time.monotonic() - started) * rate)
        for i in range(sent, due):
            producer.produce(topic, value=json.dumps({"id": i, "note": note}))
        sent = max(sent, due)
        producer.poll(0)
        time.sleep(0.01)
    producer.flush()
    table = f"{out}/kafka/{topic}"
    deadline = time.monotonic() + 60
    latencies = []
    while time.monotonic() < deadline:
        # Each commit file names the data files it adds; its modification time is when they became visible.
        visible_at = {}
        for commit in sorted(glob.glob(f"{table}/_delta_log/*.json")):
            written = os.path.getmtime(commit)
            with open(commit) as actions:
                for line in actions:
                    add = json.loads(line).get("add")
                    if add:
                        visible_at[add["path"]] = written
        latencies = []
        for path, written in visible_at.items():
            stamps = pq.read_table(f"{table}/{path}", columns=["_cdc_kafka_timestamp"]).column(0).to_pylist()
            latencies.extend(written - stamp.timestamp() for stamp in stamps)
        if len(latencies) >= sent:
            break
        time.sleep(1)
    streaming.terminate()
    streaming.wait()
    return sent, latencies


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000, help="distinct keys of the upsert topic")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connector", help="a connector binary built before instead of building this checkout")
    parser.add_argument("--brokers", help="an existing broker instead of a tansu started here")
    parser.add_argument("--continuous-seconds", type=int, default=60, help="0 skips the latency run")
    parser.add_argument("--rate", type=int, default=10_000, help="messages/s produced during the latency run")
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
            value_bytes[mode] = produce(brokers, topic, args.messages, keys)
            print(f"== produced {args.messages:,} messages ({value_bytes[mode] / 1e6:,.0f} MB of values) "
                  f"on {PARTITIONS} partitions: {topic}", flush=True)
        for mode, (topic, _) in topics.items():
            megabytes = value_bytes[mode] / 1e6
            runs = {"connector": [], "plain": []}
            for round_number in range(args.rounds):
                for tool in runs:
                    out = tempfile.mkdtemp(prefix=f"connector-bench-{tool}-", dir=data)
                    if tool == "connector":
                        command = [connector, "sync", "kafka", "--brokers", brokers, "--topics", topic,
                                   "--mode", mode, "--dest", out, "--once"]
                    else:
                        command = [sys.executable, "-c", PLAIN_CONSUMER, brokers, topic]
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
            ours, theirs = args.messages / medians["connector"], args.messages / medians["plain"]
            target = " (target ≥ 0.5)" if mode == "append" else ""
            print(f"{mode}: connector {ours:,.0f} messages/s ({megabytes / medians['connector']:,.1f} MB/s) | "
                  f"plain consumer {theirs:,.0f} messages/s | ratio {ours / theirs:.2f}{target} | peak RSS connector "
                  f"{peaks['connector']:.0f} MiB, plain {peaks['plain']:.0f} MiB (target ≤ 512 MiB)", flush=True)
        if args.continuous_seconds > 0:
            print(f"== --continuous: {args.rate:,} messages/s for {args.continuous_seconds} s", flush=True)
            sent, latencies = continuous_latency(connector, brokers, data, args.continuous_seconds, args.rate)
            latencies.sort()
            if latencies:
                pick = lambda share: latencies[min(len(latencies) - 1, int(share * len(latencies)))]
                results["continuous"] = {"sent": sent, "visible": len(latencies), "p50_s": pick(0.5),
                                         "p99_s": pick(0.99), "max_s": latencies[-1]}
                print(f"continuous: {len(latencies):,} of {sent:,} messages visible | produce-to-visible p50 "
                      f"{pick(0.5):.2f} s, p99 {pick(0.99):.2f} s (target ≤ 3 s), max {latencies[-1]:.2f} s",
                      flush=True)
        print(json.dumps(results, indent=1))
    finally:
        if broker is not None:
            broker.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
