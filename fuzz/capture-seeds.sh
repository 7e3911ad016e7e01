#!/usr/bin/env bash
# Captures the fuzz targets' seed corpora from real servers: PostgreSQL 15's pgoutput messages (binary mode, as
# the connector asks for them) and MariaDB's binlog files (row events with full metadata, GTID events), for
# a table holding every type the connectors decode. Run it again after adding a type; it rewrites the
# `seed-*` files of fuzz/corpus/ and leaves the rest (inputs that crashed once, kept as regression seeds).
#
# Needs the servers the integration tests use (PostgreSQL's initdb/postgres, mariadb-install-db/mariadbd); run
# as root it runs them as the `postgres` and `mysql` accounts, as the tests do.
set -euo pipefail
cd "$(dirname "$0")"
corpus=$PWD/corpus
work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
  [ -f "$work/pg/postmaster.pid" ] && as postgres "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1
  if [ -f "$work/run/mariadb.pid" ]; then
    kill "$(cat "$work/run/mariadb.pid")" 2>/dev/null
    for _ in $(seq 50); do [ -f "$work/run/mariadb.pid" ] || break; sleep 0.2; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
as() { local user=$1; shift; if [ "$(id -u)" = 0 ]; then setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --clear-groups -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"

# PostgreSQL ------------------------------------------------------------------------------------------------
pg_bin=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as postgres "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust --no-sync >/dev/null
as postgres "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start \
  -o "-c wal_level=logical -c listen_addresses='' -c unix_socket_directories=$work -p 5999" >/dev/null
psql() { as postgres "$pg_bin/psql" -h "$work" -p 5999 -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
psql >/dev/null <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE address AS (street text, number int4, tags text[]);
CREATE TABLE every_type (
  id int8 PRIMARY KEY, b bool, i2 int2, i4 int4, o oid, f4 float4, f8 float8, n12 numeric(12,2),
  n numeric, n38 numeric(38,10), m money, t text, vc varchar(20), bp char(4), nm name, ch "char", e mood,
  j json, jb jsonb, jp jsonpath, x xml, by bytea, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz,
  iv interval, u uuid, ip inet, net cidr, mac macaddr, mac8 macaddr8, bt bit(8), vb varbit, lsn pg_lsn,
  tsv tsvector, pt point, ln line, ls lseg, bx box, pa path, pg polygon, ci circle, ia int4[], ta text[][],
  na numeric[], da date[], r4 int4range, rn numrange, rt tstzrange, rd daterange, ad address, aa address[]
);
CREATE TABLE wide (id int4 PRIMARY KEY, big text);
CREATE PUBLICATION fuzz FOR ALL TABLES;
SELECT pg_create_logical_replication_slot('fuzz', 'pgoutput');
INSERT INTO every_type VALUES
  (1, true, -32768, 2147483647, 4294967295, 'NaN', '-Infinity', -1234567890.12, '12345678901234567890.000000000001',
   '-0.0000000001', '-92233720368547758.08', 'héllo wörld', 'varchar', 'ab', 'name', 'x', 'happy',
   '{"a": [1, 2.5, null]}', '{"b": {"c": true}, "a": "\u00e9"}', '$.a[*] ? (@ > 1)', '<a>x</a>', '\x00ff10',
   '4713-01-01 BC', '23:59:59.999999', '12:00+05:30', '294276-12-31 23:59:59.999999', '1970-01-01 00:00:00+00',
   '-178000000 years 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2001:db8::1/64', '10.0.0.0/8',
   '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', B'10101010', B'1', '16/B374D848', 'a fat:2A cat:1,3 sat',
   '(1.5,-2)', '{1,2,3}', '[(0,0),(1,1)]', '((0,0),(1,1))', '[(0,0),(1,1),(2,0)]', '((0,0),(1,1),(2,0))',
   '<(1,1),5>', '{1,NULL,3}', '{{"a","b"},{"c",NULL}}', '{1.5,NaN}', '{2024-02-29,infinity}', '[1,10)',
   '(,5.5]', '[2024-01-01 00:00+00,infinity)', 'empty', '("Main St",1,"{x,y}")', '{"(a,2,{})",NULL}'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, false, 0, 0, 0, 'Infinity', 0.1, 0, 'NaN', 'NaN', 0, '', '', '', '', '', 'sad', '[]', '[]', '$',
   '<a/>', '', 'infinity', '00:00', '00:00-14:59', '-infinity', 'infinity', '0', '00000000-0000-0000-0000-000000000000',
   '0.0.0.0', '::/0', '00:00:00:00:00:00', '00:00:00:00:00:00:00:00', B'00000000', B'', '0/0', '', '(0,0)',
   '{0,1,0}', '[(0,0),(0,0)]', '((0,0),(0,0))', '((0,0))', '((0,0))', '<(0,0),0>', '{}', '{}', '{}', '{}',
   'empty', 'empty', 'empty', '[2024-01-01,2024-01-02)', '(,,)', '{}');
INSERT INTO wide VALUES (1, repeat('toast me ', 2000));
UPDATE every_type SET id = 10, t = 'key changed' WHERE id = 1;
UPDATE wide SET id = 2 WHERE id = 1;
ALTER TABLE every_type REPLICA IDENTITY FULL;
UPDATE every_type SET f8 = 1e308 WHERE id = 3;
DELETE FROM every_type WHERE id = 2;
TRUNCATE wide;
SQL
psql -At -c "SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('fuzz', NULL, NULL,
  'proto_version', '1', 'publication_names', 'fuzz', 'binary', 'true')" > "$work/pgoutput.hex"
psql -At -c "SELECT json_agg(json_build_object('oid', t.oid::int8, 'kind', t.typtype, 'name', t.typname,
  'element', t.typelem::int8, 'subtype', r.rngsubtype::int8,
  'fields', (SELECT json_agg(a.atttypid::int8 ORDER BY a.attnum) FROM pg_attribute a
             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)))
  FROM pg_type t LEFT JOIN pg_range r ON r.rngtypid = t.oid" > "$work/pg_types.json"
