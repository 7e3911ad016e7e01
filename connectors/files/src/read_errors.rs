//! Errors reading a file, told apart by whose fault they are: the file's content (corrupt, truncated, not its
//! format), which retrying cannot mend and `ignore_corrupt_files` skips, or its store (unreachable, refused),
//! which a later sync may get past and which never makes a file count as corrupt.

use connector_core::arrow::error::ArrowError;
use connector_core::error::{Error, ErrorKind, Retry};
use connector_core::ingested_file::SourceFile;
use connector_core::parquet::errors::ParquetError;

/// A file that cannot be read as `format` (empty: as anything): nothing of its batch is committed, and the
/// message says which file and what to do.
pub fn read_error(file: &SourceFile, format: &str, cause: impl std::fmt::Display) -> Error {
    let what = if format.is_empty() { String::new() } else { format!(" as {format}") };
    Error::new(
        ErrorKind::BadInput,
        Retry::No,
        format!(
            "cannot read {}{what}: {cause}; nothing of its batch was committed: fix or remove the file (or fix the \
             format options), then sync again; or set ignore_corrupt_files (--ignore-corrupt-files) to skip such \
             files",
            file.path
        ),
    )
}

/// The store failed to give `file`'s bytes: retried later, never taken for a corrupt file.
pub fn store_error(file: &SourceFile, cause: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Source,
        Retry::WithBackoff,
        format!(
            "cannot read {} from its store: {cause}; nothing of its batch was committed; check the store's \
             address and credentials, then sync again",
            file.path
        ),
    )
}

/// A failure of a decoder (or of the bytes it read): [`store_error`] when the store failed under it, else
/// [`read_error`].
pub fn decode_error(file: &SourceFile, format: &str, cause: impl std::error::Error + 'static) -> Error {
    if failed_in_store(&cause) { store_error(file, cause) } else { read_error(file, format, cause) }
}

/// Whether `error` is, or wraps, an object store's error. Decoders wrap what they read in their own errors
/// (an I/O error around the store's stream error, an Arrow or Parquet error around that), and an I/O error's
/// `source()` skips the error it wraps, so each wrapper is opened by hand.
fn failed_in_store(error: &(dyn std::error::Error + 'static)) -> bool {
    if error.is::<object_store::Error>() {
        return true;
    }
    if let Some(io) = error.downcast_ref::<std::io::Error>() {
        return io.get_ref().is_some_and(|inner| failed_in_store(inner));
    }
    if let Some(ArrowError::ExternalError(inner)) = error.downcast_ref::<ArrowError>() {
        return failed_in_store(inner.as_ref());
    }
    if let Some(ArrowError::IoError(_, io)) = error.downcast_ref::<ArrowError>() {
        return failed_in_store(io);
    }
    if let Some(ParquetError::External(inner)) = error.downcast_ref::<ParquetError>() {
        return failed_in_store(inner.as_ref());
    }
    error.source().is_some_and(failed_in_store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> SourceFile {
        SourceFile { path: "s3://bucket/a.csv".into(), size: 1, modified: chrono::Utc::now(), etag: None }
    }

    #[test]
    fn a_store_failure_under_a_decoder_is_the_store_s_and_bad_bytes_are_the_file_s() {
        let store = object_store::Error::Generic { store: "S3", source: "connection reset".into() };
        let wrapped = ArrowError::ExternalError(Box::new(std::io::Error::other(store)));
        let error = decode_error(&file(), "CSV", wrapped);
        assert_eq!((error.kind(), error.retry()), (ErrorKind::Source, Retry::WithBackoff), "{error}");

        let corrupt = std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid gzip header");
        let error = decode_error(&file(), "CSV", ArrowError::ExternalError(Box::new(corrupt)));
        assert_eq!((error.kind(), error.retry()), (ErrorKind::BadInput, Retry::No), "{error}");
        assert!(error.to_string().contains("cannot read s3://bucket/a.csv as CSV: "), "{error}");
    }
}
