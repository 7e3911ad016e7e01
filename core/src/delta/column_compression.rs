//! The Parquet settings of the files the sink writes: zstd (level 1) where it pays, and dictionary encoding
//! only on columns whose values repeat.
//!
//! zstd at level 1 writes as fast as Snappy and, on typical text, about half the bytes (every Delta reader
//! decodes it: Spark, Databricks, DuckDB, Polars, delta-rs; Iceberg made it its default). On incompressible
//! bytes (encrypted values, already-compressed blobs) it saves nothing for CPU time that writers and every
//! later scan pay, so a column whose sample it shrinks by less than [`MIN_SAVING`] is stored uncompressed.
//!
//! Dictionary encoding hashes every value and pays only when values repeat. On a column of mostly distinct
//! values (keys, timestamps, free text) it cost a tenth of the snapshot's writing time and, once compressed,
//! left the file no smaller, so a column whose sample is mostly distinct is written plain.
//!
//! Text and binary values outside a dictionary are written `DELTA_BYTE_ARRAY` on tables whose readers know
//! Delta's table features ([`ValueEncodings`]): each value's length (and the prefix it shares with the
//! previous value) packed apart, the rest of its bytes back to back. Plain encoding puts a 4-byte length before
//! each value, and those binary bytes in the middle of text cost zstd both speed and ratio: on sysbench-shaped
//! rows the encoding took a quarter less CPU and the files were 4% smaller (`cargo bench --bench
//! parquet_pages`). `DELTA_LENGTH_BYTE_ARRAY` (lengths only) was a tenth cheaper still, but Parquet's Java writer
//! never writes it alone, and Spark's vectorized reader refused it until a 2022 fix (SPARK-40128); Spark writes
//! `DELTA_BYTE_ARRAY` itself (`parquet.writer.version=v2`) and reads it from 3.3.0 on.
//!
//! Each column chunk records its codec and encodings, so readers need nothing special.

use std::collections::HashSet;

use deltalake::arrow::array::{Array, ArrayData, AsArray, GenericByteArray, RecordBatch};
use deltalake::arrow::datatypes::DataType;
use deltalake::arrow::datatypes::{ArrowNativeType, ByteArrayType};
use deltalake::parquet::basic::{Compression, Encoding, ZstdLevel};
use deltalake::parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::table::state::DeltaTableState;

use super::table_protocol::TableProtocol;

/// Rows per Parquet row group: bounds the writer's memory (a row group is buffered until written) while
/// keeping groups large enough to compress well.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// The share of a column's bytes zstd must save for the column to be compressed.
const MIN_SAVING: f64 = 0.10;
/// The share of distinct values in a column's sample above which its dictionary is left off.
const MAX_DISTINCT_FOR_DICTIONARY: f64 = 0.5;
/// Values of a column looked at to judge its dictionary.
const DICTIONARY_SAMPLE_ROWS: usize = 4096;
/// Columns with fewer sampled values than this keep the default dictionary: too few to judge.
const MIN_DICTIONARY_SAMPLE_ROWS: usize = 256;
const ZSTD_LEVEL: i32 = 1;
/// Bytes of a column's values per Parquet data page. How the size weighs on the encoding's CPU depends on the
/// machine's caches, with several part writers running at once (`cargo bench --bench parquet_pages`): on one
/// machine Parquet's default, 1 MiB, took a seventh more CPU than 32–256 KiB; on another (1 MiB of L2 cache per
/// core) 128 KiB took an eighth more than 256 KiB–1 MiB. 256 KiB is within 5% of the best on both, keeps the
/// writers' page buffers small, and lets readers skip by smaller pages, for 0.5% more bytes than 1 MiB.
const DATA_PAGE_BYTES: usize = 256 * 1024;
/// Bytes of a column's values compressed to judge it: enough to see repetition, cheap next to writing a file.
const SAMPLE_BYTES: usize = 256 * 1024;
/// Columns with fewer value bytes than this in the sample are left compressed: too little to judge, too
/// little to matter.
const MIN_SAMPLE_BYTES: usize = 4 * 1024;

/// zstd and dictionaries for every column: the settings when no rows are at hand to judge columns by.
pub(super) fn parquet_properties() -> WriterProperties {
    base().build()
}

/// How text, binary and integer values outside a dictionary are encoded: as the table's readers can decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueEncodings {
    /// Each value as it is (text and binary after a 4-byte length): every Parquet reader, however old.
    Plain,
    /// Text and binary `DELTA_BYTE_ARRAY`, integers, dates and timestamps `DELTA_BINARY_PACKED`: Spark 3.3.0
    /// and later, and every reader of tables with table features.
    Delta,
}

