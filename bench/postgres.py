#!/usr/bin/env python3
"""PostgreSQL connector benchmark: snapshot and change throughput beside the server's own limits, in one run.

Starts a throwaway PostgreSQL (wal_level=logical) in a temp dir, then prints:
  - snapshot: rows/s, MB/s and peak RSS of `connector sync postgres` copying a mixed-type table, beside
    `psql -c "\\copy t to /dev/null (format binary)"` of the same table (the server's binary COPY rate);
  - changes: changes/s and peak RSS of `connector sync postgres --once` applying a change workload
    (60% updates, 30% inserts, 10% deletes in 10k-row transactions), beside `pg_recvlogical` decoding the same
    changes from an identical slot to /dev/null;
  - one large UPDATE transaction: peak RSS of applying it;
  - continuous: commit-to-visible latency p50/p99 under a steady change rate.

Usage: python3 bench/postgres.py [--rows 5000000] [--changes 1000000] [--big-update 2000000] [--rate 5000]
       [--change-rounds 1] [--baseline BINARY [--baseline-args=...]]
With --baseline, another connector binary (an earlier build) catches up on the same changes from its own slot,
each round alternating which side goes first; the medians are compared.
Needs the `postgresql` Debian package and the `deltalake` PyPI package; builds the connector in release mode.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time

from measure import connector_binary, free_port, measured, report



def pg_bin():
    versions = sorted(os.listdir("/usr/lib/postgresql"), key=int)
    return f"/usr/lib/postgresql/{versions[-1]}/bin"


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="connector-bench-")
        self.port = free_port()
        self.bin = pg_bin()
        self.as_postgres = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        with open(f"{self.dir}/pw", "w") as f:
            f.write("bench\n")
        if os.geteuid() == 0:
            shutil.chown(f"{self.dir}/pw", "postgres")
        subprocess.run(self.as_postgres + [f"{self.bin}/initdb", "-D", f"{self.dir}/data", "-U", "bench",
                                           f"--pwfile={self.dir}/pw", "-A", "scram-sha-256"],
                       check=True, stdout=subprocess.DEVNULL)
        settings = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir} "
                    "-c wal_level=logical -c max_wal_size=8GB -c shared_buffers=1GB -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(self.as_postgres + [f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data", "-l",
                                           f"{self.dir}/server.log", "-w", "-o", settings, "start"],
                       check=True, stdout=subprocess.DEVNULL)
        self.url = f"postgres://bench:bench@127.0.0.1:{self.port}/postgres"
        self.env = dict(os.environ, PGPASSWORD="bench")

    def psql(self, sql, capture=False):
        result = subprocess.run([f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "bench",
                                 "-d", "postgres", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql],
                                env=self.env, check=True, stdout=subprocess.PIPE if capture else subprocess.DEVNULL)
        return result.stdout.decode().strip() if capture else None

    def stop(self):
        subprocess.run(self.as_postgres + [f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data", "-m", "immediate",
                                           "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--big-update", type=int, default=2_000_000)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--latency-seconds", type=int, default=30)
    parser.add_argument("--batch-mib", type=int, default=None, help="the connector's --batch-mib (default: its own)")
    parser.add_argument("--copy-rounds", type=int, default=2,
                        help="rounds of the same copy in chunks and whole, alternated (0: skip)")
    parser.add_argument("--change-rounds", type=int, default=1,
                        help="catch-ups of the change workload per side, each from a slot of its own")
    parser.add_argument("--baseline", help="another connector binary (an earlier build) measured in the same rounds")
    parser.add_argument("--baseline-args", default="", help="flags added to the baseline's syncs")
    parser.add_argument("--connector-args", default="",
                        help="flags added to this build's syncs, e.g. --connector-args='--copy-chunk-rows 1000000'")
    parser.add_argument("--connector", help="a connector binary built before (e.g. a copy of an earlier release build) instead of building this checkout")
    args = parser.parse_args()

    connector = connector_binary(args.connector)
    server = Server()
    lake = tempfile.mkdtemp(prefix="connector-bench-lake-")
    env = dict(os.environ, CONNECTOR_LOG="warn")
    try:
        print(f"== {args.rows} rows: bigint key, int, numeric(12,2), double, text, varchar, bool, timestamptz, "
              "date, uuid, jsonb", flush=True)
        server.psql("""CREATE TABLE bench (id bigint PRIMARY KEY, qty int, price numeric(12,2), score double precision,
                       note text, code varchar(32), active boolean, created timestamptz, day date, ref uuid,
                       attrs jsonb)""")
        server.psql(f"""INSERT INTO bench SELECT g, g % 1000, (g % 100000) / 100.0, g * 0.001,
                        'note number ' || g, 'code-' || (g % 5000), g % 2 = 0, now() - g * interval '1 second',
                        date '2020-01-01' + (g % 2000), md5(g::text)::uuid,
                        jsonb_build_object('k', g % 10, 'tag', 'v' || (g % 7))
                        FROM generate_series(1, {args.rows}) g""")
        server.psql("VACUUM ANALYZE bench")
        table_bytes = int(server.psql("SELECT pg_table_size('bench')", capture=True))

        # The limit: the server's binary COPY of the same table, read by psql and thrown away.
        copy_seconds, _ = measured([f"{server.bin}/psql", "-h", "127.0.0.1", "-p", str(server.port), "-U", "bench",
                                    "-d", "postgres", "-c", "\\copy bench to /dev/null (format binary)"],
                                   env=server.env)
        copy_bytes = int(server.psql("SELECT sum(pg_column_size(b.*)) FROM bench b", capture=True))
        sync = [connector, "sync", "postgres", "--url", server.url, "--tables", "public.bench", "--dest", lake,
                "--pipeline", "bench"] + (["--batch-mib", str(args.batch_mib)] if args.batch_mib else [])
        snapshot_seconds, snapshot_rss = measured(sync, env=env)
        results = {"snapshot": {
            "rows": args.rows, "table_mib": table_bytes / 2**20,
            "connector_rows_per_s": args.rows / snapshot_seconds,
            "connector_mb_per_s": copy_bytes / snapshot_seconds / 1e6,
            "copy_rows_per_s": args.rows / copy_seconds, "copy_mb_per_s": copy_bytes / copy_seconds / 1e6,
            "ratio": copy_seconds / snapshot_seconds, "peak_rss_mib": snapshot_rss}}
        print(json.dumps(results["snapshot"]), flush=True)
        report("snapshot", results["snapshot"]["connector_rows_per_s"], results["snapshot"]["copy_rows_per_s"],
               "rows/s", snapshot_rss, "psql \\copy (format binary) to /dev/null", 0.6)
        if args.copy_rounds:
            results["chunked_copy"] = chunked_against_whole(server, connector, env, args.rows, args.copy_rounds,
                                                            args.connector_args.split())

        # More catch-ups of the same changes (and the baseline's): each a pipeline copied now, with its own slot.
        catch_ups = {"connector": [sync], "baseline": []}
        for side, binary, extra in (("connector", connector, []), ("baseline", args.baseline, args.baseline_args.split())):
            first = 1 if side == "connector" else 0
            for round_number in range(first, args.change_rounds if binary else 0):
                pipeline = f"bench_{side}_{round_number}"
                round_sync = [binary] + sync[1:sync.index(lake)] + [f"{lake}.{pipeline}", "--pipeline", pipeline]
                round_sync += sync[sync.index("--pipeline") + 2:] + extra
                measured(round_sync, env=env)
                catch_ups[side].append(round_sync)

        # Changes: an identical slot for pg_recvlogical, created at the same point as the connector's position.
        server.psql("SELECT pg_create_logical_replication_slot('recvlogical', 'pgoutput')")
        transactions = max(1, args.changes // 10_000)
        per = args.changes // transactions
        next_id = args.rows + 1
        print(f"== {transactions * per} changes in {transactions} transactions of {per}", flush=True)
        for t in range(transactions):
            updates, inserts, deletes = per * 6 // 10, per * 3 // 10, per - per * 6 // 10 - per * 3 // 10
            base = 1 + (t * per) % (args.rows - per)
            server.psql(f"""BEGIN;
                UPDATE bench SET qty = qty + 1, note = 'changed' WHERE id BETWEEN {base} AND {base + updates - 1};
                INSERT INTO bench SELECT g, 1, 1.5, 0.5, 'new', 'c', true, now(), current_date, md5(g::text)::uuid,
                  '{{}}' FROM generate_series({next_id}, {next_id + inserts - 1}) g;
                DELETE FROM bench WHERE id BETWEEN {base + updates} AND {base + updates + deletes - 1};
                COMMIT;""")
            next_id += inserts
        end_lsn = server.psql("SELECT pg_current_wal_lsn()", capture=True)
        recv_seconds, _ = measured([f"{server.bin}/pg_recvlogical", "-h", "127.0.0.1", "-p", str(server.port),
                                    "-U", "bench", "-d", "postgres", "--slot", "recvlogical", "--start",
                                    "--endpos", end_lsn, "-o", "proto_version=1", "-o", "publication_names=connector_bench",
                                    "-o", "binary=true", "-f", "/dev/null"], env=server.env)
        changes = transactions * per
        runs = {"connector": [], "baseline": []}
        for round_number in range(args.change_rounds):
            sides = [side for side in ("connector", "baseline") if round_number < len(catch_ups[side])]
            for side in sides if round_number % 2 == 0 else reversed(sides):
                runs[side].append(measured(catch_ups[side][round_number], env=env))
                print(f"   round {round_number + 1}: {side} {changes / runs[side][-1][0]:,.0f} changes/s, "
                      f"{runs[side][-1][1]:.0f} MiB", flush=True)
        once_seconds = statistics.median(seconds for seconds, _ in runs["connector"])
        once_rss = max(rss for _, rss in runs["connector"])
        results["changes"] = {"changes": changes, "connector_changes_per_s": changes / once_seconds,
                              "recvlogical_changes_per_s": changes / recv_seconds,
                              "ratio": recv_seconds / once_seconds, "peak_rss_mib": once_rss}
        print(json.dumps(results["changes"]), flush=True)
        report("changes", changes / once_seconds, changes / recv_seconds, "changes/s", once_rss,
               "pg_recvlogical to /dev/null", 0.5)
        if runs["baseline"]:
            report("changes, baseline", changes / statistics.median(seconds for seconds, _ in runs["baseline"]),
                   changes / recv_seconds, "changes/s", max(rss for _, rss in runs["baseline"]),
                   "pg_recvlogical to /dev/null", 0.5)

        if args.big_update:
            print(f"== one UPDATE transaction of {args.big_update} rows", flush=True)
            server.psql(f"UPDATE bench SET qty = qty + 1 WHERE id <= {args.big_update}")
            big_seconds, big_rss = measured(sync, env=env)
            results["big_transaction"] = {"rows": args.big_update, "seconds": big_seconds, "peak_rss_mib": big_rss}
            print(json.dumps(results["big_transaction"]), flush=True)
            print(f"big transaction: {args.big_update / big_seconds:,.0f} changes/s, peak RSS {big_rss:.0f} MiB "
                  f"(target ≤ 512 MiB)", flush=True)

        if args.latency_seconds:
            results["continuous"] = continuous_latency(server, connector, lake, env, args.rate, args.latency_seconds)
            print(json.dumps(results["continuous"]), flush=True)
        print(json.dumps(results))
    finally:
        server.stop()
        shutil.rmtree(lake, ignore_errors=True)
        for path in os.listdir(os.path.dirname(lake)):
            if path.startswith(os.path.basename(lake) + ".bench_"):
                shutil.rmtree(os.path.join(os.path.dirname(lake), path), ignore_errors=True)


def chunked_against_whole(server, connector, env, rows, rounds, chunk_args):
    """The copy in chunks while streaming (the default) beside the whole copy before streaming (`--whole-copies`,
    one snapshot, ranges over parallel connections), alternated, each into a fresh lake under its own pipeline."""
    print(f"== the same {rows} rows copied in chunks and whole, {rounds} rounds alternated", flush=True)
    runs = {"chunks": [], "whole": []}
    for round_number in range(rounds):
        modes = [("whole", ["--whole-copies"]), ("chunks", chunk_args)]
        for mode, extra in modes if round_number % 2 == 0 else reversed(modes):
            pipeline = f"copy_{mode}_{round_number}"
            lake = tempfile.mkdtemp(prefix=f"connector-bench-{mode}-")
            try:
                seconds, rss = measured([connector, "sync", "postgres", "--url", server.url, "--tables",
                                         "public.bench", "--dest", lake, "--pipeline", pipeline] + extra, env=env)
            finally:
                shutil.rmtree(lake, ignore_errors=True)
                subprocess.run([connector, "drop", "--pipeline", pipeline, "--url", server.url], env=env,
                               check=True, stdout=subprocess.DEVNULL)
            runs[mode].append((rows / seconds, rss))
            print(json.dumps({"mode": mode, "round": round_number, "rows_per_s": rows / seconds,
                              "peak_rss_mib": rss}), flush=True)
    best = {mode: max(rate for rate, _ in measured_runs) for mode, measured_runs in runs.items()}
    peak = max(rss for rate, rss in runs["chunks"])
    report("copy in chunks", best["chunks"], best["whole"], "rows/s", peak, "the whole copy, --whole-copies", 0.8)
    return {"chunks_rows_per_s": best["chunks"], "whole_rows_per_s": best["whole"],
            "ratio": best["chunks"] / best["whole"], "peak_rss_mib": peak, "runs": runs}


def continuous_latency(server, connector, lake, env, rate, seconds):
    """Runs the connector continuously while a writer commits `rate` changes/s in 100-row transactions that
    stamp their commit time; a reader polls the Delta table and measures when each stamp became visible."""
    import deltalake
    import pyarrow

    server.psql("CREATE TABLE heartbeat (id int PRIMARY KEY, stamp double precision, filler int)")
    server.psql("INSERT INTO heartbeat SELECT g, 0, 0 FROM generate_series(1, 100) g")
    process = subprocess.Popen([connector, "sync", "postgres", "--url", server.url, "--tables", "public.heartbeat",
                                "--dest", lake, "--pipeline", "latency", "--continuous"], env=env)
    path = f"{lake}/public/heartbeat"
    deadline = time.time() + 60
    while not os.path.exists(f"{path}/_delta_log") and time.time() < deadline:
        time.sleep(0.1)
    latencies = []
    written = []
    written_lock = threading.Lock()
    stop = threading.Event()

    def writer():
        # One session fed through a pipe: 100-row transactions at `rate` changes/s.
        session = subprocess.Popen([f"{server.bin}/psql", "-h", "127.0.0.1", "-p", str(server.port), "-U", "bench",
                                    "-d", "postgres", "-q"], env=server.env, stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, text=True)
        interval = 100 / rate
        next_at = time.time()
        while not stop.is_set():
            stamp = time.time()
            with written_lock:
                written.append(stamp)
            session.stdin.write(f"UPDATE heartbeat SET stamp = {stamp}, filler = filler + 1;\n")
            session.stdin.flush()
            next_at += interval
            time.sleep(max(0.0, next_at - time.time()))
        session.stdin.close()
        session.wait()

    def reader():
        seen = 0.0
        table = None
        while not stop.is_set():
            try:
                if table is None:
                    table = deltalake.DeltaTable(path)
                else:
                    table.update_incremental()
                # deltalake's query engine reads deletion vectors (`to_pyarrow_table` refuses such tables).
                query = deltalake.QueryBuilder().register("t", table).execute("select max(stamp) as stamp from t")
                stamp = pyarrow.table(query.read_all()).column("stamp")[0].as_py()
                now = time.time()
                if stamp > seen:
                    # Every transaction up to this one became visible now (the table keeps only the newest stamp).
                    with written_lock:
                        visible = [written_stamp for written_stamp in written if written_stamp <= stamp]
                        written[:] = [written_stamp for written_stamp in written if written_stamp > stamp]
                    if seen:
                        latencies.extend(now - written_stamp for written_stamp in visible)
                    seen = stamp
            except Exception:
                pass
            time.sleep(0.02)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    latencies.sort()
    if not latencies:
        return {"error": "no change became visible"}
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"continuous: commit-to-visible p50 {p50:.2f} s, p99 {p99:.2f} s over {len(latencies)} transactions "
          f"(target p99 ≤ 3 s)", flush=True)
    return {"samples": len(latencies), "p50_seconds": p50, "p99_seconds": p99}


if __name__ == "__main__":
    main()
