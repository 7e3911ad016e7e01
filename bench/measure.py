"""Measuring a command the way every connector benchmark reports it: wall time and the peak RSS of the process
and its children, and one line comparing the connector with the physical limit measured in the same run."""

import os
import socket
import subprocess
import sys

WRAPPER = ("import os, resource, subprocess, sys, time\n"
           "path = os.environ.pop('MEASURED_STDOUT', '')\n"
           "out = open(path, 'w') if path else subprocess.DEVNULL\n"
           "start = time.monotonic()\n"
           "code = subprocess.call(sys.argv[1:], stdout=out)\n"
           "elapsed = time.monotonic() - start\n"
           "print(elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, code)\n")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/connector-target"))


def connector_binary(prebuilt=None):
    """The connector to measure: `prebuilt` (a binary built before, given as --connector) if set, else a release
    build of this checkout (the build shares the cache of the tests, $CARGO_TARGET_DIR)."""
    if prebuilt is not None:
        return prebuilt
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "--bin", "connector"], cwd=ROOT, check=True)
    return f"{TARGET}/release/connector"


def free_port():
    """A loopback port nothing listens on, for a throwaway server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measured(command, env=None, stdout_path=None):
    """Runs `command` in a fresh process; returns (seconds, peak RSS in MiB of that process and its children).
    The command's standard output goes to `stdout_path` when given, else nowhere."""
    env = dict(env if env is not None else os.environ)
    # Files written before (a data load, an earlier run's output) are flushed first, so their writeback is not
    # charged to this command.
    os.sync()
    if stdout_path:
        env["MEASURED_STDOUT"] = stdout_path
    out = subprocess.run([sys.executable, "-c", WRAPPER] + command, env=env, check=True, stdout=subprocess.PIPE)
    seconds, rss, code = out.stdout.decode().split()
    if int(code) != 0:
        raise SystemExit(f"{command[0]} failed with exit code {code}")
    return float(seconds), float(rss)


def report(name, ours, limit, unit, rss, limit_name, target):
    print(f"{name}: connector {ours:,.0f} {unit} | limit ({limit_name}) {limit:,.0f} {unit} | "
          f"ratio {ours / limit:.2f} (target ≥ {target}) | peak RSS {rss:.0f} MiB (target ≤ 512 MiB)", flush=True)