impl ValueEncodings {
    /// `Delta` for tables whose protocol asks readers for table features (reader version 3, as deletion
    /// vectors or `timestamp_ntz` columns do): such readers are Delta Lake 2.3 or later, on Spark 3.3 or later,
    /// or newer still (delta-rs, DuckDB, Polars, Databricks). `Plain` for tables older readers may read.
    pub(super) fn for_table(state: &DeltaTableState) -> Self {
        if TableProtocol::of(state).min_reader_version() >= 3 { ValueEncodings::Delta } else { ValueEncodings::Plain }
    }
}

/// The default settings, except that the text and binary columns of `sample` zstd does not shrink by
/// [`MIN_SAVING`] are uncompressed, the columns of mostly distinct values have no dictionary, and their values
/// are encoded as `encodings` says.
pub fn parquet_properties_for(sample: &RecordBatch, encodings: ValueEncodings) -> WriterProperties {
    let mut builder = base();
    for (field, column) in sample.schema().fields().iter().zip(sample.columns()) {
        let path = || ColumnPath::from(field.name().as_str());
        let distinct = mostly_distinct(column.as_ref());
        if distinct {
            builder = builder.set_column_dictionary_enabled(path(), false);
        }
        // Keys, row numbers and times mostly step by little from one row to the next: packed as differences
        // they take a few bits a value where plain values take 8 bytes for zstd to work through (on the files
        // benchmark's CSV: files half the size, the load 7% faster).
        if distinct && encodings == ValueEncodings::Delta && packs_as_differences(field.data_type()) {
            builder = builder.set_column_encoding(path(), Encoding::DELTA_BINARY_PACKED);
        }
        if let Some(values) = value_bytes(column.as_ref()) {
            // Only without a dictionary: a `DELTA_BYTE_ARRAY` encoder starts with two 1 MiB buffers (its length
            // encoders'), and every column writer builds its fallback encoder, so dictionary columns would hold
            // them for nothing.
            if distinct && encodings == ValueEncodings::Delta {
                builder = builder.set_column_encoding(path(), Encoding::DELTA_BYTE_ARRAY);
            }
            if values.len() >= MIN_SAMPLE_BYTES && !compression_pays(&values[..values.len().min(SAMPLE_BYTES)]) {
                builder = builder.set_column_compression(path(), Compression::UNCOMPRESSED);
            }
        }
    }
    builder.build()
}

/// Whether the type is stored as Parquet `INT32` or `INT64`, which `DELTA_BINARY_PACKED` encodes.
fn packs_as_differences(data_type: &DataType) -> bool {
    data_type.is_integer()
        || matches!(
            data_type,
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) | DataType::Time32(_) | DataType::Time64(_)
        )
}

fn base() -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(default_codec())
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_size_limit(DATA_PAGE_BYTES)
}

fn default_codec() -> Compression {
    Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default())
}

/// The concatenated values of a text or binary column; `None` for other types, which encode compactly.
fn value_bytes(column: &dyn Array) -> Option<&[u8]> {
    match column.data_type() {
        DataType::Utf8 => used_values(column.as_string::<i32>()),
        DataType::LargeUtf8 => used_values(column.as_string::<i64>()),
        DataType::Binary => used_values(column.as_binary::<i32>()),
        DataType::LargeBinary => used_values(column.as_binary::<i64>()),
        _ => None,
    }
}

/// The bytes of the array's own values (a slice of a larger array shares its buffer).
fn used_values<T: ByteArrayType>(array: &GenericByteArray<T>) -> Option<&[u8]> {
    let offsets = array.value_offsets();
    let (first, last) = (offsets.first()?.as_usize(), offsets.last()?.as_usize());
    array.values().get(first..last)
}

fn compression_pays(sample: &[u8]) -> bool {
    match zstd::bulk::compress(sample, ZSTD_LEVEL) {
        Ok(compressed) => (compressed.len() as f64) < sample.len() as f64 * (1.0 - MIN_SAVING),
        Err(_) => true,
    }
}

/// Whether more than [`MAX_DISTINCT_FOR_DICTIONARY`] of the column's first non-null values are distinct.
/// Judged on the values' bytes, for the fixed-width, text and binary columns dictionaries apply to.
fn mostly_distinct(column: &dyn Array) -> bool {
    let column = column.slice(0, column.len().min(DICTIONARY_SAMPLE_ROWS));
    let data = column.to_data();
    let Some(values) = sampled_values(column.as_ref(), &data) else { return false };
    let distinct: HashSet<&[u8]> = values.iter().copied().collect();
    values.len() >= MIN_DICTIONARY_SAMPLE_ROWS
        && distinct.len() as f64 > values.len() as f64 * MAX_DISTINCT_FOR_DICTIONARY
}

