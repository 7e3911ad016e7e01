#!/usr/bin/env bash
# Runs every check and test on a fresh Debian machine: installs what is missing (PostgreSQL 15, MariaDB
# 10.11, the Python deltalake reader), then formatting, lints and the whole test suite against real servers;
# then the MySQL tests again against MySQL (Debian unstable's, see scripts/mysql-from-debian.sh), unless
# CONNECTOR_TEST_MYSQL_URL already points the suite at a server of the user's.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds live outside the checkout so a fresh clone reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/connector-target}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-0}"

# A long-lived cache fills the disk (the linker then dies with a bus error): when less than 20 GiB is free,
# drop incremental state and test binaries older than a day; cargo rebuilds what it needs.
prune_build_cache() {
  local free_kib
  free_kib=$(df -Pk "$(dirname "$CARGO_TARGET_DIR")" | awk 'NR == 2 { print $4 }')
  if [ "${free_kib:-0}" -lt $((20 * 1024 * 1024)) ] && [ -d "$CARGO_TARGET_DIR" ]; then
    echo "less than 20 GiB free: pruning $CARGO_TARGET_DIR"
    rm -rf "$CARGO_TARGET_DIR"/debug/incremental
    find "$CARGO_TARGET_DIR"/debug/deps -maxdepth 1 -type f -executable -mtime +0 -delete 2>/dev/null || true
  fi
}
mkdir -p "$(dirname "$CARGO_TARGET_DIR")"
prune_build_cache

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v mariadb >/dev/null || missing+=(mariadb-client)
# libfuzzer-sys compiles libFuzzer (the fuzz step below).
command -v c++ >/dev/null || missing+=(g++)
# The files tests compress what Python writes with the usual tools.
command -v zstd >/dev/null || missing+=(zstd)
command -v bzip2 >/dev/null || missing+=(bzip2)
command -v xz >/dev/null || missing+=(xz-utils)
# The Kafka source builds librdkafka with OpenSSL (TLS, SASL SCRAM).
command -v pkg-config >/dev/null || missing+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
# The web console's tests drive Debian's Chromium through chromedriver.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  as_root apt-get update -qq
  # The packages' own services are not needed (tests start their own servers); don't let them start.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# grpcio-tools brings protoc (and Google's well-known .proto files) for the Protobuf test's independent writer.
python3 -c 'import deltalake, polars, pyarrow, boto3, moto, fastavro, azure.storage.blob, snappy, kafka, grpc_tools, google.protobuf' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check deltalake polars pyarrow boto3 'moto[server]' fastavro azure-storage-blob python-snappy kafka-python grpcio-tools protobuf
# Azure Blob tests run against Azurite, Microsoft's emulator, from npm (installed once into the cache).
azurite_dir="$HOME/.cache/connector-tools/azurite"
[ -x "$azurite_dir/node_modules/.bin/azurite-blob" ] ||
  npm install --prefix "$azurite_dir" --no-audit --no-fund --silent azurite@3
export PATH="$azurite_dir/node_modules/.bin:$PATH"
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
# The Kafka tests' broker: tansu, a Kafka-compatible broker in Rust (no JVM, no Docker), with in-memory storage
# (dynostore) and SQLite storage (libsql: SCRAM users, retention), built once into the cache (about 30 minutes on a
# fresh 2-core machine). CONNECTOR_TEST_KAFKA_BROKERS points the tests at another broker instead.
tansu_dir="$HOME/.cache/connector-tools/tansu-with-sqlite"
if [ -z "${CONNECTOR_TEST_KAFKA_BROKERS:-}" ] && [ ! -x "$tansu_dir/bin/tansu" ]; then
  cargo install --locked tansu --version 0.6.0 --features dynostore,libsql --root "$tansu_dir" \
    --target-dir "$HOME/.cache/connector-tools/tansu-build"
  rm -rf "$HOME/.cache/connector-tools/tansu-build"
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked "$@"

# The Kubernetes manifests (deploy/kubernetes) against the Kubernetes schemas, offline (kubernetes-validate from
# PyPI, installed once into the cache), and their pipelines.toml by the connector the tests just built (`run --check`).
echo "validating the Kubernetes manifests (deploy/validate.sh)"
deploy/validate.sh

# The MySQL tests against MySQL as well: its GTID sets, binary JSON and snapshot lock differ from MariaDB's.
# Debian stable has no MySQL, so this fetches unstable's packages once (into the cache); if they cannot be
# fetched or started (no network to the Debian mirror), it says so and the run stands on MariaDB alone. Once the
# server is up, its tests must pass.
if [ -z "${CONNECTOR_TEST_MYSQL_URL:-}" ]; then
  mysql_dir="$HOME/.cache/connector-mysql"
  free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  primary_port=$(free_port)
  replica_port=$(free_port)
  rm -rf "$mysql_dir/data" "$mysql_dir/replica"
  trap 'scripts/mysql-from-debian.sh stop "$mysql_dir" >/dev/null 2>&1 || true
    MYSQL_DATA_DIR="$mysql_dir/replica" scripts/mysql-from-debian.sh stop "$mysql_dir" >/dev/null 2>&1 || true' EXIT
  # A second server for the failover test, which makes it a replica of the first.
  if scripts/mysql-from-debian.sh start "$mysql_dir" "$primary_port" > "$mysql_dir.log" 2>&1 &&
    MYSQL_DATA_DIR="$mysql_dir/replica" scripts/mysql-from-debian.sh start "$mysql_dir" "$replica_port" \
      --server-id=2 --log-bin=replica-bin >> "$mysql_dir.log" 2>&1; then
    echo "MySQL tests against $(grep -m1 '^MySQL' "$mysql_dir.log")"
    CONNECTOR_TEST_MYSQL_URL="mysql://connector:connector@127.0.0.1:$primary_port/connector" \
    CONNECTOR_TEST_MYSQL_REPLICA_URL="mysql://connector:connector@127.0.0.1:$replica_port/connector" \
      cargo nextest run --workspace --locked --run-ignored all -E 'test(/mysql|mariadb/)' "$@"
  else
    echo "warning: no MySQL server could be fetched or started (see $mysql_dir.log): MySQL tests ran against MariaDB only"
  fi
fi

# Every fuzz target for 30 s from its committed seeds (scripts/fuzz.sh: a panic or an allocation over 256 MiB
# fails the run). The first build of the targets takes about 17 minutes on a fresh 2-core machine, later ones
# about 2 (its own target directory, $HOME/.cache/connector-fuzz-target). CONNECTOR_SKIP_FUZZ=1 skips it.
if [ -z "${CONNECTOR_SKIP_FUZZ:-}" ]; then
  scripts/fuzz.sh 30
fi
