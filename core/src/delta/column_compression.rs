//! The Parquet settings of the files the sink writes, with Snappy left off the text and binary columns it
//! cannot shrink.
//!
//! Snappy is the codec every Delta reader knows, and it pays on most columns. On high-entropy text (hashes,
//! tokens, random identifiers, already-compressed blobs) it saves a few percent for most of the CPU time of
//! writing the file, which the connector's throughput pays for and readers pay for again on every scan. A
//! column whose sample Snappy shrinks by less than [`MIN_SAVING`] is stored uncompressed; each column chunk
//! records its codec, so readers need nothing special.

use deltalake::arrow::array::{Array, AsArray, GenericByteArray, RecordBatch};
use deltalake::arrow::datatypes::DataType;
use deltalake::arrow::datatypes::{ArrowNativeType, ByteArrayType};
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use deltalake::parquet::schema::types::ColumnPath;

/// Rows per Parquet row group: bounds the writer's memory (a row group is buffered until written) while
/// keeping groups large enough to compress well.
const ROW_GROUP_ROWS: usize = 128 * 1024;
/// The share of a column's bytes Snappy must save for the column to be compressed.
const MIN_SAVING: f64 = 0.10;
/// Bytes of a column's values compressed to judge it: enough to see repetition, cheap next to writing a file.
const SAMPLE_BYTES: usize = 256 * 1024;
/// Columns with fewer value bytes than this in the sample are left compressed: too little to judge, too
/// little to matter.
const MIN_SAMPLE_BYTES: usize = 4 * 1024;

/// Snappy for every column: the settings when no rows are at hand to judge columns by.
pub(super) fn parquet_properties() -> WriterProperties {
    base().build()
}

/// Snappy for every column except the text and binary columns of `sample` that Snappy does not shrink by
/// [`MIN_SAVING`].
pub(super) fn parquet_properties_for(sample: &RecordBatch) -> WriterProperties {
    let mut builder = base();
    for (field, column) in sample.schema().fields().iter().zip(sample.columns()) {
        if let Some(values) = value_bytes(column.as_ref())
            && values.len() >= MIN_SAMPLE_BYTES
            && !snappy_pays(&values[..values.len().min(SAMPLE_BYTES)])
        {
            builder =
                builder.set_column_compression(ColumnPath::from(field.name().as_str()), Compression::UNCOMPRESSED);
        }
    }
    builder.build()
}

fn base() -> WriterPropertiesBuilder {
    WriterProperties::builder().set_compression(Compression::SNAPPY).set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
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

fn snappy_pays(sample: &[u8]) -> bool {
    match snap::raw::Encoder::new().compress_vec(sample) {
        Ok(compressed) => (compressed.len() as f64) < sample.len() as f64 * (1.0 - MIN_SAVING),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Int64Array, StringArray};
    use deltalake::arrow::datatypes::{Field, Schema};

    use super::*;

    fn codec(properties: &WriterProperties, column: &str) -> Compression {
        properties.compression(&ColumnPath::from(column))
    }

    #[test]
    fn columns_snappy_cannot_shrink_are_stored_uncompressed() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut random_text = || {
            (0..64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from(b'!' + (state % 90) as u8)
                })
                .collect::<String>()
        };
        let rows = 1000;
        let random: Vec<String> = (0..rows).map(|_| random_text()).collect();
        let repetitive: Vec<String> =
            (0..rows).map(|row| format!("status=active region=eu-west-{}", row % 3)).collect();
        let short: Vec<String> = (0..rows).map(|row| (row % 10).to_string()).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("token", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, true),
            Field::new("digit", DataType::Utf8, true),
        ]));
        let sample = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(StringArray::from(random)),
                Arc::new(StringArray::from(repetitive)),
                Arc::new(StringArray::from(short)),
            ],
        )
        .expect("batch");
        let properties = parquet_properties_for(&sample);
        assert_eq!(codec(&properties, "token"), Compression::UNCOMPRESSED);
        assert_eq!(codec(&properties, "note"), Compression::SNAPPY);
        assert_eq!(codec(&properties, "id"), Compression::SNAPPY);
        // Too few bytes to judge: left to the default.
        assert_eq!(codec(&properties, "digit"), Compression::SNAPPY);
        assert_eq!(codec(&parquet_properties(), "token"), Compression::SNAPPY);
    }
}