/// The bytes of each non-null value of a fixed-width, text or binary column (`data` is the column's);
/// `None` for other types.
fn sampled_values<'a>(column: &'a dyn Array, data: &'a ArrayData) -> Option<Vec<&'a [u8]>> {
    fn of<T: ByteArrayType>(array: &GenericByteArray<T>) -> Vec<&[u8]> {
        array.iter().flatten().map(AsRef::<[u8]>::as_ref).collect()
    }
    let present = |row: &usize| !column.is_null(*row);
    match column.data_type() {
        DataType::Utf8 => Some(of(column.as_string::<i32>())),
        DataType::LargeUtf8 => Some(of(column.as_string::<i64>())),
        DataType::Binary => Some(of(column.as_binary::<i32>())),
        DataType::LargeBinary => Some(of(column.as_binary::<i64>())),
        data_type => {
            let width = data_type.primitive_width()?;
            let values = data.buffers().first()?.as_slice();
            let value = |row: usize| values.get((data.offset() + row) * width..(data.offset() + row + 1) * width);
            (0..column.len()).filter(present).map(value).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{BinaryArray, Int64Array, StringArray};
    use deltalake::arrow::datatypes::{Field, Schema};

    use super::*;

    fn codec(properties: &WriterProperties, column: &str) -> Compression {
        properties.compression(&ColumnPath::from(column))
    }

    #[test]
    fn columns_zstd_cannot_shrink_are_stored_uncompressed_and_distinct_ones_without_dictionary() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut random_bytes = |count: usize| -> Vec<u8> {
            (0..count)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect()
        };
        let mut random_text = |count: usize| -> String {
            random_bytes(count).into_iter().map(|byte| char::from(b'!' + byte % 90)).collect()
        };
        let rows = 1000;
        let random: Vec<String> = (0..rows).map(|_| random_text(64)).collect();
        // Random bytes, as an encrypted or already-compressed blob is.
        let blobs: Vec<Vec<u8>> = (0..rows).map(|_| random_bytes(64)).collect();
        let repetitive: Vec<String> =
            (0..rows).map(|row| format!("status=active region=eu-west-{}", row % 3)).collect();
        let short: Vec<String> = (0..rows).map(|row| (row % 10).to_string()).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("token", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, true),
            Field::new("digit", DataType::Utf8, true),
            Field::new("blob", DataType::Binary, true),
        ]));
        let sample = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(StringArray::from(random)),
                Arc::new(StringArray::from(repetitive)),
                Arc::new(StringArray::from(short)),
                Arc::new(BinaryArray::from_iter_values(&blobs)),
            ],
        )
        .expect("batch");
        let properties = parquet_properties_for(&sample, ValueEncodings::Delta);
        assert_eq!(codec(&properties, "blob"), Compression::UNCOMPRESSED);
        // Random text of 90 symbols: zstd's entropy coding still saves a fifth.
        assert_eq!(codec(&properties, "token"), default_codec());
        assert_eq!(codec(&properties, "note"), default_codec());
        assert_eq!(codec(&properties, "id"), default_codec());
        // Too few bytes to judge: left to the default.
        assert_eq!(codec(&properties, "digit"), default_codec());
        assert_eq!(codec(&parquet_properties(), "blob"), default_codec());

        let dictionary = |column: &str| properties.dictionary_enabled(&ColumnPath::from(column));
        // Every value distinct: plain encoding.
        assert!(!dictionary("id"));
        assert!(!dictionary("token"));
        // Three and ten distinct values: dictionaries.
        assert!(dictionary("note"));
        assert!(dictionary("digit"));
        assert!(parquet_properties().dictionary_enabled(&ColumnPath::from("id")));

        // Text and binary values outside a dictionary have their lengths apart, integers are packed as
        // differences; dictionaries and every column of a table older readers may read keep the default.
        let encoding = |column: &str| properties.encoding(&ColumnPath::from(column));
        for column in ["token", "blob"] {
            assert_eq!(encoding(column), Some(Encoding::DELTA_BYTE_ARRAY), "{column}");
        }
        assert_eq!(encoding("id"), Some(Encoding::DELTA_BINARY_PACKED));
        for column in ["note", "digit"] {
            assert_eq!(encoding(column), None, "{column}");
        }
        let for_old_readers = parquet_properties_for(&sample, ValueEncodings::Plain);
        for column in ["token", "id"] {
            assert_eq!(for_old_readers.encoding(&ColumnPath::from(column)), None, "{column}");
        }
        assert_eq!(codec(&for_old_readers, "blob"), Compression::UNCOMPRESSED);
    }
}
