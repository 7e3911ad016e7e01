//! `connector sync kafka` against a Kafka-compatible broker (`tansu`, or `CONNECTOR_TEST_KAFKA_BROKERS`), with
//! messages produced by an independent client (Python's kafka-python): every message lands once as a row with
//! its partition, offset, key and headers; the offsets live in the Delta log, so later syncs read only what is
//! new, partitions added to a topic are read from their start, and a sync killed at random moments lands every
//! message exactly once when run again.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use connector_core::schema::TableId;

use crate::support::certificates::certificate_of_another_authority;
use crate::support::connector_process::{difference, kill_moments, wait_for_exit};
use crate::support::delta::{TempLake, read_rows};
use crate::support::kafka::KafkaBroker;

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

fn sync_kafka(broker: &KafkaBroker, lake: &TempLake, topic: &str, extra: &[&str]) -> Output {
    sync_kafka_command(broker, lake, topic, extra).output().expect("run connector")
}

fn sync_kafka_command(broker: &KafkaBroker, lake: &TempLake, topic: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(CONNECTOR);
    command
        .args(["sync", "kafka", "--brokers", &broker.brokers, "--topics", topic, "--once"])
        .args(["--dest", lake.dir.path().to_str().expect("utf-8")])
        .args(extra)
        .env("CONNECTOR_LOG", "info");
    command
}

