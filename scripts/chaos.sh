#!/usr/bin/env bash
# Chaos: for each database source and the Stripe emulator, a write load runs while the connector is killed with SIGKILL at random
# moments and restarted at once, TRIALS times (default 100), and its connections to the database or API
# (and, for MySQL, the S3 store) are reset at random moments as often; then the lake must equal the source row by row.
# CI runs the same tests with 10 trials each (scripts/test.sh). Usage: scripts/chaos.sh [TRIALS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/connector-target}"
export CONNECTOR_CHAOS_TRIALS="${1:-100}"
exec cargo nextest run --locked -p connector --test integration --no-capture -E 'test(/_chaos_/)'