python3 - "$work" "$corpus" <<'PY'
import json, struct, sys, pathlib
work, corpus = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
messages = [bytes.fromhex(line) for line in (work / "pgoutput.hex").read_text().split()]
types = {t["oid"]: t for t in json.loads((work / "pg_types.json").read_text())}
BUILTIN = {16, 17, 18, 19, 25, 114, 142, 1042, 1043, 20, 21, 23, 26, 600, 601, 602, 603, 604, 628, 650, 869, 700,
           701, 718, 774, 790, 829, 1082, 1083, 1114, 1184, 1186, 1266, 1560, 1562, 1700, 2950, 3220, 3614, 3802, 4072}

def type_tag(oid, typmod=-1, depth=0):
    """The postgres_codec target's description of a type (see fuzz_targets/postgres_codec.rs)."""
    t = types[oid]
    if oid in BUILTIN or depth > 4:
        return b"\0" + struct.pack(">Ii", oid, typmod)
    if t["kind"] == "e":
        return b"\0" + struct.pack(">Ii", 25, -1)
    if t["kind"] == "r":
        return b"\2" + type_tag(t["subtype"], -1, depth + 1)
    if t["kind"] == "c":
        fields = t["fields"] or []
        return b"\3" + bytes([len(fields)]) + b"".join(type_tag(f, -1, depth + 1) for f in fields)
    if t["element"] and t["name"].startswith("_"):
        return b"\1\1" + type_tag(t["element"], typmod, depth + 1)
    return b"\0" + struct.pack(">Ii", oid, typmod)

for old in list(corpus.glob("pgoutput/seed-*")) + list(corpus.glob("postgres_codec/seed-*")):
    old.unlink()
