//! The files source's other formats, from independent writers: Avro object container files written by fastavro
//! (logical types, nulls, the null/deflate/bzip2/xz codecs, files of different schemas widening the table, a file
//! cut short).

use crate::files::{assert_synced, python, rows_per_file, sync_files, table_url};
use crate::support::delta::{TempLake, delta_commits_under, python_reading, read_rows};

/// Writes Avro files with fastavro into the directory `sys.argv[1]`: `orders-1.avro` (deflate, 300 rows in many
/// blocks, every logical type), `orders-2.avro` (bzip2, 50 rows, another schema: `id` an int, a `coupon`, no
/// `qty`). Prints `id|name|qty|amount|coupon` per row, as the lake is read back.
const WRITE_ORDERS_AVRO: &str = r#"
import datetime, decimal, sys, uuid
import fastavro
directory = sys.argv[1]
utc = datetime.timezone.utc
address = {"type": "record", "name": "address", "fields": [
    {"name": "city", "type": "string"}, {"name": "zip", "type": "int"}]}
full = fastavro.parse_schema({"type": "record", "name": "order", "namespace": "shop", "fields": [
    {"name": "id", "type": "long"},
    {"name": "name", "type": "string"},
    {"name": "qty", "type": ["null", "int"]},
    {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "state", "type": {"type": "enum", "name": "state", "symbols": ["open", "shut"]}},
    {"name": "score", "type": "double"},
    {"name": "ok", "type": "boolean"},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attributes", "type": {"type": "map", "values": "long"}},
    {"name": "either", "type": ["int", "string"]},
    {"name": "address", "type": ["null", address]},
    {"name": "payload", "type": "bytes"},
]})
def order(i):
    return {
        "id": i, "name": f"n{i}", "qty": None if i % 5 == 0 else i,
        "amount": decimal.Decimal(i) / 4 if i % 7 else decimal.Decimal("-12345678.90"),
        "at": datetime.datetime(2026, 12, 5, tzinfo=utc) + datetime.timedelta(seconds=i, milliseconds=i),
        "local": datetime.datetime(2026, 1, 1) + datetime.timedelta(microseconds=i),
        "day": datetime.date(2026, 12, 1) + datetime.timedelta(days=i % 28),
        "ref": uuid.UUID(int=i), "state": "open" if i % 2 else "shut", "score": i / 8, "ok": i % 3 == 0,
        "tags": [f"t{i}", "x"], "attributes": {"k": i},
        "either": i if i % 2 else f"s{i}",
        "address": None if i % 4 == 0 else {"city": f"c{i}", "zip": i},
        "payload": bytes([i % 256, 0]),
    }
orders = [order(i) for i in range(300)]
with open(f"{directory}/orders-1.avro", "wb") as f:
    fastavro.writer(f, full, orders, codec="deflate", sync_interval=2000)
other = fastavro.parse_schema({"type": "record", "name": "coupon_order", "fields": [
    {"name": "id", "type": "int"}, {"name": "name", "type": "string"}, {"name": "coupon", "type": ["null", "string"]}]})
coupons = [{"id": i, "name": f"n{i}", "coupon": f"c{i}" if i % 2 else None} for i in range(1000, 1050)]
with open(f"{directory}/orders-2.avro", "wb") as f:
    fastavro.writer(f, other, coupons, codec="bzip2")
for o in orders:
    qty = "∅" if o["qty"] is None else o["qty"]
    print(f'{o["id"]}|{o["name"]}|{qty}|{o["amount"]:.2f}|∅')
