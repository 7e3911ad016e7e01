//! Parquet settings benchmark: the CPU time and bytes of encoding sysbench-shaped snapshot rows with the sink's
//! writer settings, with its value encodings for tables older readers read (plain), and with Parquet's default
//! data page size (1 MiB), the order rotating.
//!
//! Rows go round-robin to four writers, as a table copied over four connections writes four Parquet parts at
//! once. Each row has sysbench's `id`, `k`, `c` (120 digits and dashes) and `pad` (60) and a snapshot's
//! metadata columns (the same operation, position and times on every row).
//!
//! Run: `cargo bench --bench parquet_pages` (rows: `BENCH_PAGES_ROWS=1000000`, rounds: `BENCH_PAGES_ROUNDS=7`).
//! Prints the median and minimum CPU seconds of this thread per setting and the bytes written.

use std::sync::Arc;

use connector_core::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use connector_core::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use connector_core::delta::{ValueEncodings, parquet_properties_for};
use connector_core::deltalake::parquet::arrow::ArrowWriter;
use connector_core::deltalake::parquet::file::properties::{DEFAULT_PAGE_SIZE, WriterProperties};

const BATCH_ROWS: usize = 16 * 1024;
const PARTS: usize = 4;

/// xorshift64: reproducible digits without a dependency.
struct Digits(u64);

impl Digits {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `groups` groups of 11 digits joined by dashes, as sysbench fills `c` and `pad`.
    fn text(&mut self, groups: usize) -> String {
        let groups: Vec<String> = (0..groups).map(|_| format!("{:011}", self.next() % 100_000_000_000)).collect();
        groups.join("-")
    }
}

fn batches(rows: usize) -> Vec<RecordBatch> {
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, true),
        Field::new("k", DataType::Int32, true),
        Field::new("c", DataType::Utf8, true),
        Field::new("pad", DataType::Utf8, true),
        Field::new("_cdc_op", DataType::Utf8, true),
        Field::new("_cdc_position", DataType::Utf8, true),
        Field::new("_cdc_commit_time", time.clone(), true),
        Field::new("_cdc_synced_at", time, true),
    ]));
    let mut digits = Digits(0x9e37_79b9_7f4a_7c15);
    let mut batches = Vec::new();
    for start in (0..rows).step_by(BATCH_ROWS) {
        let count = BATCH_ROWS.min(rows - start);
        let first_id = i32::try_from(start).expect("fewer than 2^31 rows");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(first_id..first_id + count as i32)),
            Arc::new(Int32Array::from_iter_values((0..count).map(|_| (digits.next() % 1_000_000) as i32))),
            Arc::new(StringArray::from_iter_values((0..count).map(|_| digits.text(10)))),
            Arc::new(StringArray::from_iter_values((0..count).map(|_| digits.text(5)))),
            Arc::new(StringArray::new_repeated("snapshot", count)),
            Arc::new(StringArray::new_repeated("mariadb-bin.000002:468902521 (gtid 0-1-1501)", count)),
            Arc::new(TimestampMicrosecondArray::from_value(1_764_000_000_000_000, count).with_timezone("UTC")),
            Arc::new(TimestampMicrosecondArray::from_value(1_764_000_001_000_000, count).with_timezone("UTC")),
        ];
        batches.push(RecordBatch::try_new(schema.clone(), columns).expect("columns match the schema"));
    }
    batches
}

/// CPU seconds (user and system) this thread has used: the encoding runs on it alone.
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("Linux /proc");
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    // /proc counts in USER_HZ, which is 100 on Linux whatever the kernel's own tick rate.
    ticks as f64 / 100.0
}

/// Encodes `batches` round-robin into [`PARTS`] files; returns the CPU seconds and the bytes written.
fn encode(batches: &[RecordBatch], properties: &WriterProperties) -> (f64, usize) {
    let started = thread_cpu_seconds();
    let schema = batches[0].schema();
    let mut writers: Vec<ArrowWriter<Vec<u8>>> = (0..PARTS)
        .map(|_| ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties.clone())).expect("writer"))
        .collect();
    for (index, batch) in batches.iter().enumerate() {
        writers[index % PARTS].write(batch).expect("encoded");
    }
    let bytes = writers.into_iter().map(|writer| writer.into_inner().expect("finished").len()).sum();
    (thread_cpu_seconds() - started, bytes)
}

fn main() {
    let rows = std::env::var("BENCH_PAGES_ROWS").ok().and_then(|value| value.parse().ok()).unwrap_or(1_000_000);
    let rounds = std::env::var("BENCH_PAGES_ROUNDS").ok().and_then(|value| value.parse().ok()).unwrap_or(7);
    let batches = batches(rows);
    let sink = parquet_properties_for(&batches[0], ValueEncodings::Delta);
    let settings = [
        (format!("sink's ({} KiB pages, delta text)", sink.data_page_size_limit() / 1024), sink.clone()),
        (
            "plain values (tables old readers read)".to_string(),
            parquet_properties_for(&batches[0], ValueEncodings::Plain),
        ),
        (
            format!("Parquet's default pages ({} KiB)", DEFAULT_PAGE_SIZE / 1024),
            sink.into_builder().set_data_page_size_limit(DEFAULT_PAGE_SIZE).build(),
        ),
    ];
    let mut seconds = vec![Vec::new(); settings.len()];
    let mut bytes = vec![0; settings.len()];
    // Each round starts with the next setting, so that none always runs after the same one.
    for round in 0..rounds {
        for index in (0..settings.len()).map(|index| (index + round) % settings.len()) {
            let properties = &settings[index].1;
            let (cpu, written) = encode(&batches, properties);
            seconds[index].push(cpu);
            bytes[index] = written;
        }
    }
    println!("{rows} sysbench-shaped snapshot rows into {PARTS} Parquet parts, {rounds} rounds, order rotating:");
    for (index, (name, _)) in settings.iter().enumerate() {
        let runs = &mut seconds[index];
        runs.sort_by(f64::total_cmp);
        println!(
            "  {name:34} median {:.3} s CPU (min {:.3}), {:.0} rows/s, {:.1} MB",
            runs[runs.len() / 2],
            runs[0],
            rows as f64 / runs[runs.len() / 2],
            bytes[index] as f64 / 1e6
        );
    }
}