(corpus / "pgoutput").mkdir(parents=True, exist_ok=True)
(corpus / "postgres_codec").mkdir(parents=True, exist_ok=True)
frame = lambda message: struct.pack(">I", len(message)) + message
relations, transaction, count, values = {}, [], 0, set()
for message in messages:
    transaction.append(message)
    tag = message[:1]
    if tag == b"R":
        oid = struct.unpack(">I", message[1:5])[0]
        rest = message[5:]
        rest = rest[rest.index(0) + 1:]
        rest = rest[rest.index(0) + 1:]
        ncols = struct.unpack(">h", rest[1:3])[0]
        rest, cols = rest[3:], []
        for _ in range(ncols):
            rest = rest[1:]
            rest = rest[rest.index(0) + 1:]
            cols.append(struct.unpack(">Ii", rest[:8]))
            rest = rest[8:]
        relations[oid] = cols
    if tag in (b"I", b"U", b"D"):
        relation = struct.unpack(">I", message[1:5])[0]
        rest = message[5:]
        while rest and rest[:1] in (b"N", b"K", b"O"):
            ncols = struct.unpack(">h", rest[1:3])[0]
            rest = rest[3:]
            for column in range(ncols):
                kind, rest = rest[:1], rest[1:]
                if kind in (b"b", b"t"):
                    length = struct.unpack(">i", rest[:4])[0]
                    value, rest = rest[4:4 + length], rest[4 + length:]
                    oid, typmod = relations[relation][column]
                    values.add(type_tag(oid, typmod) + value[:512])
    if tag == b"C":
        count += 1
        (corpus / "pgoutput" / f"seed-transaction-{count}").write_bytes(b"".join(frame(m) for m in transaction))
        transaction = []
for index, value in enumerate(sorted(values)):
    (corpus / "postgres_codec" / f"seed-value-{index}").write_bytes(value)
print(f"pgoutput: {count} transactions of {len(messages)} messages; postgres_codec: {len(values)} values")
PY
as postgres "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null

# MariaDB ---------------------------------------------------------------------------------------------------
mkdir -p "$work/mariadb" "$work/run"
[ "$(id -u)" = 0 ] && chown mysql "$work/mariadb" "$work/run"
mysql_user=(); [ "$(id -u)" = 0 ] && mysql_user=(--user=mysql)
mariadb-install-db --no-defaults --datadir="$work/mariadb" "${mysql_user[@]}" --skip-test-db >/dev/null

mariadbd --no-defaults --datadir="$work/mariadb" "${mysql_user[@]}" --tmpdir="$work/run" --skip-networking \
  --socket="$work/run/mariadb.sock" --pid-file="$work/run/mariadb.pid" --log-bin=fuzz --server-id=7 \
  --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL --binlog-checksum=NONE \
  --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci > "$work/mariadb.log" 2>&1 &
for _ in $(seq 150); do [ -S "$work/run/mariadb.sock" ] && break; sleep 0.2; done
mariadb() { command mariadb --no-defaults --socket="$work/run/mariadb.sock" -uroot "$@"; }
mariadb <<'SQL'
CREATE DATABASE shop;
USE shop;
FLUSH BINARY LOGS;
CREATE TABLE every_type (
  id bigint PRIMARY KEY, ti tinyint, tu tinyint unsigned, si smallint, mi mediumint, mu mediumint unsigned,
  i int, iu int unsigned, bi bigint, bu bigint unsigned, f float, d double, dc decimal(20,6), dl decimal(65,30),
  b1 bit(1), b64 bit(64), y year, dt date, tm time(6), dtm datetime(6), ts timestamp(3) NULL,
  c char(10), vc varchar(300), l1 varchar(10) CHARACTER SET latin1, bin binary(4), vb varbinary(10),
  tt tinytext, tx text, mt mediumtext, bl blob, e enum('a','b','c'), s set('x','y','z'), j json,
  g geometry, u uuid, i4 inet4, i6 inet6
);
INSERT INTO every_type VALUES
  (1, -128, 255, -32768, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808,
   18446744073709551615, 3.5, -1.7976931348623157e308, -12345678901234.123456,
   '12345678901234567890123456789012345.123456789012345678901234567890', 1, b'1010101010101010', 2155,
   '9999-12-31', '-838:59:59.000000', '1000-01-01 00:00:00.000001', '2038-01-19 03:14:07.999', 'ab', 'héllo ✓',
   'caf\xe9', x'00000100', x'00ff', 'tiny', 'text', 'medium', x'deadbeef', 'b', 'x,z', '{"a": [1, "b", null]}',
   ST_GeomFromText('POINT(1 2)'), 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '10.0.0.1', '2001:db8::1'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '0000-00-00', '00:00:00', '0000-00-00 00:00:00', NULL,
   '', '', '', x'', x'', '', '', '', x'', 'a', '', '[]', NULL, NULL, NULL, NULL);