fn assert_synced(output: &Output) {
    assert!(
        output.status.success(),
        "sync kafka failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A topic name no other test (or earlier run on a user's broker) uses.
fn unique_topic(name: &str) -> String {
    format!("{name}-{}", fastrand::u32(..))
}

/// A topic of its own (`name` and a random suffix) of `partitions`, holding what `script` produces (a Python
/// script given `producer` and `topic`), and a lake to sync it into.
fn topic_with_messages(broker: &KafkaBroker, name: &str, partitions: u32, script: &str) -> (TempLake, String) {
    let topic = unique_topic(name);
    broker.create_topic(&topic, partitions);
    broker.produce(&topic, script);
    (TempLake::new(), topic)
}

/// The table's `(id, partition, offset)` rows, sorted.
async fn landed(lake: &TempLake, topic: &str) -> Vec<(i64, i64, i64)> {
    let url = lake.table_url(&TableId::new("kafka", topic));
    let mut rows: Vec<(i64, i64, i64)> = read_rows(&url, &["id", "_cdc_kafka_partition", "_cdc_kafka_offset"])
        .await
        .iter()
        .map(|row| {
            let fields: Vec<i64> = row.split('|').map(|field| field.parse().expect("a number")).collect();
            (fields[0], fields[1], fields[2])
        })
        .collect();
    rows.sort_unstable();
    rows
}

/// Every id in `ids` exactly once, and per partition the offsets 0, 1, 2, … with no gap or repeat.
fn assert_exactly_once(rows: &[(i64, i64, i64)], ids: std::ops::Range<i64>) {
    let mut offsets_of: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for (_, partition, offset) in rows {
        offsets_of.entry(*partition).or_default().push(*offset);
    }
    for (partition, offsets) in &mut offsets_of {
        offsets.sort_unstable();
        let gap = offsets.windows(2).find(|pair| pair[1] != pair[0] + 1);
        assert!(
            gap.is_none() && offsets[0] == 0,
            "partition {partition}: offsets from {} to {}, first gap {gap:?}",
            offsets[0],
            offsets[offsets.len() - 1]
        );
    }
    let landed_ids: Vec<i64> = rows.iter().map(|row| row.0).collect();
    let expected: Vec<i64> = ids.collect();
    if landed_ids != expected {
        let landed: BTreeSet<i64> = landed_ids.iter().copied().collect();
        let missing: Vec<&i64> = expected.iter().filter(|id| !landed.contains(id)).take(10).collect();
        panic!(
            "each message once: {} rows for {} messages ({} distinct); missing (first 10) {missing:?}",
            landed_ids.len(),
            expected.len(),
            landed.len()
        );
    }
    let mut by_partition: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for (_, partition, offset) in rows {
        by_partition.entry(*partition).or_default().push(*offset);
    }
    for (partition, mut offsets) in by_partition {
        offsets.sort_unstable();
        assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>(), "partition {partition}'s offsets");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_json_messages_land_once_with_their_offsets_and_later_syncs_read_only_what_is_new() {
    let broker = KafkaBroker::start();
    let (lake, topic) = topic_with_messages(
        &broker,
        "orders",
        3,
        r#"
for i in range(3000):
    value = {"id": i, "amount": round(i / 4, 2), "note": f"n{i}"}
    producer.send(topic, key=str(i).encode(), value=json.dumps(value).encode(), headers=[("trace", f"t{i}".encode())])
"#,
    );
    let output = sync_kafka(&broker, &lake, &topic, &[]);
    assert_synced(&output);
    let rows = landed(&lake, &topic).await;
    assert_exactly_once(&rows, 0..3000);
    // The offsets committed with the rows are written back to the consumer group, for lag tools.
    let mut next_offsets: Vec<Option<i64>> = vec![None; 3];
    for (_, partition, offset) in &rows {
        let next = &mut next_offsets[*partition as usize];
        *next = Some(next.unwrap_or(0).max(offset + 1));
    }
    assert_eq!(broker.group_offsets("connector-default", &topic, 3), next_offsets, "the group's offsets");
    let url = lake.table_url(&TableId::new("kafka", &topic));
    let sample = read_rows(&url, &["id", "amount", "note", "_cdc_kafka_key", "_cdc_kafka_headers"]).await;
    let first = sample.iter().find(|row| row.starts_with("7|")).expect("message 7");
    assert!(first.starts_with("7|1.75|n7|") && first.contains(r#"[{"key":"trace","value":"t7"}]"#), "{first}");

    // Nothing new: nothing added. Then 500 more with a field not seen before, and a partition added to the topic.
    assert_synced(&sync_kafka(&broker, &lake, &topic, &[]));
    assert_eq!(landed(&lake, &topic).await.len(), 3000, "a sync with nothing new adds nothing");
    // tansu cannot add partitions: against it the later messages go to the three there are.
    let partitions = if broker.add_partitions(&topic, 4) { 4 } else { 3 };
    broker.produce(
        &topic,
        &format!(
            r#"
import struct
for i in range(3000, 3500):
    value = json.dumps({{"id": i, "coupon": f"c{{i}}"}}).encode()
    # Every other value as Confluent's JSON Schema serializer frames it: a zero byte and a schema id first.
    if i % 2 == 0:
        value = struct.pack(">bI", 0, 7) + value
    producer.send(topic, partition=i % {partitions}, value=value)
"#
        ),
    );
    assert_synced(&sync_kafka(&broker, &lake, &topic, &[]));
    let rows = landed(&lake, &topic).await;
    assert_exactly_once(&rows, 0..3500);
    let read: BTreeSet<i64> = rows.iter().map(|row| row.1).collect();
    assert_eq!(read, (0..partitions).collect(), "every partition read, an added one from its start");
    let coupons = read_rows(&url, &["id", "coupon", "_rescued_data"]).await;
    assert!(coupons.contains(&"3499|c3499|∅".to_string()), "a new field adds a column: {:?}", &coupons[3490..]);
    assert!(coupons.contains(&"3498|c3498|∅".to_string()), "a framed value read as its JSON: {:?}", &coupons[3490..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_sync_killed_at_random_moments_lands_every_message_exactly_once() {
    let broker = KafkaBroker::start();
    let (lake, topic) = topic_with_messages(
        &broker,
        "events",
        4,
        r#"
for i in range(20000):
    producer.send(topic, value=json.dumps({"id": i, "payload": "x" * (i % 200)}).encode())
"#,
    );
    // Small batches: many commits, so kills land between and inside them.
    let batches = ["--max-messages-per-batch", "1000"];
    killed_syncs(&broker, &lake, &topic, &batches, 6).await;
    assert_synced(&sync_kafka(&broker, &lake, &topic, &batches));
    assert_exactly_once(&landed(&lake, &topic).await, 0..20000);
}

/// Runs `runs` syncs of `topic` into `lake`, each killed (`kill -9`) at a random moment within the time a whole
/// sync takes (timed first into a lake of its own), and asserts that some were.
async fn killed_syncs(broker: &KafkaBroker, lake: &TempLake, topic: &str, extra: &[&str], runs: usize) {
    let timing_lake = TempLake::new();
    let started = std::time::Instant::now();
    assert_synced(&sync_kafka(broker, &timing_lake, topic, extra));
    let whole = started.elapsed().as_millis() as u64;
    let seed = fastrand::u64(..);
    let mut kills = 0;
    for lifetime in kill_moments(&mut fastrand::Rng::with_seed(seed), whole, runs) {
        let mut child = Command::new(CONNECTOR)
            .args(["sync", "kafka", "--brokers", &broker.brokers, "--topics", topic, "--once"])
            .args(["--dest", lake.dir.path().to_str().expect("utf-8")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run connector");
        tokio::time::sleep(lifetime).await;
        if child.try_wait().expect("poll").is_none() {
            child.kill().expect("kill -9");
            kills += 1;
        }
        wait_for_exit(&mut child);
    }
    assert!(kills > 0, "seed {seed}: no run was killed (a whole sync takes {whole} ms)");
}

/// The upserted table's `(key, id, version)` rows, and in soft delete mode whether each is deleted.
async fn upserted(lake: &TempLake, topic: &str, columns: &[&str]) -> Vec<String> {
    read_rows(&lake.table_url(&TableId::new("kafka", topic)), columns).await
}

/// What the upsert test's messages leave: key `k{j}` for j in 0..300 holds its last version, unless its last
/// message is a tombstone.
fn last_versions(tombstoned: impl Fn(i64) -> bool, version: impl Fn(i64) -> i64) -> Vec<String> {
    let mut rows: Vec<String> = (0..300).filter(|&j| !tombstoned(j)).map(|j| format!("{j}|{}", version(j))).collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_upsert_keeps_the_last_value_per_key_and_tombstones_delete_through_kills() {
    let broker = KafkaBroker::start();
    let (lake, soft_lake) = (TempLake::new(), TempLake::new());
    let topic = unique_topic("customers");
    broker.create_topic(&topic, 3);
    // 3000 messages over 300 keys (kafka-python's partitioner keeps a key on one partition, as Kafka's does),
    // then tombstones for keys 0–49.
    broker.produce(
        &topic,
        r#"
for i in range(3000):
    producer.send(topic, key=f"k{i % 300}".encode(), value=json.dumps({"id": i % 300, "version": i}).encode())
for j in range(50):
    producer.send(topic, key=f"k{j}".encode(), value=None)
"#,
    );
    let upsert = ["--mode", "upsert", "--max-messages-per-batch", "400"];
    killed_syncs(&broker, &lake, &topic, &upsert, 4).await;
    assert_synced(&sync_kafka(&broker, &lake, &topic, &upsert));
    let first = last_versions(|j| j < 50, |j| 2700 + j);
    let mut rows = upserted(&lake, &topic, &["id", "version"]).await;
    rows.sort();
    assert_eq!(rows, first, "the table equals the compacted topic");
    let soft_upsert = ["--mode", "upsert", "--delete-mode", "soft"];
    assert_synced(&sync_kafka(&broker, &soft_lake, &topic, &soft_upsert));

    // Keys 0–9 come back, keys 100–109 are deleted, and a keyless message would be refused, so none is sent.
    broker.produce(
        &topic,
        r#"
for j in range(10):
    producer.send(topic, key=f"k{j}".encode(), value=json.dumps({"id": j, "version": 5000 + j}).encode())
for j in range(100, 110):
    producer.send(topic, key=f"k{j}".encode(), value=None)
"#,
    );
    assert_synced(&sync_kafka(&broker, &lake, &topic, &upsert));
    let tombstoned = |j: i64| (10..50).contains(&j) || (100..110).contains(&j);
    let version = |j: i64| if j < 10 { 5000 + j } else { 2700 + j };
    let mut rows = upserted(&lake, &topic, &["id", "version"]).await;
    rows.sort();
    assert_eq!(rows, last_versions(tombstoned, version), "later syncs merge what is new");

    // Soft deletes keep a tombstoned key's row, marked: keys 100–109, which the first sync landed. (Keys 0–49
    // were deleted within the first sync's batch, before any row of theirs landed; 0–9 came back since.)
    assert_synced(&sync_kafka(&broker, &soft_lake, &topic, &soft_upsert));
    let soft = upserted(&soft_lake, &topic, &["id", "version", "_cdc_deleted"]).await;
    assert_eq!(soft.len(), 260, "a row per key landed: {:?}", &soft[..5]);
    let deleted: Vec<&String> = soft.iter().filter(|row| row.ends_with("|true")).collect();
    assert_eq!(deleted.len(), 10, "keys 100–109 marked deleted: {deleted:?}");
    assert!(deleted.iter().all(|row| row.starts_with("10")), "{deleted:?}");

    // A keyless message stops an upsert sync, naming where it is; what came before it is committed.
    broker.produce(&topic, r#"producer.send(topic, partition=0, value=json.dumps({"id": 1}).encode())"#);
    let output = sync_kafka(&broker, &lake, &topic, &upsert);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("has no key") && stderr.contains("partition 0"), "{stderr}");
}

/// Upsert by a value column (`--key id`): 3,000 JSON messages over 300 ids, each under a message key of its own (so
/// that merging by the message key would keep them all), then tombstones keyed by `{"id": …}` for every tenth id;
/// synced in batches of 500 and by runs killed at random moments. The table holds each id's last version once, no
/// row for a deleted id; a message without the key column, and `--key` with no type for it, are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_upsert_by_value_columns_keeps_the_last_row_per_id_and_tombstones_keyed_by_it_delete() {
    let broker = KafkaBroker::start();
    let (lake, topic) = topic_with_messages(
        &broker,
        "customers",
        3,
        r#"
import uuid
for i in range(3000):
    id = (i * 7) % 300
    producer.send(topic, partition=id % 3, key=uuid.uuid4().bytes, value=json.dumps({"id": id, "version": i}).encode())
for id in range(0, 300, 10):
    producer.send(topic, partition=id % 3, key=json.dumps({"id": id}).encode(), value=None)
"#,
    );
    let flags = ["--mode", "upsert", "--key", "id", "--schema-hints", "id bigint", "--max-messages-per-batch", "500"];
    let untyped = sync_kafka(&broker, &lake, &topic, &["--mode", "upsert", "--key", "id"]);
    let stderr = String::from_utf8_lossy(&untyped.stderr);
    assert!(!untyped.status.success() && stderr.contains("--schema-hints \"id bigint\""), "{stderr}");

    killed_syncs(&broker, &lake, &topic, &flags, 4).await;
    assert_synced(&sync_kafka(&broker, &lake, &topic, &flags));
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    for i in 0..3000 {
        last.insert((i * 7) % 300, i);
    }
    let expected: Vec<String> =
        last.iter().filter(|(id, _)| *id % 10 != 0).map(|(id, version)| format!("{id}|{version}")).collect();
    let mut rows = read_rows(&lake.table_url(&TableId::new("kafka", &topic)), &["id", "version"]).await;
    rows.sort_by_key(|row| row.split('|').next().and_then(|id| id.parse::<i64>().ok()));
    assert!(rows == expected, "a row per live id, its last version: {}", difference(&expected, &rows));

    broker.produce(&topic, r#"producer.send(topic, partition=1, value=json.dumps({"version": 1}).encode())"#);
    let output = sync_kafka(&broker, &lake, &topic, &flags);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("no value for key column `id`"), "{stderr}");
    assert!(stderr.contains("partition 1"), "names where the message is: {stderr}");
}

/// Debezium's PostgreSQL connector as Kafka Connect's JSON converter writes it (schemas enabled): a snapshot of
/// 200 rows, then 2000 random inserts, updates, deletes (each followed by its tombstone) and key changes (a
/// delete, a tombstone and an insert). The script keeps the table as the database would hold it and prints it.
const DEBEZIUM_EVENTS: &str = r#"
import random
rnd = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
key_schema = {"type": "struct", "optional": False, "name": "dbserver1.public.customers.Key",
              "fields": [{"type": "int32", "optional": False, "field": "id"}]}
def key(id):
    return json.dumps({"schema": key_schema, "payload": {"id": id}}).encode()
def send(op, id, before, after, lsn):
    source = {"version": "2.7.3.Final", "connector": "postgresql", "name": "dbserver1", "db": "shop",
              "schema": "public", "table": "customers", "snapshot": "true" if op == "r" else "false",
              "txId": 700 + lsn, "lsn": 24000000 + lsn, "ts_ms": 1700000000000 + lsn}
    value = {"schema": {"type": "struct", "name": "dbserver1.public.customers.Envelope"},
             "payload": {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1700000000000 + lsn}}
    producer.send(topic, key=key(id), value=json.dumps(value).encode())
state = {}
for id in range(1, 201):
    state[id] = {"id": id, "name": f"c{id}", "balance": id * 10}
    send("r", id, None, state[id], 0)
for lsn in range(1, 2001):
    choice = rnd.random()
    if choice < 0.35 or not state:
        id = 1000 + lsn
        state[id] = {"id": id, "name": f"c{id}", "balance": lsn}
        send("c", id, None, state[id], lsn)
    elif choice < 0.8:
        id = rnd.choice(sorted(state))
        before = state[id]
        state[id] = dict(before, balance=before["balance"] + 1, name=f"u{lsn}")
        send("u", id, before, state[id], lsn)
    elif choice < 0.95:
        id = rnd.choice(sorted(state))
        send("d", id, state.pop(id), None, lsn)
        producer.send(topic, key=key(id), value=None)
    else:
        id = rnd.choice(sorted(state))
        row = state.pop(id)
        send("d", id, row, None, lsn)
        producer.send(topic, key=key(id), value=None)
        new = 100000 + lsn
        state[new] = dict(row, id=new)
        send("c", new, None, state[new], lsn)
print(json.dumps(sorted([[row["id"], row["name"], row["balance"]] for row in state.values()])))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_debezium_change_events_merge_into_the_rows_the_database_holds_through_kills() {
    let broker = KafkaBroker::start();
    let lake = TempLake::new();
    let topic = unique_topic("dbserver1.public.customers");
    broker.create_topic(&topic, 3);
    let printed = broker.produce(&topic, DEBEZIUM_EVENTS);
    let expected: Vec<(i64, String, i64)> = serde_json::from_str(printed.trim()).expect("the database's rows");
    let mut expected: Vec<String> =
        expected.iter().map(|(id, name, balance)| format!("{id}|{name}|{balance}")).collect();
    expected.sort();

    let debezium = ["--format", "debezium", "--max-messages-per-batch", "300"];
    killed_syncs(&broker, &lake, &topic, &debezium, 4).await;
    assert_synced(&sync_kafka(&broker, &lake, &topic, &debezium));
    let url = lake.table_url(&TableId::new("kafka", &topic));
    let mut rows = read_rows(&url, &["id", "name", "balance"]).await;
    rows.sort();
    assert_eq!(rows.len(), expected.len(), "a row per key the database holds");
    assert_eq!(rows, expected, "the table holds what the database holds");
    let sources = read_rows(&url, &["_cdc_op", "_cdc_debezium_source"]).await;
    assert!(
        sources.iter().any(|row| row.starts_with("insert|") && row.contains(r#""snapshot":"true""#)),
        "a snapshot read lands as an insert with its source: {:?}",
        &sources[..3]
    );
    assert!(sources.iter().all(|row| row.contains(r#""lsn":"#)), "every row names its source position");
}

/// The rows of a table of `numeric(10,2)`, `date`, `timestamp`, `timestamptz`, `time` and unconstrained `numeric`
/// columns as Python's own decimal and datetime compute them, some fields null; `changes(send)` sends them as
/// Debezium's PostgreSQL connector would (a snapshot of 300 rows, then an update of every third) through `send`,
/// given the values in Debezium's encodings (a date as days since 1970, a timestamp as microseconds, a time as
/// microseconds of the day, a timestamptz as ISO text), and prints the rows as the table must show them.
const DEBEZIUM_TYPED_ROWS: &str = r#"
import base64, datetime, decimal
epoch = datetime.datetime(1970, 1, 1)
def micros(delta):
    return delta // datetime.timedelta(microseconds=1)
def row(id, version):
    amount = (decimal.Decimal(id * 37 + version) / 100 * (-1 if id % 5 == 0 else 1)).quantize(decimal.Decimal("0.01"))
    born = datetime.date(1950, 1, 1) + datetime.timedelta(days=id * 97 + version)
    created = datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=id * 3600 + version, microseconds=(id % 900) * 1000 + 1)
    updated = datetime.datetime(2026, 12, 6, tzinfo=datetime.timezone.utc) + datetime.timedelta(minutes=id, microseconds=id * 1000 + 1)
    opens = datetime.time(id % 24, version, 30, (id % 900) * 1000 + 1)
    ratio = decimal.Decimal(id).scaleb(-(id % 4)) + version
    null = id % 7 == 0
    debezium = {
        "id": id,
        "born": None if null else (born - datetime.date(1970, 1, 1)).days,
        "created": micros(created - epoch),
        "updated": updated.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "opens": micros(datetime.datetime.combine(epoch.date(), opens) - epoch),
    }
    shown = [str(id), "∅" if null else f"{amount:.2f}", "∅" if null else born.isoformat(), created.isoformat(),
             updated.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), opens.strftime("%H:%M:%S.%f"), str(ratio)]
    return debezium, None if null else amount, ratio, "|".join(shown)
def unscaled_bytes(value, scale):
    unscaled = int(value.scaleb(scale))
    return unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)
def changes(send):
    expected = {}
    for id in range(1, 301):
        *value, expected[id] = row(id, 0)
        send("r", id, None, value)
    for id in range(3, 301, 3):
        *before, _ = row(id, 0)
        *value, expected[id] = row(id, 1)
        send("u", id, before, value)
    for id in sorted(expected):
        print(expected[id])
"#;

/// [`DEBEZIUM_TYPED_ROWS`] as Kafka Connect's JSON converter writes them with schemas: a decimal as base64 bytes of
/// the unscaled integer, a variable-scale decimal as a struct, each field's schema naming its logical type.
const DEBEZIUM_TYPED_JSON: &str = r#"
fields = [
    {"type": "int32", "optional": False, "field": "id"},
    {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
     "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "field": "amount"},
    {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "version": 1, "field": "born"},
    {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp", "version": 1, "field": "created"},
    {"type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp", "version": 1, "field": "updated"},
    {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTime", "version": 1, "field": "opens"},
    {"type": "struct", "optional": True, "name": "io.debezium.data.VariableScaleDecimal", "version": 1,
     "fields": [{"type": "int32", "optional": False, "field": "scale"}, {"type": "bytes", "optional": False, "field": "value"}],
     "field": "ratio"},
]
row_schema = {"type": "struct", "optional": True, "name": "dbserver1.public.typed.Value", "fields": fields, "field": "after"}
envelope_schema = {"type": "struct", "optional": False, "name": "dbserver1.public.typed.Envelope",
                   "fields": [dict(row_schema, field="before"), row_schema,
                              {"type": "string", "optional": False, "field": "op"}]}
key_schema = {"type": "struct", "optional": False, "name": "dbserver1.public.typed.Key", "fields": [fields[0]]}
def encoded(change):
    if change is None:
        return None
    debezium, amount, ratio = change
    scale = -ratio.as_tuple().exponent
    b64 = lambda data: base64.b64encode(data).decode()
    return dict(debezium, amount=None if amount is None else b64(unscaled_bytes(amount, 2)),
                ratio={"scale": scale, "value": b64(unscaled_bytes(ratio, scale))})
def send(op, id, before, after):
    payload = {"before": encoded(before), "after": encoded(after), "op": op, "source": {"connector": "postgresql", "lsn": id}}
    key = {"schema": key_schema, "payload": {"id": id}}
    producer.send(topic, key=json.dumps(key).encode(), value=json.dumps({"schema": envelope_schema, "payload": payload}).encode())
changes(send)
"#;

/// [`DEBEZIUM_TYPED_ROWS`] as Confluent's Avro converter writes them (fastavro, schemas registered over the
/// registry's REST API): key and value in the wire format, the row's record defined in `before` and named in
/// `after`, Debezium's logical types named by `connect.name` beside Avro types that do not know them, the decimal
/// an Avro `decimal`.
const DEBEZIUM_TYPED_AVRO: &str = r#"
import io, struct, urllib.request, fastavro
registry = sys.argv[3]
def register(subject, schema):
    request = urllib.request.Request(f"{registry}/subjects/{subject}/versions", method="POST",
        data=json.dumps({"schema": json.dumps(schema)}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    return json.load(urllib.request.urlopen(request))["id"]
def connect(avro_type, name, **attributes):
    return dict({"type": avro_type, "connect.version": 1, "connect.name": name}, **attributes)
decimal_type = connect("bytes", "org.apache.kafka.connect.data.Decimal", scale=2, precision=10, logicalType="decimal",
                       **{"connect.parameters": {"scale": "2", "connect.decimal.precision": "10"}})
variable_scale = {"type": "record", "name": "VariableScaleDecimal", "namespace": "io.debezium.data",
                  "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}],
                  "connect.version": 1, "connect.name": "io.debezium.data.VariableScaleDecimal"}
value_record = {"type": "record", "name": "Value", "namespace": "dbserver1.public.typed",
                "connect.name": "dbserver1.public.typed.Value", "fields": [
    {"name": "id", "type": "int"},
    {"name": "amount", "type": ["null", decimal_type], "default": None},
    {"name": "born", "type": ["null", connect("int", "io.debezium.time.Date")], "default": None},
    {"name": "created", "type": ["null", connect("long", "io.debezium.time.MicroTimestamp")], "default": None},
    {"name": "updated", "type": ["null", connect("string", "io.debezium.time.ZonedTimestamp")], "default": None},
    {"name": "opens", "type": ["null", connect("long", "io.debezium.time.MicroTime")], "default": None},
    {"name": "ratio", "type": ["null", variable_scale], "default": None}]}
envelope = {"type": "record", "name": "Envelope", "namespace": "dbserver1.public.typed", "fields": [
    {"name": "before", "type": ["null", value_record], "default": None},
    {"name": "after", "type": ["null", "Value"], "default": None},
    {"name": "source", "type": {"type": "record", "name": "Source", "namespace": "io.debezium.connector.postgresql",
        "fields": [{"name": "connector", "type": "string"}, {"name": "lsn", "type": ["null", "long"], "default": None}]}},
    {"name": "op", "type": "string"},
    {"name": "ts_ms", "type": ["null", "long"], "default": None}]}
key_record = {"type": "record", "name": "Key", "namespace": "dbserver1.public.typed", "fields": [{"name": "id", "type": "int"}]}
key_id, value_id = register(f"{topic}-key", key_record), register(f"{topic}-value", envelope)
parsed_key, parsed_value = fastavro.parse_schema(key_record), fastavro.parse_schema(envelope)
def framed(schema_id, parsed, record):
    out = io.BytesIO()
    out.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(out, parsed, record)
    return out.getvalue()
def encoded(change):
    if change is None:
        return None
    debezium, amount, ratio = change
    scale = -ratio.as_tuple().exponent
    return dict(debezium, amount=amount, ratio={"scale": scale, "value": unscaled_bytes(ratio, scale)})
def send(op, id, before, after):
    value = {"before": encoded(before), "after": encoded(after), "source": {"connector": "postgresql", "lsn": id},
             "op": op, "ts_ms": None}
    producer.send(topic, key=framed(key_id, parsed_key, {"id": id}), value=framed(value_id, parsed_value, value))
changes(send)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_debezium_logical_types_land_as_decimals_dates_and_timestamps_of_their_declared_types() {
    let broker = KafkaBroker::start();
    let topic = unique_topic("dbserver1.public.typed");
    broker.create_topic(&topic, 2);
    let expected = broker.produce(&topic, &format!("{DEBEZIUM_TYPED_ROWS}{DEBEZIUM_TYPED_JSON}"));
    assert_typed_debezium_rows(&broker, &topic, &expected, &["--format", "debezium"]).await;
}

/// The same rows in Avro through the schema registry land the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_debezium_events_in_avro_from_the_schema_registry_land_as_their_json_twins_do() {
    let broker = KafkaBroker::start();
    let registry = crate::support::kafka::SchemaRegistry::start();
    let topic = unique_topic("dbserver1.public.typed");
    broker.create_topic(&topic, 2);
    let script = format!("{DEBEZIUM_TYPED_ROWS}{DEBEZIUM_TYPED_AVRO}");
    let expected = broker.produce_with(&topic, &script, &[&registry.url]);
    let flags = ["--format", "debezium", "--schema-registry", &registry.url];
    assert_typed_debezium_rows(&broker, &topic, &expected, &flags).await;
}

/// Syncs `topic` (in pages of 150 messages) and checks its table holds the `expected` rows (as
/// [`DEBEZIUM_TYPED_ROWS`] prints them) in the column types the events' schemas declare, nothing rescued.
async fn assert_typed_debezium_rows(broker: &KafkaBroker, topic: &str, expected: &str, flags: &[&str]) {
    let lake = TempLake::new();
    let expected: Vec<String> = expected.lines().map(str::to_string).collect();
    let flags: Vec<&str> = flags.iter().copied().chain(["--max-messages-per-batch", "150"]).collect();
    assert_synced(&sync_kafka(broker, &lake, topic, &flags));

    let url = lake.table_url(&TableId::new("kafka", topic));
    let mut rows = read_rows(&url, &["id", "amount", "born", "created", "updated", "opens", "ratio"]).await;
    rows.sort_by_key(|row| row.split('|').next().and_then(|id| id.parse::<i64>().ok()));
    assert_eq!(rows.len(), 300, "a row per key");
    assert!(rows == expected, "rows as the database holds them: {}", difference(&expected, &rows));
    let table = connector_core::deltalake::open_table(url.clone()).await.expect("table");
    let schema = table.snapshot().expect("snapshot").schema().clone();
    let type_of = |name: &str| format!("{:?}", schema.field(name).expect(name).data_type());
    let types: Vec<String> = ["amount", "born", "created", "updated", "opens", "ratio"].map(type_of).to_vec();
    assert_eq!(
        types,
        [
            "Primitive(Decimal(DecimalType { precision: 10, scale: 2 }))",
            "Primitive(Date)",
            "Primitive(TimestampNtz)",
            "Primitive(Timestamp)",
            "Primitive(String)",
            "Primitive(String)"
        ],
        "the types the schemas declare"
    );
    let rescued = read_rows(&url, &["_rescued_data"]).await;
    assert!(rescued.iter().all(|row| row == "∅"), "nothing rescued: {:?}", rescued.iter().find(|row| *row != "∅"));
    let sources = read_rows(&url, &["_cdc_debezium_source"]).await;
    assert!(sources.iter().all(|source| source.contains(r#""connector":"postgresql""#)), "{:?}", &sources[..2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_a_recreated_topic_stops_the_sync_naming_the_partition_unless_data_loss_is_allowed() {
    let broker = KafkaBroker::start();
    let (lake, topic) = topic_with_messages(
        &broker,
        "recreated",
        1,
        r#"for i in range(50): producer.send(topic, value=json.dumps({"id": i}).encode())"#,
    );
    assert_synced(&sync_kafka(&broker, &lake, &topic, &[]));
    assert_eq!(landed(&lake, &topic).await.len(), 50);

    // The topic is deleted and created again with 5 messages: offsets 0–4, below the 50 the table has read.
    broker.recreate_topic(&topic, 1);
    broker.produce(&topic, r#"for i in range(50, 55): producer.send(topic, value=json.dumps({"id": i}).encode())"#);
    let output = sync_kafka(&broker, &lake, &topic, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "a lost history exits with 3: {stderr}");
    assert!(
        stderr.contains("partition 0 of") && stderr.contains("ends at offset 5") && stderr.contains("resync"),
        "the stop names the partition, the gap and the fix: {stderr}"
    );
    assert_eq!(landed(&lake, &topic).await.len(), 50, "nothing read past the stop");

    // Allowed: the new topic is read from its start, on top of what the table holds.
    assert_synced(&sync_kafka(&broker, &lake, &topic, &["--allow-data-loss"]));
    let ids: BTreeSet<i64> = landed(&lake, &topic).await.iter().map(|row| row.0).collect();
    assert_eq!(ids, (0..55).collect(), "the recreated topic's messages, each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_messages_deleted_by_retention_before_they_were_read_stop_the_sync_naming_the_gap_unless_allowed() {
    let storage = tempfile::tempdir().expect("temporary directory");
    let Some(mut broker) = KafkaBroker::start_on_disk(storage.path()) else { return };
    let topic = unique_topic("retained");
    broker.create_topic_with_config(&topic, &[("cleanup.policy", "delete"), ("retention.ms", "3600000")]);
    // Messages written two days ago (their create time), under a retention of an hour: the broker deletes them
    // when its retention next runs, which tansu does as it starts.
    let produce = |ids: std::ops::Range<i64>, age_ms: i64| {
        broker.produce(
            &topic,
            &format!(
                "import time\nfor i in range({}, {}):\n    producer.send(topic, value=json.dumps({{'id': i}}).encode(), \
                 timestamp_ms=int(time.time() * 1000) - {age_ms})",
                ids.start, ids.end
            ),
        )
    };
    const TWO_DAYS_MS: i64 = 2 * 24 * 3600 * 1000;
    produce(0..100, TWO_DAYS_MS);
    let lake = TempLake::new();
    assert_synced(&sync_kafka(&broker, &lake, &topic, &[]));
    assert_exactly_once(&landed(&lake, &topic).await, 0..100);

    produce(100..200, TWO_DAYS_MS);
    produce(200..250, 0);
    broker.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while broker.earliest_offset(&topic) != 200 {
        assert!(std::time::Instant::now() < deadline, "the broker's retention did not delete the old messages");
        std::thread::sleep(Duration::from_millis(200));
    }

    let output = sync_kafka(&broker, &lake, &topic, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "a lost history exits with 3: {stderr}");
    assert!(
        stderr.contains(&format!("partition 0 of `{topic}` starts at offset 200"))
            && stderr.contains("read only up to offset 100")
            && stderr.contains("deleted 100 messages")
            && stderr.contains("--allow-data-loss"),
        "the stop names the partition, the gap and the ways on: {stderr}"
    );
    assert_eq!(landed(&lake, &topic).await.len(), 100, "nothing read past the stop");

    let allowed = sync_kafka(&broker, &lake, &topic, &["--allow-data-loss"]);
    assert_synced(&allowed);
    assert!(String::from_utf8_lossy(&allowed.stderr).contains("skipped"), "the skip is logged");
    let ids: Vec<i64> = landed(&lake, &topic).await.iter().map(|row| row.0).collect();
    assert_eq!(ids, (0..100).chain(200..250).collect::<Vec<_>>(), "what the broker still kept, each once");
    let status = Command::new(CONNECTOR)
        .args(["status", "--dest", lake.dir.path().to_str().expect("utf-8")])
        .output()
        .expect("run connector status");
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(shown.contains(r#"{"0":250,"skipped":{"0":100}}"#), "status shows the skipped messages: {shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_a_partition_added_while_a_continuous_sync_runs_is_read_from_its_first_message() {
    let storage = tempfile::tempdir().expect("temporary directory");
    let broker = match KafkaBroker::start_on_disk(storage.path()) {
        Some(broker) => broker,
        None => KafkaBroker::start(),
    };
    let topic = unique_topic("growing");
    broker.create_topic(&topic, 2);
    let produce = |ids: std::ops::Range<i64>, partitions: i64| {
        broker.produce(
            &topic,
            &format!(
                "for i in range({}, {}):\n    producer.send(topic, partition=i % {partitions}, \
                 value=json.dumps({{'id': i}}).encode())",
                ids.start, ids.end
            ),
        )
    };
    produce(0..200, 2);
    let lake = TempLake::new();
    let mut child = Command::new(CONNECTOR)
        .args(["sync", "kafka", "--brokers", &broker.brokers, "--topics", &topic, "--continuous"])
        .args(["--commit-interval", "1s", "--dest", lake.dir.path().to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run connector");
    assert_exactly_once(&wait_for_rows(&lake, &topic, 200).await, 0..200);

    assert!(broker.add_partitions(&topic, 3), "the broker adds a partition");
    produce(200..500, 3);
    let rows = wait_for_rows(&lake, &topic, 500).await;
    child.kill().expect("stop");
    wait_for_exit(&mut child);
    assert_exactly_once(&rows, 0..500);
    let read: BTreeSet<i64> = rows.iter().map(|row| row.1).collect();
    assert_eq!(read, BTreeSet::from([0, 1, 2]), "the added partition read from its first message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_a_deleted_topic_and_unreachable_brokers_stop_the_sync_saying_what_to_check() {
    let broker = KafkaBroker::start();
    let (lake, topic) = topic_with_messages(
        &broker,
        "deleted",
        1,
        r#"for i in range(20): producer.send(topic, value=json.dumps({"id": i}).encode())"#,
    );
    assert_synced(&sync_kafka(&broker, &lake, &topic, &[]));
    broker.delete_topic(&topic);
    let output = sync_kafka(&broker, &lake, &topic, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a deleted topic stops the sync: {stderr}");
    assert!(stderr.contains(&format!("topic `{topic}` does not exist")) && stderr.contains("--topics"), "{stderr}");
    assert_eq!(landed(&lake, &topic).await.len(), 20, "the table keeps what it had");

    // Brokers that do not answer: a port nothing listens on.
    let nowhere = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let output = Command::new(CONNECTOR)
        .args(["sync", "kafka", "--brokers", &nowhere, "--topics", &topic, "--once"])
        .args(["--dest", lake.dir.path().to_str().expect("utf-8")])
        .output()
        .expect("run connector");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "unreachable brokers stop the sync: {stderr}");
    assert!(
        stderr.contains(&nowhere) && stderr.contains("check that the brokers are reachable"),
        "the error names the brokers and what to check: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_strict_stops_at_the_first_value_that_does_not_decode_and_bytes_land_as_they_are() {
    let broker = KafkaBroker::start();
    let (lake, topic) = topic_with_messages(
        &broker,
        "strict",
        1,
        r#"
for i in range(50):
    producer.send(topic, value=json.dumps({"id": i}).encode())
producer.send(topic, value=b"not json")
for i in range(51, 61):
    producer.send(topic, value=json.dumps({"id": i}).encode())
"#,
    );
    // Pages of 20 messages: the two before the one holding offset 50 are committed, then the sync stops.
    let output = sync_kafka(&broker, &lake, &topic, &["--strict", "--max-messages-per-batch", "20"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a value that does not decode stops a strict sync: {stderr}");
    assert!(
        stderr.contains(&format!("offset 50 of partition 0 of `{topic}`")) && stderr.contains("--strict"),
        "{stderr}"
    );
    let committed = landed(&lake, &topic).await;
    assert_eq!(committed.len(), 40, "the pages before the one holding it are committed");
    assert_exactly_once(&committed, 0..40);

    // Without --strict the value is kept whole in _rescued_data and the sync goes on.
    assert_synced(&sync_kafka(&broker, &lake, &topic, &[]));
    let url = lake.table_url(&TableId::new("kafka", &topic));
    let rows = read_rows(&url, &["_cdc_kafka_offset", "id", "_rescued_data"]).await;
    assert_eq!(rows.len(), 61, "every message once");
    let rescued: Vec<&String> = rows.iter().filter(|row| !row.ends_with("|∅")).collect();
    assert!(rescued.len() == 1 && rescued[0].starts_with("50|∅|") && rescued[0].contains("not json"), "{rescued:?}");

    // --format bytes: every value as it is, in a `value` column.
    let bytes_lake = TempLake::new();
    assert_synced(&sync_kafka(&broker, &bytes_lake, &topic, &["--format", "bytes"]));
    let url = bytes_lake.table_url(&TableId::new("kafka", &topic));
    let values = read_rows(&url, &["_cdc_kafka_offset", "value"]).await;
    assert_eq!(values.len(), 61);
    let hex = |text: &[u8]| text.iter().map(|byte| format!("{byte:02x}")).collect::<String>();
    assert!(values.contains(&format!("50|{}", hex(b"not json"))), "{:?}", &values[48..52]);
    assert!(values.contains(&format!("0|{}", hex(br#"{"id": 0}"#))), "{:?}", &values[..2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_string_values_from_the_latest_offsets_land_as_text_with_bytes_that_are_not_text_rescued() {
    let broker = KafkaBroker::start();
    let (lake, topic) = topic_with_messages(
        &broker,
        "logs",
        2,
        r#"for i in range(20): producer.send(topic, value=f"old {i}".encode())"#,
    );
    let latest = ["--format", "string", "--starting-offsets", "latest"];
    assert_synced(&sync_kafka(&broker, &lake, &topic, &latest));
    let url = lake.table_url(&TableId::new("kafka", &topic));
    assert!(read_rows(&url, &["value"]).await.is_empty(), "latest: what was there before the first sync is not read");

    broker.produce(
        &topic,
        r#"
for i in range(5):
    producer.send(topic, partition=i % 2, value=f"new {i}".encode())
producer.send(topic, partition=0, value=bytes([0xff, 0x00, 0x41]))
"#,
    );
    assert_synced(&sync_kafka(&broker, &lake, &topic, &latest));
    let rows = read_rows(&url, &["value", "_rescued_data"]).await;
    let expected: Vec<String> = (0..5).map(|i| format!("new {i}|∅")).collect();
    // Sorted with nulls first: the value that is not text, then the five others.
    assert_eq!(rows[1..], expected[..], "{rows:?}");
    assert!(rows[0].starts_with("∅|") && rows[0].contains(r#""value_base64":"/wBB""#), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_a_first_sync_from_a_time_starts_at_each_partitions_first_message_of_that_time() {
    // tansu finds offsets by time on its SQLite storage only.
    let storage = tempfile::tempdir().expect("temporary directory");
    let broker = KafkaBroker::start_on_disk(storage.path()).unwrap_or_else(KafkaBroker::start);
    let lake = TempLake::new();
    let probe = unique_topic("probe");
    broker.create_topic(&probe, 1);
    if !broker.finds_offsets_by_time(&probe) {
        eprintln!("skipped: this broker (tansu 0.6) does not find offsets by time; run against Kafka or Redpanda");
        return;
    }
    let topic = unique_topic("clicks");
    broker.create_topic(&topic, 2);
    // Message i is stamped 2023-11-14T22:13:20Z + i seconds, on partition i % 2.
    broker.produce(
        &topic,
        r#"
for i in range(40):
    producer.send(topic, partition=i % 2, value=json.dumps({"id": i}).encode(), timestamp_ms=1_700_000_000_000 + i * 1000)
"#,
    );
    assert_synced(&sync_kafka(&broker, &lake, &topic, &["--starting-offsets", "2023-11-14T22:13:45Z"]));
    let ids: Vec<i64> = landed(&lake, &topic).await.iter().map(|row| row.0).collect();
    assert_eq!(ids, (25..40).collect::<Vec<_>>(), "the messages stamped at or after the time, each once");
}

/// Avro values in the schema registry's wire format, written by fastavro (`schemaless_writer`) with schemas
/// registered over the registry's REST API, as a Confluent serializer does: version 1 of the schema, then
/// version 2 (a new optional field, `id` promoted from int to long), and one value that is not Avro.
const AVRO_PAYMENTS: &str = r#"
import io, json, struct, datetime, decimal, urllib.request, fastavro
registry = sys.argv[3]
def register(schema):
    request = urllib.request.Request(f"{registry}/subjects/{topic}-value/versions", method="POST",
        data=json.dumps({"schema": json.dumps(schema)}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    return json.load(urllib.request.urlopen(request))["id"]
def encoded(schema_id, schema, record):
    out = io.BytesIO()
    out.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()
fields = [{"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
          {"name": "paid_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
          {"name": "note", "type": "string"}]
v1 = {"type": "record", "name": "Payment", "namespace": "shop", "fields": [{"name": "id", "type": "int"}] + fields}
v2 = {"type": "record", "name": "Payment", "namespace": "shop",
      "fields": [{"name": "id", "type": "long"}] + fields + [{"name": "currency", "type": ["null", "string"], "default": None}]}
ids = (register(v1), register(v2))
start = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
for i in range(1000):
    version, schema_id = (v1, ids[0]) if i < 500 else (v2, ids[1])
    record = {"id": i if i < 500 else 10_000_000_000 + i, "amount": decimal.Decimal(i) / 4,
              "paid_at": start + datetime.timedelta(seconds=i), "note": f"p{i}"}
    if version is v2:
        record["currency"] = "EUR" if i % 2 else None
    producer.send(topic, partition=i % 2, value=encoded(schema_id, version, record))
producer.send(topic, partition=0, value=b"{\"id\": 1}")
"#;

/// Upsert by value columns with Avro values and keys (Confluent's Avro serializer, both in the wire format): 900
/// versions over 150 customers, then tombstones keyed by an Avro record of the id for every fifth.
const AVRO_CUSTOMERS: &str = r#"
import io, json, struct, urllib.request, fastavro
registry = sys.argv[3]
def register(subject, schema):
    request = urllib.request.Request(f"{registry}/subjects/{subject}/versions", method="POST",
        data=json.dumps({"schema": json.dumps(schema)}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    return json.load(urllib.request.urlopen(request))["id"]
def encoded(schema_id, schema, record):
    out = io.BytesIO()
    out.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return out.getvalue()
key = {"type": "record", "name": "CustomerKey", "namespace": "shop", "fields": [{"name": "id", "type": "long"}]}
value = {"type": "record", "name": "Customer", "namespace": "shop",
         "fields": [{"name": "id", "type": "long"}, {"name": "version", "type": "long"}, {"name": "name", "type": "string"}]}
key_id, value_id = register(f"{topic}-key", key), register(f"{topic}-value", value)
for i in range(900):
    id = (i * 7) % 150
    producer.send(topic, partition=id % 2, key=encoded(key_id, key, {"id": id}),
                  value=encoded(value_id, value, {"id": id, "version": i, "name": f"c{i}"}))
for id in range(0, 150, 5):
    producer.send(topic, partition=id % 2, key=encoded(key_id, key, {"id": id}), value=None)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_avro_upsert_by_value_columns_deletes_the_rows_that_avro_keyed_tombstones_name() {
    let broker = KafkaBroker::start();
    let registry = crate::support::kafka::SchemaRegistry::start();
    let lake = TempLake::new();
    let topic = unique_topic("avro-customers");
    broker.create_topic(&topic, 2);
    broker.produce_with(&topic, AVRO_CUSTOMERS, &[&registry.url]);
    let flags = ["--format", "avro", "--schema-registry", &registry.url, "--mode", "upsert", "--key", "id"];
    let hinted = [&flags[..], &["--schema-hints", "id bigint", "--max-messages-per-batch", "200"]].concat();
    assert_synced(&sync_kafka(&broker, &lake, &topic, &hinted));

    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    for i in 0..900 {
        last.insert((i * 7) % 150, i);
    }
    let expected: Vec<String> =
        last.iter().filter(|(id, _)| *id % 5 != 0).map(|(id, version)| format!("{id}|{version}|c{version}")).collect();
    let mut rows = read_rows(&lake.table_url(&TableId::new("kafka", &topic)), &["id", "version", "name"]).await;
    rows.sort_by_key(|row| row.split('|').next().and_then(|id| id.parse::<i64>().ok()));
    assert!(rows == expected, "a row per live id, its last version: {}", difference(&expected, &rows));

    // A tombstone keyed by JSON cannot be read as the Avro the table is made of: the sync stops naming it.
    broker.produce(&topic, r#"producer.send(topic, partition=1, key=json.dumps({"id": 1}).encode(), value=None)"#);
    let output = sync_kafka(&broker, &lake, &topic, &hinted);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("not an Avro record in the schema registry's wire format"),
        "{stderr}"
    );
    assert!(stderr.contains("partition 1"), "names where the tombstone is: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_avro_values_from_the_schema_registry_land_typed_across_schema_versions() {
    let broker = KafkaBroker::start();
    let registry = crate::support::kafka::SchemaRegistry::start();
    let lake = TempLake::new();
    let topic = unique_topic("payments");
    broker.create_topic(&topic, 2);
    broker.produce_with(&topic, AVRO_PAYMENTS, &[&registry.url]);
    assert_synced(&sync_kafka(&broker, &lake, &topic, &["--format", "avro", "--schema-registry", &registry.url]));

    let url = lake.table_url(&TableId::new("kafka", &topic));
    let rows = read_rows(&url, &["id", "amount", "paid_at", "note", "currency"]).await;
    assert_eq!(rows.len(), 1001, "a row per message");
    assert!(rows.contains(&"3|0.75|2026-12-01T00:00:03Z|p3|∅".to_string()), "{:?}", &rows[..5]);
    assert!(rows.contains(&"10000000501|125.25|2026-12-01T00:08:21Z|p501|EUR".to_string()), "{:?}", &rows[995..]);
    let table = connector_core::deltalake::open_table(url.clone()).await.expect("table");
    let schema = table.snapshot().expect("snapshot").schema().clone();
    let type_of = |name: &str| format!("{:?}", schema.field(name).expect(name).data_type());
    assert!(type_of("id").contains("Long"), "int widened to bigint by version 2: {}", type_of("id"));
    assert!(type_of("amount").contains("Decimal"), "{}", type_of("amount"));
    let rescued = read_rows(&url, &["_rescued_data"]).await;
    let kept: Vec<&String> = rescued.iter().filter(|row| *row != "∅").collect();
    assert_eq!(kept.len(), 1, "the value that is not Avro is kept whole: {kept:?}");
    assert!(kept[0].contains("wire format") && kept[0].contains("_corrupt_value_base64"), "{kept:?}");
}

/// Protobuf values as Confluent's Protobuf serializer frames them (the zero byte, the schema id, the message
/// indexes, the message), written by classes `protoc` generated (grpcio-tools' protoc, Python's protobuf runtime)
/// from a `.proto` file registered over the registry's REST API; then a value its schema does not read. Prints
/// the rows as the table must show them.
const PROTOBUF_ORDERS: &str = r#"
import datetime, importlib, os, struct, tempfile, urllib.request
import grpc_tools
from grpc_tools import protoc
registry = sys.argv[3]
# An order's lines are a message of another registered schema, which the order's schema imports (a reference).
line_proto = """
syntax = "proto3";
package shop;
message Line { string sku = 1; int32 quantity = 2; }
"""
proto = """
syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "shop/line.proto";
message Order {
  int64 id = 1;
  string customer = 2;
  double amount = 3;
  Status status = 4;
  google.protobuf.Timestamp placed_at = 5;
  enum Status { NEW = 0; PAID = 1; SHIPPED = 2; }
  repeated shop.Line lines = 6;
}
"""
workdir = tempfile.mkdtemp()
os.makedirs(os.path.join(workdir, "shop"))
with open(os.path.join(workdir, "shop", "line.proto"), "w") as f:
    f.write(line_proto)
with open(os.path.join(workdir, "order.proto"), "w") as f:
    f.write(proto)
well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
assert protoc.main(["protoc", f"-I{workdir}", f"-I{well_known}", f"--python_out={workdir}", "order.proto", "shop/line.proto"]) == 0
sys.path.insert(0, workdir)
order_pb2 = importlib.import_module("order_pb2")
def register(subject, schema, references):
    request = urllib.request.Request(f"{registry}/subjects/{subject}/versions", method="POST",
        data=json.dumps({"schema": schema, "schemaType": "PROTOBUF", "references": references}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    return json.load(urllib.request.urlopen(request))["id"]
register(f"{topic}-line", line_proto, [])
schema_id = register(f"{topic}-value", proto, [{"name": "shop/line.proto", "subject": f"{topic}-line", "version": 1}])
start = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
for i in range(500):
    placed_at = start + datetime.timedelta(seconds=i)
    order = order_pb2.Order(id=10_000_000_000 + i, customer=f"c{i}", amount=i / 4, status=i % 3)
    order.placed_at.FromDatetime(placed_at)
    order.lines.add(sku=f"s{i}", quantity=i % 5 + 1)
    # Message indexes [0], the file's first message: a lone zero byte.
    producer.send(topic, partition=i % 2, value=struct.pack(">bI", 0, schema_id) + b"\x00" + order.SerializeToString())
    status = ["NEW", "PAID", "SHIPPED"][i % 3]
    print(f"{10_000_000_000 + i}|c{i}|{i / 4:.2f}|{status}|{placed_at.strftime('%Y-%m-%dT%H:%M:%SZ')}")
producer.send(topic, partition=0, value=struct.pack(">bI", 0, schema_id) + b"\x00\xff\xff\xff")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_protobuf_values_from_the_schema_registry_land_as_typed_columns() {
    let broker = KafkaBroker::start();
    let registry = crate::support::kafka::SchemaRegistry::start();
    let lake = TempLake::new();
    let topic = unique_topic("orders-proto");
    broker.create_topic(&topic, 2);
    let mut expected: Vec<String> =
        broker.produce_with(&topic, PROTOBUF_ORDERS, &[&registry.url]).lines().map(str::to_string).collect();
    expected.sort();
    assert_synced(&sync_kafka(&broker, &lake, &topic, &["--format", "protobuf", "--schema-registry", &registry.url]));

    let url = lake.table_url(&TableId::new("kafka", &topic));
    let rows = read_rows(&url, &["id", "customer", "amount", "status", "placed_at"]).await;
    assert_eq!(rows.len(), 501, "a row per message");
    let mut decoded: Vec<String> = rows.into_iter().filter(|row| !row.starts_with('∅')).collect();
    decoded.sort();
    assert!(decoded == expected, "the messages' fields: {}", difference(&expected, &decoded));
    let table = connector_core::deltalake::open_table(url.clone()).await.expect("table");
    let schema = table.snapshot().expect("snapshot").schema().clone();
    let type_of = |name: &str| format!("{:?}", schema.field(name).expect(name).data_type());
    assert_eq!(
        ["id", "amount", "placed_at"].map(type_of),
        ["Primitive(Long)", "Primitive(Decimal(DecimalType { precision: 5, scale: 2 }))", "Primitive(Timestamp)"],
        "int64 a bigint, the amounts exact, a Timestamp a timestamp"
    );
    let lines = type_of("lines");
    assert!(lines.starts_with("Array") && lines.contains("Struct") && lines.contains("quantity"), "{lines}");
    let rescued: Vec<String> = read_rows(&url, &["_rescued_data"]).await.into_iter().filter(|row| row != "∅").collect();
    assert_eq!(rescued.len(), 1, "the value its schema does not read is kept whole: {rescued:?}");
    assert!(rescued[0].contains("does not read the value") && rescued[0].contains("base64"), "{rescued:?}");

    // A schema id the registry does not have stops the sync, naming it, with nothing more committed.
    broker.produce(&topic, r#"producer.send(topic, partition=1, value=b"\x00\x00\x00\x10\x92\x00\x08\x01")"#);
    let output = sync_kafka(&broker, &lake, &topic, &["--format", "protobuf", "--schema-registry", &registry.url]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("schema 4242") && stderr.contains("404"), "{stderr}");
    assert_eq!(read_rows(&url, &["id"]).await.len(), 501, "nothing more committed");
}

/// A registry that asks for credentials (HTTP basic authentication): a sync without them stops with what to set and
/// nothing committed, one with a wrong password is refused naming the user, and one with the right ones (in the
/// URL's user info) lands the values; the password appears in no output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_a_schema_registry_asking_for_credentials_gets_them_and_never_shows_the_password() {
    let Some(registry) = crate::support::kafka::SchemaRegistry::start_with_credentials("connector:s3cret-registry")
    else {
        eprintln!(
            "skipped: CONNECTOR_TEST_SCHEMA_REGISTRY_URL names a registry whose credentials this test cannot set"
        );
        return;
    };
    let broker = KafkaBroker::start();
    let lake = TempLake::new();
    let topic = unique_topic("secured");
    broker.create_topic(&topic, 1);
    let produce = r#"
import base64, io, struct, urllib.request, fastavro
registry, auth = sys.argv[3], "Basic " + base64.b64encode(b"connector:s3cret-registry").decode()
schema = {"type": "record", "name": "Event", "fields": [{"name": "id", "type": "long"}]}
request = urllib.request.Request(f"{registry}/subjects/{topic}-value/versions", method="POST",
    data=json.dumps({"schema": json.dumps(schema)}).encode(),
    headers={"Content-Type": "application/vnd.schemaregistry.v1+json", "Authorization": auth})
schema_id = json.load(urllib.request.urlopen(request))["id"]
for i in range(10):
    out = io.BytesIO()
    out.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), {"id": i})
    producer.send(topic, value=out.getvalue())
"#;
    broker.produce_with(&topic, produce, &[&registry.url]);
    let with_url = |url: &str| sync_kafka(&broker, &lake, &topic, &["--format", "avro", "--schema-registry", url]);
    let shown = |output: &Output| {
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    };

    let none = with_url(&registry.url);
    let text = shown(&none);
    assert!(!none.status.success() && text.contains("401") && text.contains("asks for credentials"), "{text}");
    assert!(text.contains("schema_registry_user"), "says what to set: {text}");
    let url = lake.table_url(&TableId::new("kafka", &topic));
    assert!(read_rows(&url, &["_cdc_kafka_offset"]).await.is_empty(), "no row committed: {text}");

    let authority = registry.url.trim_start_matches("http://");
    let wrong = with_url(&format!("http://connector:wrong-guess@{authority}"));
    let text = shown(&wrong);
    assert!(!wrong.status.success() && text.contains("user `connector` are refused"), "{text}");
    assert!(!text.contains("wrong-guess"), "the password is not shown: {text}");

    let right = with_url(&format!("http://connector:s3cret-registry@{authority}"));
    assert_synced(&right);
    assert!(!shown(&right).contains("s3cret"), "the password is not shown: {}", shown(&right));
    let ids = read_rows(&url, &["id"]).await;
    assert_eq!(ids, (0..10).map(|id| id.to_string()).collect::<Vec<_>>(), "every value, once");
}

/// `connector sync kafka --topic-pattern PATTERN --once` into `lake`.
fn sync_pattern(broker: &KafkaBroker, lake: &TempLake, pattern: &str) -> Output {
    Command::new(CONNECTOR)
        .args(["sync", "kafka", "--brokers", &broker.brokers, "--topic-pattern", pattern, "--once"])
        .args(["--dest", lake.dir.path().to_str().expect("utf-8")])
        .output()
        .expect("run connector")
}

/// Polls `topic`'s table until it holds `count` rows, for at most a minute; returns its rows.
async fn wait_for_rows(lake: &TempLake, topic: &str, count: usize) -> Vec<(i64, i64, i64)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        // The table is made before its first rows (without their columns): count by a column it always has.
        let url = lake.table_url(&TableId::new("kafka", topic));
        let exists = lake.dir.path().join("kafka").join(topic).join("_delta_log").exists();
        let rows = if exists { read_rows(&url, &["_cdc_kafka_offset"]).await.len() } else { 0 };
        if rows >= count || std::time::Instant::now() > deadline {
            return landed(lake, topic).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_a_topic_pattern_syncs_every_matching_topic_and_those_created_later_while_streaming() {
    let broker = KafkaBroker::start();
    let lake = TempLake::new();
    let group = unique_topic("shop");
    let pattern = format!("{group}\\..*");
    let (orders, payments, later) =
        (format!("{group}.orders"), format!("{group}.payments"), format!("{group}.refunds"));
    let unrelated = format!("x{group}.orders");
    for topic in [&orders, &payments, &unrelated] {
        broker.create_topic(topic, 2);
        broker.produce(topic, r#"for i in range(100): producer.send(topic, value=json.dumps({"id": i}).encode())"#);
    }
    assert_synced(&sync_pattern(&broker, &lake, &pattern));
    assert_exactly_once(&landed(&lake, &orders).await, 0..100);
    assert_exactly_once(&landed(&lake, &payments).await, 0..100);
    assert!(!lake.dir.path().join("kafka").join(&unrelated).exists(), "a topic the whole pattern does not match");

    // Streaming: a topic created while the sync runs is found at the next listing and read from its start,
    // while the topics already read go on once each.
    let mut child = Command::new(CONNECTOR)
        .args(["sync", "kafka", "--brokers", &broker.brokers, "--topic-pattern", &pattern, "--continuous"])
        .args(["--topic-refresh-interval", "1s", "--commit-interval", "1s"])
        .args(["--dest", lake.dir.path().to_str().expect("utf-8")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run connector");
    // The sync is under way (it has listed the topics) once it lands new messages of a topic it knows; only then
    // is the new topic created, so only a later listing can find it.
    broker.produce(&orders, r#"for i in range(100, 200): producer.send(topic, value=json.dumps({"id": i}).encode())"#);
    let more_orders = wait_for_rows(&lake, &orders, 200).await;
    broker.create_topic(&later, 2);
    broker.produce(&later, r#"for i in range(300): producer.send(topic, value=json.dumps({"id": i}).encode())"#);
    let refunds = wait_for_rows(&lake, &later, 300).await;
    child.kill().expect("stop");
    wait_for_exit(&mut child);
    assert_exactly_once(&refunds, 0..300);
    assert_exactly_once(&more_orders, 0..200);
    assert_exactly_once(&landed(&lake, &payments).await, 0..100);

    // `connector status --config` shows the tables of the topics the pattern matches, found by asking the brokers.
    let config = lake.dir.path().join("pipelines.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.events]\nkind = \"kafka\"\nbrokers = \"{}\"\ntopic_pattern = '{pattern}'\n\n\
             [[pipelines]]\nname = \"shop\"\nprofile = \"events\"\ndest = \"{}\"\ntables = []\nschedule = \"15m\"\n",
            broker.brokers,
            lake.dir.path().display()
        ),
    )
    .expect("write pipelines.toml");
    let status = Command::new(CONNECTOR)
        .args(["status", "--json", "--config", config.to_str().expect("utf-8")])
        .output()
        .expect("run connector status");
    assert!(status.status.success(), "status: {}", String::from_utf8_lossy(&status.stderr));
    let document: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    let mut tables: Vec<String> = document["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|table| {
            let name = |part: &str| table["table"][part].as_str().expect("a table's namespace and name").to_string();
            format!("{}.{}", name("namespace"), name("name"))
        })
        .collect();
    tables.sort();
    let expected: Vec<String> = [&orders, &payments, &later].iter().map(|topic| format!("kafka.{topic}")).collect();
    assert_eq!(tables, expected, "the pattern's tables, the unrelated topic's not (it has none)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_scram_credentials_over_tls_sync_and_a_wrong_password_or_authority_stops_naming_why() {
    let Some(secured) = KafkaBroker::start_secured(false).await else { return };
    let broker = &secured.broker;
    let produce = |topic: &str, ids: std::ops::Range<i64>| {
        broker.produce(
            topic,
            &format!(
                "for i in range({}, {}):\n    producer.send(topic, value=json.dumps({{'id': i}}).encode())",
                ids.start, ids.end
            ),
        )
    };
    let topic = unique_topic("secured");
    broker.create_topic(&topic, 2);
    produce(&topic, 0..200);
    let lake = TempLake::new();
    let ca = secured.ca.to_str().expect("utf-8").to_string();
    let sync = |mechanism: &str, password: &str, ca: &str| {
        let flags = ["--sasl-mechanism", mechanism, "--sasl-username", &secured.user, "--tls-ca", ca];
        sync_kafka_command(broker, &lake, &topic, &flags)
            .env("KAFKA_SASL_PASSWORD", password)
            .output()
            .expect("run connector")
    };

    assert_synced(&sync("SCRAM-SHA-512", &secured.password, &ca));
    assert_exactly_once(&landed(&lake, &topic).await, 0..200);

    produce(&topic, 200..300);
    let wrong_password = sync("SCRAM-SHA-512", "not the password", &ca);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&wrong_password.stdout),
        String::from_utf8_lossy(&wrong_password.stderr)
    );
    assert!(!wrong_password.status.success(), "a wrong password stops the sync: {said}");
    assert!(
        said.contains("refused the connector (SASL SCRAM-SHA-512 as user `connector` over TLS)"),
        "the error names what was presented: {said}"
    );
    assert!(!said.contains("not the password") && !said.contains(&secured.password), "no password shown: {said}");

    let elsewhere = tempfile::tempdir().expect("temporary directory");
    let other_authority = certificate_of_another_authority(elsewhere.path(), "elsewhere");
    let distrusted = sync("SCRAM-SHA-512", &secured.password, other_authority.to_str().expect("utf-8"));
    let said =
        format!("{}{}", String::from_utf8_lossy(&distrusted.stdout), String::from_utf8_lossy(&distrusted.stderr));
    assert!(!distrusted.status.success(), "a certificate from another authority stops the sync: {said}");
    assert!(said.contains("refused the connector") && said.contains("certificate verify failed"), "{said}");
    assert_eq!(landed(&lake, &topic).await.len(), 200, "nothing lands while the brokers refuse the connector");

    // The messages the refused syncs did not read land with the right credentials, once; so do later ones with
    // the other SCRAM.
    assert_synced(&sync("SCRAM-SHA-512", &secured.password, &ca));
    assert_exactly_once(&landed(&lake, &topic).await, 0..300);
    produce(&topic, 300..350);
    assert_synced(&sync("SCRAM-SHA-256", &secured.password, &ca));
    assert_exactly_once(&landed(&lake, &topic).await, 0..350);

    // A mechanism the brokers do not offer (tansu 0.6 offers the SCRAMs only) stops the sync naming it.
    let unoffered = sync("PLAIN", &secured.password, &ca);
    let said = String::from_utf8_lossy(&unoffered.stderr);
    assert!(!unoffered.status.success() && said.contains("refused the connector (SASL PLAIN"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_a_listener_asking_for_a_client_certificate_gets_the_one_pipelines_toml_names() {
    let Some(secured) = KafkaBroker::start_secured(true).await else { return };
    let broker = &secured.broker;
    let (lake, topic) = topic_with_messages(
        broker,
        "mutual",
        2,
        r#"for i in range(100): producer.send(topic, value=json.dumps({"id": i}).encode())"#,
    );
    let (certificate, key) = secured.client_certificate.clone().expect("a client certificate");
    let config = lake.dir.path().join("pipelines.toml");
    let write_config = |tls: &str| {
        let text = format!(
            "[profiles.events]\nkind = \"kafka\"\nbrokers = \"{}\"\n\
             sasl = {{ mechanism = \"SCRAM-SHA-512\", username = \"{}\", password = \"${{TEST_KAFKA_PASSWORD}}\" }}\n\
             tls = {tls}\n\n[[pipelines]]\nname = \"mutual\"\nprofile = \"events\"\ndest = \"{}\"\n\
             tables = [\"{topic}\"]\nschedule = \"15m\"\n",
            broker.brokers,
            secured.user,
            lake.dir.path().display()
        );
        std::fs::write(&config, text).expect("write pipelines.toml");
    };
    let run = || {
        Command::new(CONNECTOR)
            .args(["run", "--config", config.to_str().expect("utf-8"), "--once"])
            .env("TEST_KAFKA_PASSWORD", &secured.password)
            .output()
            .expect("run connector")
    };
    let ca = secured.ca.display();

    // Without the client certificate the listener ends the handshake: the run stops naming TLS.
    write_config(&format!("{{ ca = \"{ca}\" }}"));
    let refused = run();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && said.contains("refused the connector") && said.contains("over TLS"), "{said}");
    assert!(!said.contains(&secured.password), "no password shown: {said}");

    write_config(&format!(
        "{{ ca = \"{ca}\", certificate = \"{}\", key = \"{}\" }}",
        certificate.display(),
        key.display()
    ));
    let output = run();
    assert!(output.status.success(), "run with the client certificate: {}", String::from_utf8_lossy(&output.stderr));
    assert_exactly_once(&landed(&lake, &topic).await, 0..100);
}

/// `connector run --metrics-addr` with a continuous Kafka pipeline: `/metrics` shows each partition's consumer
/// lag, down to 0 once every message is read and committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_consumer_lag_per_partition_is_served_as_a_metric() {
    let broker = KafkaBroker::start();
    let (lake, topic) = topic_with_messages(
        &broker,
        "lagging",
        2,
        r#"for i in range(300): producer.send(topic, partition=i % 2, value=json.dumps({"id": i}).encode())"#,
    );
    let config = lake.dir.path().join("pipelines.toml");
    std::fs::write(
        &config,
        format!(
            "[profiles.events]\nkind = \"kafka\"\nbrokers = \"{}\"\nmax_messages_per_batch = 50\n\n[[pipelines]]\n\
             name = \"events\"\nprofile = \"events\"\ndest = \"{}\"\ntables = [\"{topic}\"]\nschedule = \"continuous\"\n",
            broker.brokers,
            lake.dir.path().display()
        ),
    )
    .expect("write pipelines.toml");
    let address = format!("127.0.0.1:{}", crate::support::loopback::free_port());
    let mut child = Command::new(CONNECTOR)
        .args(["run", "--config", config.to_str().expect("utf-8"), "--metrics-addr", &address])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run connector");
    let lag_line = |partition: i32| {
        format!(r#"connector_kafka_consumer_lag_messages{{pipeline="events",topic="{topic}",partition="{partition}"}}"#)
    };
    let value = |text: &str, prefix: &str| -> Option<f64> {
        text.lines().find_map(|line| line.strip_prefix(prefix)).and_then(|value| value.trim().parse().ok())
    };
    let rows_line = format!(r#"connector_rows_committed_total{{pipeline="events",table="kafka.{topic}"}}"#);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = match reqwest::get(format!("http://{address}/metrics")).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let caught_up = [0, 1].iter().all(|partition| value(&text, &lag_line(*partition)) == Some(0.0));
        if caught_up && value(&text, &rows_line) == Some(300.0) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "never caught up with 300 rows:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = child.kill();
    wait_for_exit(&mut child);
    assert!(text.contains("# TYPE connector_kafka_consumer_lag_messages gauge"), "{text}");
    assert_exactly_once(&landed(&lake, &topic).await, 0..300);
    // Each message read once: its value is what kafka-python sent (`{"id": 7}`), no key, no headers.
    let sent_bytes: usize = (0..300).map(|id| format!(r#"{{"id": {id}}}"#).len()).sum();
    let read = |name: &str| {
        value(&text, &format!(r#"connector_{name}_read_total{{pipeline="events",table="kafka.{topic}"}}"#))
    };
    assert_eq!((read("rows"), read("bytes")), (Some(300.0), Some(sent_bytes as f64)), "{text}");
    // The commits' lag is measured from the messages' timestamps (kafka-python stamps them as it sends).
    let lag = value(&text, &format!(r#"connector_source_lag_seconds{{pipeline="events",table="kafka.{topic}"}}"#));
    assert!(lag.is_some_and(|lag| (0.0..600.0).contains(&lag)), "{text}");
}
