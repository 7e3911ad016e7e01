//! Binary files (Spark's `binaryFile`): one row per file with its path, length, modification time and whole
//! content, as stored (a compressed file's content is its compressed bytes). A row holds the whole file, so files
//! above a limit are refused rather than read.

use std::sync::Arc;

use connector_core::arrow::array::{BinaryArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use connector_core::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use connector_core::error::Error;
use connector_core::ingested_file::SourceFile;
use object_store::ObjectStoreExt;

use crate::location::FileLocation;
use crate::read_errors::{read_error, store_error};

/// The largest file read when not set: a row's content is held whole in memory.
pub const DEFAULT_MAX_BINARY_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The setting (and flag) that raises the limit.
const LIMIT_SETTING: &str = "max_binary_file_bytes (--max-binary-file-bytes)";

/// The columns of a binary file's row.
pub fn binary_columns() -> Vec<Field> {
    vec![
        Field::new("path", DataType::Utf8, true),
        Field::new("length", DataType::Int64, true),
        Field::new("modification_time", DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC"))), true),
        Field::new("content", DataType::Binary, true),
    ]
}

fn too_large(size: u64, max_bytes: u64) -> String {
    format!(
        "it is {size} bytes, above {LIMIT_SETTING} = {max_bytes}, and a binary file's row holds its whole content; \
         raise {LIMIT_SETTING}, or leave such files out with --glob"
    )
}

/// The row of `file`, refused when larger than `max_bytes`; `None` when it is gone since it was listed.
pub async fn binary_row(
    location: &FileLocation,
    file: &SourceFile,
    max_bytes: u64,
) -> Result<Option<RecordBatch>, Error> {
    let refused = |size| read_error(file, "binary", too_large(size, max_bytes));
    if file.size > max_bytes {
        return Err(refused(file.size));
    }
    let path = location.path_of(&file.path)?;
    let content = match location.store.get(&path).await {
        Ok(got) => got.bytes().await.map_err(|cause| store_error(file, cause))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(cause) => return Err(store_error(file, cause)),
    };
    // Rewritten larger since it was listed: the limit holds for what was read.
    let length = u64::try_from(content.len()).unwrap_or(u64::MAX);
    if length > max_bytes {
        return Err(refused(length));
    }
    let length = i64::try_from(length).map_err(|_| Error::state("internal: a length beyond i64"))?;
    let columns = binary_columns();
    let modified = file.modified.timestamp_micros();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(columns)),
        vec![
            Arc::new(StringArray::from(vec![file.path.as_str()])),
            Arc::new(Int64Array::from(vec![length])),
            Arc::new(TimestampMicrosecondArray::from(vec![modified]).with_timezone("UTC")),
            Arc::new(BinaryArray::from(vec![content.as_ref()])),
        ],
    )
    .map_err(|cause| Error::state(format!("internal: {cause}")))?;
    Ok(Some(batch))
}