UPDATE every_type SET id = 10, vc = 'key changed' WHERE id = 1;
DELETE FROM every_type WHERE id = 2;
BEGIN; UPDATE every_type SET d = 0.5 WHERE id = 3; UPDATE every_type SET tm = '12:00' WHERE id = 10; COMMIT;
FLUSH BINARY LOGS;
CREATE TABLE small (id int PRIMARY KEY, note varchar(20));
INSERT INTO small VALUES (1, 'one'), (2, 'two');
ALTER TABLE small ADD COLUMN extra int DEFAULT 7;
UPDATE small SET extra = 8 WHERE id = 1;
TRUNCATE small;
FLUSH BINARY LOGS;
SQL
for old in "$corpus"/mysql_binlog/seed-*; do [ -e "$old" ] && rm "$old"; done
mkdir -p "$corpus/mysql_binlog"
count=0
for file in "$work"/mariadb/fuzz.0*; do
  count=$((count + 1))
  # The last file is the empty one the final flush opened.
  [ "$(stat -c %s "$file")" -gt 400 ] && cp "$file" "$corpus/mysql_binlog/seed-mariadb-$(basename "$file")"
done
echo "mysql_binlog: $(ls "$corpus"/mysql_binlog/seed-* | wc -l) MariaDB binlog files"

# MySQL -----------------------------------------------------------------------------------------------------
# MySQL's binlogs differ from MariaDB's (GTID events, binary JSON, transaction payloads): from the MySQL the
# test script runs (scripts/mysql-from-debian.sh, cached in ~/.cache/connector-mysql), when it can start.
mysql_dir="$HOME/.cache/connector-mysql"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export MYSQL_DATA_DIR="$work/mysql"
if ../scripts/mysql-from-debian.sh start "$mysql_dir" "$port" --binlog-checksum=NONE --log-bin=fuzz \
    > "$work/mysql-start.log" 2>&1; then
  mysql() { "$mysql_dir/bin/mysql" -h 127.0.0.1 -P "$port" -uroot "$@"; }
  mysql <<'SQL'
CREATE DATABASE shop;
USE shop;
FLUSH BINARY LOGS;
CREATE TABLE docs (id int PRIMARY KEY, doc json, amount decimal(10,2), at datetime(6), tag enum('a','b'),
  bits bit(12), flags set('x','y'), code binary(4), title varchar(40) CHARACTER SET utf8mb4);
INSERT INTO docs VALUES
  (1, '{"a": [1, 2.5, "x", null, true], "nested": {"k": {"deep": [[]]}}, "big": 18446744073709551615}',
   12.34, '2024-02-29 12:34:56.789012', 'b', b'101010101010', 'x,y', x'00000100', 'héllo'),
  (2, '[]', -0.01, '1000-01-01 00:00:00', 'a', b'0', '', x'', ''),
  (3, JSON_OBJECT('d', CAST('2024-02-29' AS DATE), 't', CAST('12:34:56' AS TIME), 'n', CAST(1.5 AS DECIMAL(4,2))),
   NULL, NULL, NULL, NULL, NULL, NULL, NULL);
UPDATE docs SET doc = JSON_SET(doc, '$.a[0]', 99), id = 4 WHERE id = 1;
DELETE FROM docs WHERE id = 2;
FLUSH BINARY LOGS;
SQL
  for file in "$work"/mysql/fuzz.0*; do
    [ "$(stat -c %s "$file")" -gt 400 ] && cp "$file" "$corpus/mysql_binlog/seed-mysql-$(basename "$file")"
  done
  ../scripts/mysql-from-debian.sh stop "$mysql_dir" >/dev/null
  for _ in $(seq 50); do [ -f "$work/mysql.pid" ] || break; sleep 0.2; done
  echo "mysql_binlog: MySQL binlog files from $(grep -m1 '^MySQL' "$work/mysql-start.log")"
else
  echo "warning: MySQL did not start (see scripts/mysql-from-debian.sh); the MySQL binlog seeds were not captured" >&2
fi