for o in coupons:
    print(f'{o["id"]}|{o["name"]}|∅|∅|{o["coupon"] or "∅"}')
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_files_from_fastavro_land_with_their_logical_types_and_widen_the_table() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let landing_path = landing.path().to_str().expect("utf-8");
    let mut expected: Vec<String> = python(WRITE_ORDERS_AVRO, &[landing_path]).lines().map(String::from).collect();
    assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &[]));

    let url = table_url(&lake, "orders");
    let mut landed = read_rows(&url, &["id", "name", "qty", "amount", "coupon"]).await;
    let numeric = |row: &String| row.split('|').next().and_then(|id| id.parse::<i64>().ok()).unwrap_or(-1);
    landed.sort_by_key(numeric);
    expected.sort_by_key(numeric);
    assert_eq!(landed, expected, "every row of both files, nulls where a file lacks the column");
    let per_file = rows_per_file(&url).await;
    assert_eq!(per_file.values().copied().collect::<Vec<_>>(), [300, 50], "{per_file:?}");

    let logical = read_rows(&url, &["id", "at", "local", "day", "ref", "state", "score", "ok"]).await;
    assert_eq!(
        logical[3],
        "3|2026-12-05T00:00:03.003Z|2026-01-01T00:00:00.000003|2026-12-04|00000000-0000-0000-0000-000000000003|open|0.375|true",
        "timestamps in UTC and without a zone, dates, uuids and enums as written"
    );
    let nested = read_rows(&url, &["id", "tags", "attributes", "either", "address", "payload"]).await;
    assert_eq!(nested[3], r#"3|[t3, x]|{k: 3}|3|{city: c3, zip: 3}|0300"#, "{:?}", &nested[..5]);
    assert_eq!(nested[4], r#"4|[t4, x]|{k: 4}|"s4"|∅|0400"#, "a union of two types is JSON text; a null record");
    let decimal = read_rows(&url, &["id", "amount"]).await;
    assert_eq!(decimal[7], "7|-12345678.90", "decimals exact");

    // A later file with a column the table lacks, under schema_evolution rescue: its values are kept, with the file.
    python(
        r#"
import fastavro, sys
schema = fastavro.parse_schema({"type": "record", "name": "late", "fields": [
    {"name": "id", "type": "long"}, {"name": "note", "type": "string"}]})
with open(sys.argv[1] + "/orders-3.avro", "wb") as f:
    fastavro.writer(f, schema, [{"id": 5000 + i, "note": f"late {i}"} for i in range(10)], codec="xz")
"#,
        &[landing_path],
    );
    assert_synced(&sync_files(landing_path, lake.dir.path(), "orders", &["--schema-evolution", "rescue"]));
    let rescued = read_rows(&url, &["id", "_rescued_data"]).await;
    let late = rescued.iter().find(|row| row.starts_with("5000|")).expect("the late file's rows");
    assert!(late.contains(r#""note":"late 0""#) && late.contains("orders-3.avro"), "{late}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_avro_file_cut_short_or_not_avro_stops_its_batch_naming_the_file_with_nothing_committed() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let landing_path = landing.path().to_str().expect("utf-8");
    python(
        r#"
import fastavro, sys
schema = fastavro.parse_schema({"type": "record", "name": "row", "fields": [
    {"name": "id", "type": "long"}, {"name": "name", "type": "string"}]})
for name, codec in [("a", "null"), ("b", "deflate")]:
    with open(f"{sys.argv[1]}/{name}.avro", "wb") as f:
        fastavro.writer(f, schema, [{"id": i, "name": f"n{i}"} for i in range(5000)], codec=codec)
"#,
        &[landing_path],
    );
    // Cut in the middle of a block, as by an upload that stopped.
    let broken = landing.path().join("b.avro");
    let bytes = std::fs::read(&broken).expect("b.avro");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).expect("cut short");
    let output = sync_files(landing_path, lake.dir.path(), "rows", &[]);
    assert!(!output.status.success(), "an Avro file cut short must stop the sync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("b.avro") && stderr.contains("as Avro"), "names the file and its format: {stderr}");
    assert!(stderr.contains("nothing of its batch was committed"), "{stderr}");
    assert!(delta_commits_under(lake.dir.path()).is_empty(), "nothing committed");

    std::fs::write(&broken, "id,name\n1,a\n").expect("a CSV file named .avro");
    let output = sync_files(landing_path, lake.dir.path(), "rows", &[]);
    assert!(!output.status.success(), "a file that is not Avro must stop the sync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("b.avro") && stderr.contains("as Avro"), "{stderr}");
    assert!(delta_commits_under(lake.dir.path()).is_empty(), "nothing committed");

    std::fs::remove_file(&broken).expect("the broken file removed");
    std::fs::write(landing.path().join("empty.avro"), "").expect("an empty file");
    assert_synced(&sync_files(landing_path, lake.dir.path(), "rows", &[]));
    let url = table_url(&lake, "rows");
    assert_eq!(read_rows(&url, &["id"]).await.len(), 5000, "the good file, once; the empty one has no rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_files_land_a_row_per_line_without_line_endings_compressed_or_not() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let landing_path = landing.path().to_str().expect("utf-8");
    // Unix and Windows line endings, an empty line, a last line without newline, a gzip-compressed log.
    let printed = python(
        r#"
import gzip, sys
directory = sys.argv[1]
lines = {"app.log": [f"INFO request {i} took {i % 97} ms" for i in range(2000)],
         "notes.txt": ["first, with a comma", "", "  indented\ttab", "ünïcödé", "last"]}
with open(f"{directory}/app.log", "w", newline="\n") as f:
    f.write("\n".join(lines["app.log"]) + "\n")
with gzip.open(f"{directory}/notes.txt.gz", "wt", newline="\r\n") as f:
    f.write("\n".join(lines["notes.txt"]))
for name, values in lines.items():
    for value in values:
        print(value)
"#,
        &[landing_path],
    );
    assert_synced(&sync_files(landing_path, lake.dir.path(), "logs", &[]));
    let url = table_url(&lake, "logs");
    let mut expected: Vec<String> = printed.lines().map(String::from).collect();
    expected.sort();
    let landed = read_rows(&url, &["value"]).await;
    assert_eq!(landed, expected, "every line once, as written, without its line ending");
    let per_file = rows_per_file(&url).await;
    assert_eq!(per_file.values().copied().collect::<Vec<_>>(), [2000, 5], "{per_file:?}");
    let numbered = read_rows(&url, &["_cdc_file_row", "value"]).await;
    assert!(numbered.contains(&"1|".to_string()), "the empty line is a row, numbered: {numbered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_files_land_a_row_each_with_their_content_and_one_over_the_limit_names_the_setting() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let landing_path = landing.path().to_str().expect("utf-8");
    // Bytes of every value (a gzip file's content is its compressed bytes), and an empty file; set times.
    let printed = python(
        r#"
import gzip, os, random, sys
directory = sys.argv[1]
random.seed(7)
files = {"image.png": bytes(random.randrange(256) for _ in range(3000)), "empty.bin": b"",
         "notes.txt.gz": gzip.compress(b"hello\n")}
for name, content in files.items():
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(content)
    os.utime(path, (1767323045, 1767323045))  # 2026-01-02T03:04:05Z
    print(f"{len(content)}|{content.hex()}|2026-01-02T03:04:05Z")
"#,
        &[landing_path],
    );
    let output = sync_files(landing_path, lake.dir.path(), "blobs", &["--format", "binaryFile"]);
    assert_synced(&output);
    let url = table_url(&lake, "blobs");
    let mut expected: Vec<String> = printed.lines().map(String::from).collect();
    expected.sort_by_key(|row| row.split('|').next().and_then(|length| length.parse::<i64>().ok()));
    let landed = read_rows(&url, &["length", "content", "modification_time"]).await;
    assert_eq!(landed, expected, "each file's bytes, length and time as written");
    let paths = read_rows(&url, &["path"]).await;
    assert!(paths.iter().any(|path| path.starts_with("file:///") && path.ends_with("/image.png")), "{paths:?}");

    std::fs::write(landing.path().join("big.bin"), vec![1u8; 2000]).expect("a larger file");
    let output =
        sync_files(landing_path, lake.dir.path(), "blobs", &["--format", "binary", "--max-binary-file-bytes", "1000"]);
    assert!(!output.status.success(), "a file over the limit must stop the sync");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("big.bin") && stderr.contains("max_binary_file_bytes"), "{stderr}");
    assert!(stderr.contains("nothing of its batch was committed"), "{stderr}");
    assert_eq!(read_rows(&url, &["length"]).await.len(), 3, "nothing more committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_arrays_and_pretty_printed_documents_land_a_row_per_record() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    // Python's json module: an array of 20,000 records over several chunks (a large document streamed, not read
    // whole), gzip-compressed, with strings holding brackets, commas and escaped quotes; and pretty-printed
    // objects, two to a file.
    python(
        r#"
import gzip, json, sys
root = sys.argv[1]
records = [{"id": i, "name": f'n{i}, [x] {{"q"}}', "tags": [i, i + 1], "nested": {"k": i % 3}} for i in range(20000)]
with gzip.open(f"{root}/array.json.gz", "wt") as f:
    json.dump(records, f, indent=2)
with open(f"{root}/pretty.json", "w") as f:
    for i in (100000, 100001):
        f.write(json.dumps({"id": i, "name": f"p{i}", "tags": [], "nested": {"k": 9}}, indent=4) + "\n")
"#,
        &[landing.path().to_str().expect("utf-8")],
    );
    let array = landing.path().join("array.json.gz");
    assert_synced(&sync_files(array.to_str().expect("utf-8"), lake.dir.path(), "records", &[]));
    let url = table_url(&lake, "records");
    let rows = read_rows(&url, &["id", "name", "_cdc_file_row"]).await;
    assert_eq!(rows.len(), 20000, "a row per element");
    assert_eq!(rows[7], r#"7|n7, [x] {"q"}|7"#, "strings kept whole, rows numbered by element");

    // Pretty-printed objects need --multi-line (as Spark's multiLine); without it each line is a broken record.
    let pretty = landing.path().join("pretty.json");
    let output = sync_files(pretty.to_str().expect("utf-8"), lake.dir.path(), "pretty", &["--strict"]);
    assert!(!output.status.success(), "pretty-printed JSON read as lines cannot be records");
    assert!(delta_commits_under(&lake.dir.path().join("raw/pretty")).is_empty(), "nothing committed");
    assert_synced(&sync_files(pretty.to_str().expect("utf-8"), lake.dir.path(), "pretty", &["--multi-line"]));
    let rows = read_rows(&table_url(&lake, "pretty"), &["id", "name", "_rescued_data"]).await;
    assert_eq!(rows, ["100000|p100000|∅", "100001|p100001|∅"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_in_other_encodings_and_date_patterns_lands_as_text_dates_and_timestamps() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    // Python's csv module: Latin-1 with day-first dates; UTF-16 (with its byte order mark) and UTF-8 with a byte
    // order mark, as spreadsheets export them.
    python(
        r#"
import csv, sys
root = sys.argv[1]
rows = [["id", "name", "day", "at"], [1, "café", "05/12/2026", "05/12/2026 10:30"], [2, "naïve", "31/01/1999", "31/01/1999 23:59"]]
for name, encoding in [("latin.csv", "latin-1"), ("wide.csv", "utf-16"), ("excel.csv", "utf-8-sig")]:
    with open(f"{root}/{name}", "w", newline="", encoding=encoding) as f:
        csv.writer(f).writerows(rows)
"#,
        &[landing.path().to_str().expect("utf-8")],
    );
    let lake_path = lake.dir.path().to_str().expect("utf-8");
    let patterns = ["--date-format", "%d/%m/%Y", "--timestamp-format", "%d/%m/%Y %H:%M"];
    let cases = [("latin.csv", "latin1", "latin"), ("wide.csv", "utf-16le", "wide"), ("excel.csv", "utf-8", "excel")];
    for (name, encoding, table) in cases {
        let path = landing.path().join(name);
        let table = format!("raw.{table}");
        let args = [path.to_str().expect("utf-8"), "--dest", lake_path, "--table", &table, "--encoding", encoding];
        let output = crate::files::load(&[args.as_slice(), &patterns].concat());
        assert_synced(&output);
        let printed = String::from_utf8_lossy(&output.stdout);
        for column in ["  id bigint\n", "  name string\n", "  day date\n", "  at timestamp_ntz\n"] {
            assert!(printed.contains(column), "{name}: {column:?} in {printed}");
        }
        let url = lake.table_url(&connector_core::schema::TableId::parse(&table).expect("a table"));
        let rows = read_rows(&url, &["id", "name", "day", "at"]).await;
        assert_eq!(rows, ["1|café|2026-12-05|2026-12-05T10:30:00", "2|naïve|1999-01-31|1999-01-31T23:59:00"], "{name}");
    }

    // Read as UTF-8 (the default), the Latin-1 file's names do not parse and the error names the file.
    let latin = landing.path().join("latin.csv");
    let output = sync_files(latin.to_str().expect("utf-8"), lake.dir.path(), "latin_as_utf8", &[]);
    assert!(!output.status.success(), "Latin-1 bytes are not UTF-8");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("latin.csv") && stderr.contains("UTF"), "{stderr}");
}

/// Numbers with a point in JSON lines (Python's json module) land as exact decimals, as CSV's do; a later value
/// the decimal cannot hold as it is (more fraction or whole digits) is rescued, never rounded; and numbers past
/// a double's precision keep every digit in a hinted decimal, whether the chunk decodes at once or line by line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_numbers_with_a_point_land_as_exact_decimals_and_values_that_do_not_fit_are_rescued() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    let root = landing.path().to_str().expect("utf-8");
    python(
        r#"
import json, sys
with open(f"{sys.argv[1]}/a.jsonl", "w") as f:
    for i in range(3000):
        f.write(json.dumps({"id": i, "amount": round(1000 + i / 100, 2), "ratio": 1.5e-3 * i}) + "\n")
"#,
        &[root],
    );
    assert_synced(&sync_files(root, lake.dir.path(), "amounts", &[]));
    let url = table_url(&lake, "amounts");
    let rows = read_rows(&url, &["id", "amount"]).await;
    assert_eq!(rows.len(), 3000);
    assert_eq!(&rows[..3], ["0|1000.00", "1|1000.01", "2|1000.02"], "decimal(6,2), exact");
    assert_eq!(rows[2999], "2999|1029.99");
    let ratios = read_rows(&url, &["ratio"]).await;
    assert!(ratios.iter().any(|ratio| ratio.contains('e') || ratio.len() > 8), "exponents make doubles: {ratios:?}");

    python(
        r#"
import json, sys
with open(f"{sys.argv[1]}/b.jsonl", "w") as f:
    for id, amount in [(5000, 7.25), (5001, 12.345), (5002, 123456.5)]:
        f.write(json.dumps({"id": id, "amount": amount}) + "\n")
"#,
        &[root],
    );
    assert_synced(&sync_files(root, lake.dir.path(), "amounts", &[]));
    let rows = read_rows(&url, &["id", "amount", "_rescued_data"]).await;
    let later: Vec<&String> = rows.iter().filter(|row| row.starts_with("500") && row.as_bytes()[4] == b'|').collect();
    assert_eq!(later.len(), 3, "{later:?}");
    assert_eq!(later[0], "5000|7.25|∅");
    assert!(later[1].starts_with("5001|∅|") && later[1].contains(r#""amount":"12.345""#), "{}", later[1]);
    assert!(later[2].starts_with("5002|∅|") && later[2].contains(r#""amount":"123456.5""#), "{}", later[2]);

    // Hinted: 26 digits (a double keeps 17), and a value with more fraction digits than the hint's scale. The
    // second file has a line that is not JSON, so its chunk is decoded line by line.
    let precise = tempfile::tempdir().expect("directory");
    let lines = "{\"id\": 1, \"amount\": 12345678901234567.123456789}\n{\"id\": 2, \"amount\": 1.1234567891}\n";
    std::fs::write(precise.path().join("at-once.jsonl"), lines).expect("write");
    std::fs::write(precise.path().join("line-by-line.jsonl"), format!("{lines}not json\n")).expect("write");
    let hints = ["--schema-hints", "amount decimal(38,9)"];
    assert_synced(&sync_files(precise.path().to_str().expect("utf-8"), lake.dir.path(), "precise", &hints));
    let rows = read_rows(&table_url(&lake, "precise"), &["_cdc_file_path", "id", "amount", "_rescued_data"]).await;
    for file in ["at-once.jsonl", "line-by-line.jsonl"] {
        let of_file: Vec<&String> = rows.iter().filter(|row| row.contains(file)).collect();
        assert!(of_file.iter().any(|row| row.contains("|1|12345678901234567.123456789|∅")), "{file}: {of_file:?}");
        assert!(
            of_file.iter().any(|row| row.contains("|2|∅|") && row.contains(r#""amount":"1.1234567891""#)),
            "{file}: rescued, not cut to 1.123456789: {of_file:?}"
        );
    }
}

/// JSON lines and text files in other encodings (Python's json module, written as UTF-16 and Latin-1) land as
/// text; JSON strings that are all dates or timestamps, ISO 8601 or in the given patterns, land as dates and
/// timestamps, and a later value in another form is rescued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_text_in_other_encodings_and_json_dates_land_typed() {
    let landing = tempfile::tempdir().expect("landing directory");
    let lake = TempLake::new();
    python(
        r#"
import json, sys
root = sys.argv[1]
rows = [{"id": 1, "name": "café", "day": "05/12/2026", "at": "05/12/2026 10:30", "seen": "2026-12-05T10:30:00Z"},
        {"id": 2, "name": "naïve", "day": "31/01/1999", "at": "31/01/1999 23:59", "seen": "1999-01-31T23:59:00+01:00"}]
with open(f"{root}/wide.jsonl", "w", encoding="utf-16") as f:
    for row in rows:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
with open(f"{root}/notes.txt", "w", encoding="latin-1") as f:
    f.write("première ligne\nzweite Zeile: Grüße\n")
"#,
        &[landing.path().to_str().expect("utf-8")],
    );
    let lake_path = lake.dir.path().to_str().expect("utf-8");
    let wide = landing.path().join("wide.jsonl");
    let patterns = ["--date-format", "%d/%m/%Y", "--timestamp-format", "%d/%m/%Y %H:%M", "--encoding", "utf-16le"];
    let args = [wide.to_str().expect("utf-8"), "--dest", lake_path, "--table", "raw.wide"];
    let output = crate::files::load(&[args.as_slice(), &patterns].concat());
    assert_synced(&output);
    let printed = String::from_utf8_lossy(&output.stdout);
    // With a timestamp pattern, timestamps are those written in it (as for CSV): `seen` stays text here.
    for column in ["  name string\n", "  day date\n", "  at timestamp_ntz\n", "  seen string\n"] {
        assert!(printed.contains(column), "{column:?} in {printed}");
    }
    let url = lake.table_url(&connector_core::schema::TableId::new("raw", "wide"));
    let rows = read_rows(&url, &["id", "name", "day", "at"]).await;
    assert_eq!(rows, ["1|café|2026-12-05|2026-12-05T10:30:00", "2|naïve|1999-01-31|1999-01-31T23:59:00"]);

    // Without patterns, ISO 8601 dates and zoned timestamps.
    let iso = landing.path().join("iso.jsonl");
    let lines = "{\"day\": \"2026-12-05\", \"seen\": \"2026-12-05T10:30:00Z\"}\n\
                 {\"day\": \"1999-01-31\", \"seen\": \"1999-01-31T23:59:00+01:00\"}\n";
    std::fs::write(&iso, lines).expect("write");
    let output = crate::files::load(&[iso.to_str().expect("utf-8"), "--dest", lake_path, "--table", "raw.iso"]);
    assert_synced(&output);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("  day date\n") && printed.contains("  seen timestamp\n"), "{printed}");
    let rows = read_rows(&lake.table_url(&connector_core::schema::TableId::new("raw", "iso")), &["day", "seen"]).await;
    assert_eq!(rows, ["1999-01-31|1999-01-31T22:59:00Z", "2026-12-05|2026-12-05T10:30:00Z"]);

    // A later file with a day in another form: rescued, not a null in its place.
    let later = landing.path().join("later.jsonl");
    let line =
        r#"{"id": 3, "name": "x", "day": "2026-12-06", "at": "06/12/2026 08:00", "seen": "2026-12-06T08:00:00Z"}"#;
    std::fs::write(&later, format!("{line}\n")).expect("write");
    let args = [later.to_str().expect("utf-8"), "--dest", lake_path, "--table", "raw.wide", "--mode", "append"];
    assert_synced(&crate::files::load(&[args.as_slice(), &patterns[..4]].concat()));
    let rows = read_rows(&url, &["id", "day", "at", "_rescued_data"]).await;
    assert!(rows[2].starts_with("3|∅|2026-12-06T08:00:00|") && rows[2].contains(r#""day":"2026-12-06""#), "{rows:?}");

    let notes = landing.path().join("notes.txt");
    let args = [notes.to_str().expect("utf-8"), "--dest", lake_path, "--table", "raw.notes", "--encoding", "latin1"];
    assert_synced(&crate::files::load(&args));
    let lines = read_rows(&lake.table_url(&connector_core::schema::TableId::new("raw", "notes")), &["value"]).await;
    assert_eq!(lines, ["première ligne", "zweite Zeile: Grüße"]);
}

/// `schema_evolution = add_new_columns_with_type_widening`: later files (Python's csv module, pyarrow) whose
/// values need a wider type widen the column where Delta's type widening keeps every value (a fraction in a
/// `bigint` column, more decimal places, a time of day in a `date` column, a 64-bit integer in an `int` column);
/// the earlier rows keep their values, nothing is rescued, and Polars reads the widened table. Without the
/// mode the same values are rescued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_type_widening_later_files_widen_columns_and_earlier_rows_keep_their_values() {
    let lake = TempLake::new();
    let write_csv = r#"
import csv, sys
rows = {
    "a.csv": [(1, 3, "10.25", "2026-12-01"), (2, 4, "11.50", "2026-12-02")],
    "b.csv": [(3, "2.5", "12.375", "2026-12-05 10:30:00")],
}
for name, lines in rows.items():
    with open(f"{sys.argv[1]}/{name}", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "qty", "amount", "day"])
        writer.writerows(lines)
"#;
    let write_parquet = r#"
import sys, pyarrow, pyarrow.parquet
pyarrow.parquet.write_table(pyarrow.table({"id": pyarrow.array([1, 2], pyarrow.int32())}), f"{sys.argv[1]}/a.parquet")
pyarrow.parquet.write_table(pyarrow.table({"id": pyarrow.array([2**40], pyarrow.int64())}), f"{sys.argv[1]}/b.parquet")
"#;
    for (mode, table) in [("add_new_columns", "kept"), ("add_new_columns_with_type_widening", "widened")] {
        let landing = tempfile::tempdir().expect("landing directory");
        let root = landing.path().to_str().expect("utf-8");
        python(write_csv, &[root]);
        let mode_flags = ["--schema-evolution", mode];
        // The first file alone makes the table: bigint, decimal(4,2), date.
        assert_synced(&sync_files(root, lake.dir.path(), table, &[&mode_flags[..], &["--glob", "a.csv"]].concat()));
        assert_synced(&sync_files(root, lake.dir.path(), table, &[&mode_flags[..], &["--glob", "*.csv"]].concat()));
        let url = table_url(&lake, table);
        let rows = read_rows(&url, &["id", "qty", "amount", "day", "_rescued_data"]).await;
        if table == "kept" {
            assert_eq!(rows[..2], ["1|3|10.25|2026-12-01|∅", "2|4|11.50|2026-12-02|∅"], "{rows:?}");
            for rescued in [r#""qty":"2.5""#, r#""amount":"12.375""#, r#""day":"2026-12-05 10:30:00""#] {
                assert!(rows[2].starts_with("3|∅|∅|∅|") && rows[2].contains(rescued), "{rows:?}");
            }
            continue;
        }
        assert_eq!(
            rows,
            [
                "1|3.0|10.250|2026-12-01T00:00:00|∅",
                "2|4.0|11.500|2026-12-02T00:00:00|∅",
                "3|2.5|12.375|2026-12-05T10:30:00|∅",
            ],
            "widened to decimal(21,1), decimal(5,3) and timestamp_ntz, earlier rows kept"
        );
        let script = r#"
import os, sys, polars
table = polars.read_delta(sys.argv[1]).sort("id")
print(dict(table.schema))
for row in table.select("id", "qty", "amount", "day").iter_rows():
    print("|".join(str(value) for value in row))
sys.stdout.flush()
os._exit(0)
"#;
        let polars = python_reading(script, &url, "polars");
        let lines: Vec<&str> = polars.lines().collect();
        assert!(lines[0].contains("'qty': Decimal(precision=21, scale=1)"), "{polars}");
        assert!(lines[0].contains("'day': Datetime(time_unit='us', time_zone=None)"), "{polars}");
        assert_eq!(
            lines[1..],
            [
                "1|3.0|10.250|2026-12-01 00:00:00",
                "2|4.0|11.500|2026-12-02 00:00:00",
                "3|2.5|12.375|2026-12-05 10:30:00"
            ]
        );

        python(write_parquet, &[root]);
        let parquet = format!("{table}_parquet");
        assert_synced(&sync_files(
            root,
            lake.dir.path(),
            &parquet,
            &[&mode_flags[..], &["--glob", "a.parquet"]].concat(),
        ));
        assert_synced(&sync_files(
            root,
            lake.dir.path(),
            &parquet,
            &[&mode_flags[..], &["--glob", "*.parquet"]].concat(),
        ));
        let rows = read_rows(&table_url(&lake, &parquet), &["id", "_rescued_data"]).await;
        assert_eq!(rows, ["1|∅", "2|∅", "1099511627776|∅"], "int widened to bigint");
    }
}

/// `--infer-sample-bytes` (`infer_sample_bytes`): by default the columns come from a CSV file's first 16,384 rows
/// and a JSON lines file's first 4,096 lines, so a value of a wider type after them is rescued; sampling the
/// rows within the first megabyte types the column for it, and the value lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_larger_inference_sample_types_columns_by_values_past_the_first_rows() {
    let lake = TempLake::new();
    let write = r#"
import csv, json, sys
with open(f"{sys.argv[1]}/late.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "n"])
    writer.writerows([(i, i) for i in range(20000)] + [(20000, "2.5")])
with open(f"{sys.argv[1]}/late.jsonl", "w") as f:
    for i in range(5000):
        f.write(json.dumps({"id": i, "n": i}) + "\n")
    f.write(json.dumps({"id": 5000, "n": 2.5}) + "\n")
"#;
    for (flags, table) in [(vec![], "first_rows"), (vec!["--infer-sample-bytes", "1000000"], "first_megabyte")] {
        let landing = tempfile::tempdir().expect("landing directory");
        let root = landing.path().to_str().expect("utf-8");
        python(write, &[root]);
        for format in ["csv", "jsonl"] {
            let name = format!("{table}_{format}");
            let glob = format!("*.{format}");
            assert_synced(&sync_files(root, lake.dir.path(), &name, &[&flags[..], &["--glob", &glob]].concat()));
            let rows = read_rows(&table_url(&lake, &name), &["id", "n", "_rescued_data"]).await;
            let last_id = if format == "csv" { "20000|" } else { "5000|" };
            let last = rows.iter().find(|row| row.starts_with(last_id)).expect("the last row");
            if flags.is_empty() {
                assert!(
                    last.contains("|∅|") && (last.contains(r#""n":"2.5""#) || last.contains(r#""n":2.5"#)),
                    "{format}: rescued past the sample: {last}"
                );
            } else {
                assert!(last.ends_with("|2.5|∅"), "{format}: typed by the larger sample: {last}");
            }
        }
    }
}
