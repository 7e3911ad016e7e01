#!/usr/bin/env bash
# Runs every check and test on a fresh Debian machine: installs what is missing (PostgreSQL 15, MariaDB
# 10.11, the Python deltalake reader), then formatting, lints and the whole test suite against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds live outside the checkout so a fresh clone reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/connector-target}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-0}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v mariadb >/dev/null || missing+=(mariadb-client)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  as_root apt-get update -qq
  # The packages' own services are not needed (tests start their own servers); don't let them start.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -c 'import deltalake, pyarrow, boto3, moto' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check deltalake pyarrow boto3 'moto[server]'
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked "$@"