# MySQL binary JSON ------------------------------------------------------------------------------------------
# Built from the format's description (sql/json_binary.h in MySQL's source): MariaDB stores JSON as text, and
# MySQL's binlogs below carry these values inside row images too.
python3 - "$corpus" <<'PY'
import struct, sys, pathlib
corpus = pathlib.Path(sys.argv[1]) / "mysql_json"
corpus.mkdir(parents=True, exist_ok=True)
for old in corpus.glob("seed-*"):
    old.unlink()

def var_length(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)

def scalar(value):
    """(type, bytes) of a scalar; ints pick the narrowest type, like the server."""
    if value is None: return 0x04, b"\x00"
    if value is True: return 0x04, b"\x01"
    if value is False: return 0x04, b"\x02"
    if isinstance(value, int):
        if -2**15 <= value < 2**15: return 0x05, struct.pack("<h", value)
        if -2**31 <= value < 2**31: return 0x07, struct.pack("<i", value)
        if -2**63 <= value < 2**63: return 0x09, struct.pack("<q", value)
        return 0x0A, struct.pack("<Q", value)
    if isinstance(value, float): return 0x0B, struct.pack("<d", value)
    if isinstance(value, str):
        data = value.encode()
        return 0x0C, var_length(len(data)) + data
    if isinstance(value, tuple):  # opaque: (MySQL field type, bytes)
        field_type, data = value
        return 0x0F, bytes([field_type]) + var_length(len(data)) + data
    return None

