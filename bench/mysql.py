#!/usr/bin/env python3
"""MySQL/MariaDB connector benchmark: snapshot and binlog throughput beside the server's own tools, in one run.

Starts a throwaway MariaDB (row binlog, full metadata) in a temp dir, has sysbench prepare its `sbtest` tables,
then prints:
  - snapshot: rows/s, MB/s and peak RSS of `connector sync mysql` copying every sbtest table, beside
    `mariadb-dump --quick --single-transaction` of the same tables to /dev/null;
  - changes: changes/s and peak RSS of `connector sync mysql --once` applying what a sysbench `oltp_write_only`
    run wrote, beside `mariadb-binlog --read-from-remote-server` reading the same binlog range to /dev/null.

Usage: python3 bench/mysql.py [--tables 4] [--table-size 1000000] [--events 50000] [--rounds 3] [--server mysql]
Needs the `mariadb-server`, `mariadb-client` and `sysbench` Debian packages; builds the connector in release mode.
`--server mysql` measures Debian unstable's MySQL instead (scripts/mysql-from-debian.sh), beside its own
`mysqldump` and `mysqlbinlog`.
"""

import argparse
import statistics
import json
import os
import shutil
import subprocess
import tempfile
import time

from measure import connector_binary, free_port, measured, report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Server:
    """A MariaDB server in a temp dir with the binlog the connector needs and a `bench` account."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="connector-bench-mariadb-")
        self.port = free_port()
        user = ["--user=root"] if os.geteuid() == 0 else []
        data = f"{self.dir}/data"
        common = ["--no-defaults", f"--datadir={data}", f"--tmpdir={self.dir}", "--innodb-buffer-pool-size=1G",
                  "--innodb-log-file-size=512M", "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0"]
        with open(f"{self.dir}/bootstrap.sql", "w") as f:
            f.write("FLUSH PRIVILEGES;\n"
                    "CREATE USER 'bench'@'127.0.0.1' IDENTIFIED BY 'bench';\n"
                    "GRANT ALL PRIVILEGES ON *.* TO 'bench'@'127.0.0.1';\n")
        subprocess.run(["mariadb-install-db"] + common[:1] + user + common[1:] +
                       ["--skip-test-db", "--skip-name-resolve", f"--extra-file={self.dir}/bootstrap.sql"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.process = subprocess.Popen(
            ["mariadbd"] + common[:1] + user + common[1:] +
            [f"--socket={self.dir}/sock", f"--pid-file={self.dir}/pid", "--bind-address=127.0.0.1",
             f"--port={self.port}", "--skip-name-resolve", "--character-set-server=utf8mb4",
             "--log-bin=mariadb-bin", "--binlog-format=ROW", "--binlog-row-image=FULL",
             "--binlog-row-metadata=FULL", "--server-id=1", "--max-connections=200"],
            stdout=subprocess.DEVNULL, stderr=open(f"{self.dir}/server.log", "w"))
        self.client = ["mariadb", "-h", "127.0.0.1", "-P", str(self.port), "-ubench", "-pbench"]
        deadline = time.monotonic() + 60
        while subprocess.run(self.client + ["-e", "SELECT 1"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL).returncode != 0:
            if time.monotonic() > deadline:
                raise SystemExit(f"MariaDB did not start; see {self.dir}/server.log")
            time.sleep(0.2)
        self.url = f"mysql://bench:bench@127.0.0.1:{self.port}"

    flavor = "MariaDB"
    dump_tool = "mariadb-dump"
    dump_options = []
    # Prefixed to the data-size query: MySQL caches table statistics in information_schema for a day.
    fresh_statistics = ""
    binlog_tool = "mariadb-binlog"
    status_statement = "SHOW MASTER STATUS"

    def sql(self, statement):
        out = subprocess.run(self.client + ["-N", "-B", "-e", statement], check=True, stdout=subprocess.PIPE)
        return out.stdout.decode().strip()

    def login(self):
        """The client options that log in as `bench`."""
        return ["-h", "127.0.0.1", "-P", str(self.port), "-ubench", "-pbench"]

    def position(self):
        file, offset = self.sql(self.status_statement).split()[:2]
        return file, int(offset)

    def sysbench(self, workload, *args):
        subprocess.run(["sysbench", workload, "--db-driver=mysql", "--mysql-host=127.0.0.1",
                        f"--mysql-port={self.port}", "--mysql-user=bench", "--mysql-password=bench",
                        "--mysql-db=sbtest"] + list(args), check=True, stdout=subprocess.DEVNULL)

    def settle(self, timeout=120):
        """Waits until InnoDB has flushed the pages a load dirtied (or stops making progress: purge keeps a few
        dirty), so its background flushing does not compete with what is measured next."""
        self.sql("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        deadline = time.monotonic() + timeout
        dirty = lambda: int(self.sql("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'").split()[1])
        previous = dirty()
        while previous > 100 and time.monotonic() < deadline:
            time.sleep(2)
            now = dirty()
            if now >= previous:
                break
            previous = now

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class MySqlServer(Server):
    """Debian unstable's MySQL (scripts/mysql-from-debian.sh) in a temp dir, with a `bench` account; its own
    `mysqldump` and `mysqlbinlog` are the limits. The tools connect without TLS, as the connector does."""

    flavor = "MySQL"
    # No GTID_PURGED statement in the dump (and no warning that a partial dump has one).
    dump_options = ["--set-gtid-purged=OFF"]
    fresh_statistics = "SET SESSION information_schema_stats_expiry = 0; "
    status_statement = "SHOW BINARY LOG STATUS"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="connector-bench-mysql-")
        self.port = free_port()
        self.script = os.path.join(ROOT, "scripts", "mysql-from-debian.sh")
        subprocess.run([self.script, "start", self.dir, str(self.port), "--innodb-redo-log-capacity=1G",
                        "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0", "--max-connections=200"],
                       check=True, stdout=subprocess.DEVNULL)
        root = [f"{self.dir}/bin/mysql", "-h", "127.0.0.1", "-P", str(self.port), "-uroot"]
        subprocess.run(root + ["-e", "CREATE USER 'bench'@'%' IDENTIFIED BY 'bench'; "
                               "GRANT ALL PRIVILEGES ON *.* TO 'bench'@'%'"], check=True)
        os.environ["MYSQL_PWD"] = "bench"
        self.dump_tool = f"{self.dir}/bin/mysqldump"
        self.binlog_tool = f"{self.dir}/bin/mysqlbinlog"
        self.client = [f"{self.dir}/bin/mysql"] + self.login()
        self.url = f"mysql://bench:bench@127.0.0.1:{self.port}"

    def login(self):
        # The password through MYSQL_PWD (set in __init__), which MySQL's tools read without a warning per call;
        # caching_sha2_password without TLS: the client fetches the server's key for the first login.
        return ["-h", "127.0.0.1", "-P", str(self.port), "-ubench", "--ssl-mode=DISABLED", "--get-server-public-key"]

    def stop(self):
        subprocess.run([self.script, "stop", self.dir], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while os.path.exists(f"{self.dir}/data.pid") and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)


def applied_changes(report_text):
    """The sum of the `N changes` the connector reports per table."""
    total = 0
    for line in report_text.splitlines():
        if " changes" in line:
            total += int(line.split(" snapshot rows, ")[1].split(" changes")[0])
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=4)
    parser.add_argument("--table-size", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=50_000, help="sysbench oltp_write_only transactions")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side; their medians are compared")
    parser.add_argument("--baseline", help="another connector binary (an earlier build) measured in the same rounds")
    parser.add_argument("--baseline-args", default="",
                        help="flags added to the baseline's syncs, e.g. --baseline-args=--whole-copies with --baseline "
                             "set to this build: chunked copies beside whole ones")
    parser.add_argument("--connector-args", default="",
                        help="flags added to this build's syncs, e.g. --connector-args='--copy-chunk-rows 1000000'")
    parser.add_argument("--server", choices=["mariadb", "mysql"], default="mariadb",
                        help="the packaged MariaDB (default) or Debian unstable's MySQL")
    parser.add_argument("--connector", help="a connector binary built before (e.g. a copy of an earlier release build) instead of building this checkout")
    args = parser.parse_args()

    connector = connector_binary(args.connector)
    server = MySqlServer() if args.server == "mysql" else Server()
    lake = tempfile.mkdtemp(prefix="connector-bench-lake-")
    env = dict(os.environ, CONNECTOR_LOG="warn")
    try:
        rows = args.tables * args.table_size
        print(f"== sysbench: {args.tables} sbtest tables of {args.table_size} rows ({rows} rows)", flush=True)
        server.sql("CREATE DATABASE sbtest")
        server.sysbench("oltp_write_only", f"--tables={args.tables}", f"--table-size={args.table_size}",
                        f"--threads={min(args.tables, 4)}", "prepare")
        data_bytes = int(server.sql(server.fresh_statistics + "SELECT SUM(DATA_LENGTH) FROM information_schema.TABLES "
                                    "WHERE TABLE_SCHEMA = 'sbtest'"))
        server.settle()

        # The limit: the server's own dump of the same tables, streamed row by row and thrown away. Each side runs
        # `--rounds` times, alternating, and the medians are compared, so one slow moment of a shared machine does
        # not decide the ratio.
        dump = [server.dump_tool] + server.login() + server.dump_options + ["--quick", "--single-transaction", "sbtest"]
        sync = [connector, "sync", "mysql", "--url", server.url, "--databases", "sbtest", "--dest", lake,
                "--pipeline", "bench"]
        baseline_tail = sync[sync.index(lake) + 1:]
        sync += args.connector_args.split()
        baseline_lake = f"{lake}.baseline"
        baseline_sync = ([args.baseline] + sync[1:sync.index(lake)] + [baseline_lake] + baseline_tail
                         + args.baseline_args.split())
        dump_runs, snapshot_runs, baseline_runs = [], [], []
        for round_number in range(args.rounds):
            shutil.rmtree(lake, ignore_errors=True)
            os.makedirs(lake)
            dump_runs.append(measured(dump)[0])
            snapshot_runs.append(measured(sync, env=env))
            print(f"   round {round_number + 1}: dump {rows / dump_runs[-1]:,.0f} rows/s, connector "
                  f"{rows / snapshot_runs[-1][0]:,.0f} rows/s, {snapshot_runs[-1][1]:.0f} MiB", flush=True)
            if args.baseline:
                shutil.rmtree(baseline_lake, ignore_errors=True)
                os.makedirs(baseline_lake)
                baseline_runs.append(measured(baseline_sync, env=env))
                print(f"            baseline {rows / baseline_runs[-1][0]:,.0f} rows/s, "
                      f"{baseline_runs[-1][1]:.0f} MiB", flush=True)
        dump_seconds = statistics.median(dump_runs)
        snapshot_seconds = statistics.median(seconds for seconds, _ in snapshot_runs)
        snapshot_rss = max(rss for _, rss in snapshot_runs)
        # The changes runs each start from this snapshot.
        snapshot_lake = f"{lake}.snapshot"
        shutil.copytree(lake, snapshot_lake)
        results = {"snapshot": {
            "rows": rows, "data_mib": data_bytes / 2**20, "rounds": args.rounds,
            "connector_rows_per_s": rows / snapshot_seconds, "connector_mb_per_s": data_bytes / snapshot_seconds / 1e6,
            "dump_rows_per_s": rows / dump_seconds, "dump_mb_per_s": data_bytes / dump_seconds / 1e6,
            "ratio": dump_seconds / snapshot_seconds, "peak_rss_mib": snapshot_rss}}
        print(json.dumps(results["snapshot"]), flush=True)
        report("snapshot", rows / snapshot_seconds, rows / dump_seconds, "rows/s", snapshot_rss,
               f"{server.dump_tool.split('/')[-1]} --quick to /dev/null", 1.0)
        if baseline_runs:
            report("snapshot, baseline", rows / statistics.median(seconds for seconds, _ in baseline_runs),
                   rows / dump_seconds, "rows/s", max(rss for _, rss in baseline_runs),
                   f"{server.dump_tool.split('/')[-1]} --quick to /dev/null", 1.0)
        baseline_snapshot = f"{lake}.baseline-snapshot"
        if args.baseline:
            shutil.copytree(baseline_lake, baseline_snapshot)

        print(f"== sysbench oltp_write_only: {args.events} transactions", flush=True)
        start_file, start_offset = server.position()
        server.sysbench("oltp_write_only", f"--tables={args.tables}", f"--table-size={args.table_size}",
                        "--threads=4", "--time=0", f"--events={args.events}", "--rand-type=uniform", "run")
        end_file, end_offset = server.position()
        server.settle()
        binlog_bytes = end_offset - start_offset if start_file == end_file else None
        # The limit: the server's own binlog reader fetching the same range over the replication protocol.
        read_binlog = [server.binlog_tool, "--read-from-remote-server"] + server.login() + [
            f"--start-position={start_offset}", start_file]
        read_binlog += [f"--stop-position={end_offset}"] if start_file == end_file else ["--to-last-log"]
        binlog_runs, once_runs = [], []
        report_path = f"{lake}.report"
        for round_number in range(args.rounds):
            shutil.rmtree(lake, ignore_errors=True)
            shutil.copytree(snapshot_lake, lake)
            binlog_runs.append(measured(read_binlog)[0])
            once_runs.append(measured(sync, env=env, stdout_path=report_path))
            with open(report_path) as f:
                changes = applied_changes(f.read())
            print(f"   round {round_number + 1}: binlog reader {changes / binlog_runs[-1]:,.0f} changes/s, connector "
                  f"{changes / once_runs[-1][0]:,.0f} changes/s, {once_runs[-1][1]:.0f} MiB", flush=True)
            if args.baseline:
                shutil.rmtree(baseline_lake, ignore_errors=True)
                shutil.copytree(baseline_snapshot, baseline_lake)
                baseline_runs.append(measured(baseline_sync, env=env))
                print(f"            baseline {changes / baseline_runs[-1][0]:,.0f} changes/s, "
                      f"{baseline_runs[-1][1]:.0f} MiB", flush=True)
        os.remove(report_path)
        binlog_seconds = statistics.median(binlog_runs)
        once_seconds = statistics.median(seconds for seconds, _ in once_runs)
        once_rss = max(rss for _, rss in once_runs)
        results["changes"] = {"changes": changes, "binlog_mib": (binlog_bytes or 0) / 2**20,
                              "connector_changes_per_s": changes / once_seconds,
                              "binlog_reader_changes_per_s": changes / binlog_seconds,
                              "ratio": binlog_seconds / once_seconds, "peak_rss_mib": once_rss}
        print(json.dumps(results["changes"]), flush=True)
        report("changes", changes / once_seconds, changes / binlog_seconds, "changes/s", once_rss,
               f"{server.binlog_tool.split('/')[-1]} --read-from-remote-server to /dev/null", 0.5)
        if args.baseline:
            baseline_changes = baseline_runs[args.rounds:]
            report("changes, baseline", changes / statistics.median(seconds for seconds, _ in baseline_changes),
                   changes / binlog_seconds, "changes/s", max(rss for _, rss in baseline_changes),
                   f"{server.binlog_tool.split('/')[-1]} --read-from-remote-server to /dev/null", 0.5)
        print(json.dumps(results))
    finally:
        server.stop()
        shutil.rmtree(lake, ignore_errors=True)
        for suffix in (".snapshot", ".baseline", ".baseline-snapshot"):
            shutil.rmtree(f"{lake}{suffix}", ignore_errors=True)


if __name__ == "__main__":
    main()
