#!/usr/bin/env bash
# End-to-end demo on a fresh Debian machine: starts a throwaway PostgreSQL 15 with sample data, syncs it into
# ./lake, changes some rows, syncs again and prints what landed. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/connector-target}"
LAKE="${LAKE:-$PWD/lake}"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  echo "== installing postgresql"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
python3 -c 'import deltalake' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check deltalake pyarrow

echo "== building connector (the first build takes about 10 minutes)"
cargo build --quiet --locked --bin connector
CONNECTOR="$CARGO_TARGET_DIR/debug/connector"

PG_BIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -1)")
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUN_AS=()
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK"; RUN_AS=(runuser -u postgres --); fi
cleanup() {
  "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== starting PostgreSQL (wal_level=logical) on 127.0.0.1:$PORT"
echo demo >"$WORK/password"
"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$WORK/data" -U demo --pwfile="$WORK/password" -A scram-sha-256 >/dev/null
"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=$WORK -c wal_level=logical" start >/dev/null
URL="postgres://demo:demo@127.0.0.1:$PORT/postgres"
psql() { PGPASSWORD=demo "$PG_BIN/psql" -h 127.0.0.1 -p "$PORT" -U demo -d postgres -q -v ON_ERROR_STOP=1 "$@"; }

echo "== sample data: shop.customers (1000 rows), shop.orders (10000 rows)"
psql <<'SQL'
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id bigint PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz DEFAULT now());
CREATE TABLE shop.orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES shop.customers, amount numeric(10,2),
                          status text, items jsonb);
INSERT INTO shop.customers (id, name, email) SELECT g, 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 1000) g;
INSERT INTO shop.orders SELECT g, 1 + g % 1000, round((random() * 500)::numeric, 2), 'new', jsonb_build_object('sku', g % 97)
  FROM generate_series(1, 10000) g;
SQL

rm -rf "$LAKE"
echo "== first sync: snapshot into $LAKE"
"$CONNECTOR" sync postgres --url "$URL" --schemas shop --dest "$LAKE" --pipeline demo

echo "== changing rows: 500 orders shipped, 10 orders deleted, 1 customer added"
psql <<'SQL'
UPDATE shop.orders SET status = 'shipped' WHERE id <= 500;
DELETE FROM shop.orders WHERE id BETWEEN 9991 AND 10000;
INSERT INTO shop.customers (id, name, email) VALUES (1001, 'ada lovelace', 'ada@example.com');
SQL

echo "== second sync: only the changes"
"$CONNECTOR" sync postgres --url "$URL" --schemas shop --dest "$LAKE" --pipeline demo

echo "== what landed"
"$CONNECTOR" status --dest "$LAKE"
python3 - "$LAKE" <<'PY'
import os, sys, deltalake, pyarrow
lake = sys.argv[1]

def rows(path):
    # Through deltalake's query engine, which reads deletion vectors (`to_pyarrow_table` refuses such tables).
    result = deltalake.QueryBuilder().register("t", deltalake.DeltaTable(path)).execute("select * from t")
    return pyarrow.table(result.read_all()).to_pylist()

orders = rows(f"{lake}/shop/orders")
by_status = {}
for row in orders:
    by_status[row["status"]] = by_status.get(row["status"], 0) + 1
print(f"shop.orders: {len(orders)} rows, by status {dict(sorted(by_status.items()))}")
customers = rows(f"{lake}/shop/customers")
newest = max(customers, key=lambda row: row["id"])
print(f"shop.customers: {len(customers)} rows, newest {newest['id']} {newest['name']!r} ({newest['_cdc_op']} at {newest['_cdc_position']})")
sys.stdout.flush()
os._exit(0)  # the deltalake package can abort while its runtime shuts down at interpreter exit
PY
echo "== done: the Delta tables are in $LAKE (read them with Spark, DuckDB, Polars or deltalake)"