def encode(value, large=False):
    """(type, bytes) of any value."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda item: (len(item[0].encode()), item[0].encode()))
        return (0x01 if large else 0x00), container([k for k, _ in items], [v for _, v in items], large)
    if isinstance(value, list):
        return (0x03 if large else 0x02), container(None, value, large)
    return scalar(value)

def container(keys, values, large):
    offset_size = 4 if large else 2
    pack = (lambda n: struct.pack("<I", n)) if large else (lambda n: struct.pack("<H", n))
    count = len(values)
    header = 2 * offset_size
    key_entries = (offset_size + 2) * count if keys is not None else 0
    value_entries = (1 + offset_size) * count
    offset = header + key_entries + value_entries
    key_part, key_bytes = b"", b""
    if keys is not None:
        for key in keys:
            data = key.encode()
            key_part += pack(offset + len(key_bytes)) + struct.pack("<H", len(data))
            key_bytes += data
    offset += len(key_bytes)
    value_part, value_bytes = b"", b""
    for value in values:
        value_type, data = encode(value)
        inlined = value_type == 0x04 or value_type in (0x05, 0x06) or (large and value_type in (0x07, 0x08))
        if inlined:
            value_part += bytes([value_type]) + data.ljust(offset_size, b"\0")
        else:
            value_part += bytes([value_type]) + pack(offset + len(value_bytes))
            value_bytes += data
    body = key_part + value_part + key_bytes + value_bytes
    return pack(count) + pack(header + len(body)) + body

MYSQL_TYPE_NEWDECIMAL, MYSQL_TYPE_DATE, MYSQL_TYPE_TIME, MYSQL_TYPE_DATETIME = 246, 10, 11, 12
samples = {
    "null": None, "true": True, "int16": -7, "int32": 70000, "int64": -2**40, "uint64": 2**64 - 1,
    "double": 2.5, "string": "héllo \"quoted\" ✓", "empty-array": [], "empty-object": {},
    "array": [1, "two", 3.0, None, True, [False]],
    "object": {"b": 1, "a": "x", "longer": {"n": [1, 2, {"deep": None}]}},
    "unicode-keys": {"é": 1, "ü": [], "z": {}},
    "opaque-decimal": ("decimal", (MYSQL_TYPE_NEWDECIMAL, bytes([5, 2, 0x80, 0x01, 0x0c]))),
    "opaque-date": ("date", (MYSQL_TYPE_DATE, struct.pack("<q", (2024 * 13 + 2) << 46 | 29 << 41))),
    "opaque-time": ("time", (MYSQL_TYPE_TIME, struct.pack("<q", (12 << 12 | 34 << 6 | 56) << 24 | 500))),
    "opaque-datetime": ("datetime", (MYSQL_TYPE_DATETIME,
        struct.pack("<q", ((2024 * 13 + 2) << 22 | 29 << 17 | 12 << 12 | 34 << 6 | 56) << 24))),
}
count = 0
for name, value in samples.items():
    if isinstance(value, tuple) and isinstance(value[0], str):
        value = value[1]
    for large in (False, True) if isinstance(value, (list, dict)) else (False,):
        value_type, data = encode(value, large)
        suffix = "-large" if large else ""
        (corpus / f"seed-{name}{suffix}").write_bytes(bytes([value_type]) + data)
        count += 1
print(f"mysql_json: {count} values")
PY
# SaaS APIs --------------------------------------------------------------------------------------------------
# Pages and rate-limit headers of the emulated APIs (fixtures/saas-emulator, which answers as the real APIs
# document), plus the rate-limit headers each real API documents.
(cd .. && cargo build -q -p saas-emulator)
emulator="${CARGO_TARGET_DIR:-$HOME/.cache/connector-target}/debug/saas-emulator"
mkdir -p "$corpus/saas_page" "$corpus/saas_rate_limits"
rm -f "$corpus"/saas_page/seed-* "$corpus"/saas_rate_limits/seed-*
capture() {  # service, seed name, curl arguments...
  local service=$1 name=$2; shift 2
  "$emulator" --service "$service" --records 3 --quota 1 > "$work/$service.url" 2>/dev/null &
  local pid=$!
  for _ in $(seq 100); do [ -s "$work/$service.url" ] && break; sleep 0.1; done
  local base; base=$(head -1 "$work/$service.url")
  for attempt in 1 2; do
    curl -s -D "$corpus/saas_rate_limits/seed-$name-$attempt" -o "$corpus/saas_page/seed-$name-$attempt" "$@" \
      "${base%/}$(cat "$work/path")"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -f "$work/$service.url"
}
stripe=(-H "Authorization: Bearer sk_test_emulator")
echo "/v1/customers?limit=3" > "$work/path"; capture stripe stripe-customers "${stripe[@]}"
echo "/v1/events?limit=3" > "$work/path"; capture stripe stripe-events "${stripe[@]}"
echo "/crm/v3/objects/contacts/search" > "$work/path"
capture hubspot hubspot-contacts -H "Authorization: Bearer pat-emulator" -H "Content-Type: application/json" \
  -d '{"filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}],
       "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "limit": 3}'
echo "/api/v2/incremental/tickets/cursor.json?start_time=0" > "$work/path"
capture zendesk zendesk-tickets -u "agent@example.com/token:zendesk-emulator-token"
echo "/services/data/v61.0/query?q=SELECT+Id,Name,SystemModstamp+FROM+Account+ORDER+BY+SystemModstamp+ASC,+Id+ASC" > "$work/path"
capture salesforce salesforce-accounts -H "Authorization: Bearer 00DEMULATOR!static-session"
printf 'RateLimit-Limit: 100\nRateLimit-Remaining: 0\nRateLimit-Reset: 30\nRateLimit-Policy: 100;w=60\n' \
  > "$corpus/saas_rate_limits/seed-ietf"
printf 'X-HubSpot-RateLimit-Max: 190\nX-HubSpot-RateLimit-Interval-Milliseconds: 10000\nX-HubSpot-RateLimit-Remaining: 0\n' \
  > "$corpus/saas_rate_limits/seed-hubspot"
printf 'X-Rate-Limit: 700\nX-Rate-Limit-Remaining: 0\nRetry-After: 93\n' > "$corpus/saas_rate_limits/seed-zendesk"
printf 'X-RateLimit-Limit: 25\nX-RateLimit-Remaining: 0\nX-RateLimit-Reset: 1767225600\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\n' \
  > "$corpus/saas_rate_limits/seed-unix-reset"
printf '{"error": {"message": "No such customer", "type": "invalid_request_error"}}' > "$corpus/saas_page/seed-stripe-error"
printf '[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]' > "$corpus/saas_page/seed-salesforce-error"
echo "saas_page: $(ls "$corpus"/saas_page/seed-* | wc -l) bodies; saas_rate_limits: $(ls "$corpus"/saas_rate_limits/seed-* | wc -l) header sets"
chmod 644 "$corpus"/*/seed-*
