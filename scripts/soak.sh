#!/usr/bin/env bash
# Soak: each database source streams under a steady write load (pgbench; sysbench's oltp_write_only
# transaction) for SECONDS (default 300), then the lake must equal the source row by row and column by column.
# CI runs the same tests for 90 s (longer than every periodic task of the connector). Usage: scripts/soak.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/connector-target}"
export CONNECTOR_SOAK_SECONDS="${1:-300}"
exec cargo nextest run --locked -p connector --test integration --no-capture -E 'test(/_soak_/)'
