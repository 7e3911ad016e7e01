//! A file's bytes as they stream from its store, decompressed as its extension says.

use futures::TryStreamExt;
use object_store::{GetResultPayload, ObjectStoreExt};
use tokio::io::{AsyncRead, BufReader};
use tokio_util::io::StreamReader;

use connector_core::ingested_file::SourceFile;

use crate::compression::Compression;
use crate::location::FileLocation;

/// Bytes read from the store at once, and buffered for the parsers.
const BUFFER_BYTES: usize = 1024 * 1024;

/// The decoded bytes of `file`, or `None` when it is gone since it was listed.
pub async fn open_decoded(
    location: &FileLocation,
    file: &SourceFile,
) -> Result<Option<BufReader<Box<dyn AsyncRead + Send + Unpin>>>, object_store::Error> {
    let path = location
        .path_of(&file.path)
        .map_err(|cause| object_store::Error::Generic { store: "files", source: Box::new(cause) })?;
    let got = match location.store.get(&path).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(cause) => return Err(cause),
    };
    let raw: Box<dyn AsyncRead + Send + Unpin> = match got.payload {
        // A local file is read straight, a buffer at a time: the store's stream reads 8 KiB per blocking task,
        // which costs more in task switches than the parsing of what it reads.
        GetResultPayload::File(file, _) => Box::new(tokio::fs::File::from_std(file)),
        GetResultPayload::Stream(stream) => Box::new(StreamReader::new(stream.map_err(std::io::Error::other))),
    };
    let compressed = BufReader::with_capacity(BUFFER_BYTES, raw);
    let decoded = Compression::of_file(&file.path).decoder(compressed);
    Ok(Some(BufReader::with_capacity(BUFFER_BYTES, decoded)))
}
