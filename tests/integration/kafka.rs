//! `connector sync kafka` against a Kafka-compatible broker (`tansu`, or `CONNECTOR_TEST_KAFKA_BROKERS`), with
//! messages produced by an independent client (Python's kafka-python): every message lands once as a row with
//! its partition, offset, key and headers; the offsets live in the Delta log, so later syncs read only what is
//! new, partitions added to a topic are read from their start, and a sync killed at random moments lands every
//! message exactly once when run again.

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use connector_core::schema::TableId;

use crate::support::connector_process::wait_for_exit;
use crate::support::delta::{TempLake, read_rows};
use crate::support::kafka::KafkaBroker;

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

fn sync_kafka(broker: &KafkaBroker, lake: &TempLake, topic: &str, extra: &[&str]) -> Output {
    Command::new(CONNECTOR)
        .args(["sync", "kafka", "--brokers", &broker.brokers, "--topics", topic, "--once"])
        .args(["--dest", lake.dir.path().to_str().expect("utf-8")])
        .args(extra)
        .env("CONNECTOR_LOG", "info")
        .output()
        .expect("run connector")
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
    let lake = TempLake::new();
    let topic = unique_topic("orders");
    broker.create_topic(&topic, 3);
    broker.produce(
        &topic,
        r#"
for i in range(3000):
    value = {"id": i, "amount": round(i / 4, 2), "note": f"n{i}"}
    producer.send(topic, key=str(i).encode(), value=json.dumps(value).encode(), headers=[("trace", f"t{i}".encode())])
"#,
    );
    let output = sync_kafka(&broker, &lake, &topic, &[]);
    assert_synced(&output);
    assert_exactly_once(&landed(&lake, &topic).await, 0..3000);
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
for i in range(3000, 3500):
    producer.send(topic, partition=i % {partitions}, value=json.dumps({{"id": i, "coupon": f"c{{i}}"}}).encode())
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_sync_killed_at_random_moments_lands_every_message_exactly_once() {
    let broker = KafkaBroker::start();
    let lake = TempLake::new();
    let topic = unique_topic("events");
    broker.create_topic(&topic, 4);
    broker.produce(
        &topic,
        r#"
for i in range(20000):
    producer.send(topic, value=json.dumps({"id": i, "payload": "x" * (i % 200)}).encode())
"#,
    );
    // Small batches: many commits, so kills land between and inside them.
    let batches = ["--max-messages-per-batch", "1000"];
    let timing_lake = TempLake::new();
    let started = std::time::Instant::now();
    assert_synced(&sync_kafka(&broker, &timing_lake, &topic, &batches));
    let whole = started.elapsed().as_millis() as u64;
    let seed = fastrand::u64(..);
    let mut random = fastrand::Rng::with_seed(seed);
    let mut kills = 0;
    for _ in 0..6 {
        let mut child = Command::new(CONNECTOR)
            .args(["sync", "kafka", "--brokers", &broker.brokers, "--topics", &topic, "--once"])
            .args(["--dest", lake.dir.path().to_str().expect("utf-8")])
            .args(batches)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run connector");
        tokio::time::sleep(Duration::from_millis(random.u64(10..whole.max(20)))).await;
        if child.try_wait().expect("poll").is_none() {
            child.kill().expect("kill -9");
            kills += 1;
        }
        wait_for_exit(&mut child);
    }
    assert!(kills > 0, "seed {seed}: no run was killed (a whole sync takes {whole} ms)");
    assert_synced(&sync_kafka(&broker, &lake, &topic, &batches));
    assert_exactly_once(&landed(&lake, &topic).await, 0..20000);
}
