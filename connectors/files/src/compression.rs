//! Compressed files, told by their extension and decoded as they stream.

use async_compression::tokio::bufread::{BzDecoder, GzipDecoder, XzDecoder, ZstdDecoder};
use tokio::io::{AsyncBufRead, AsyncRead};

use crate::snappy_stream::snappy_decoder;

/// A compression a file's extension names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
    /// Snappy's framing format, or Hadoop's Snappy blocks ([`snappy_decoder`]).
    Snappy,
}

const EXTENSIONS: &[(&str, Compression)] = &[
    (".gz", Compression::Gzip),
    (".gzip", Compression::Gzip),
    (".zst", Compression::Zstd),
    (".zstd", Compression::Zstd),
    (".bz2", Compression::Bzip2),
    (".xz", Compression::Xz),
    (".sz", Compression::Snappy),
    (".snappy", Compression::Snappy),
];

impl Compression {
    pub fn of_file(name: &str) -> Self {
        let name = name.to_ascii_lowercase();
        EXTENSIONS.iter().find(|(extension, _)| name.ends_with(extension)).map_or(Compression::None, |(_, c)| *c)
    }

    /// `name` without its compression extension.
    pub fn strip_extension(name: &str) -> &str {
        EXTENSIONS.iter().find_map(|(extension, _)| name.strip_suffix(extension)).unwrap_or(name)
    }

    /// The decoded bytes of `compressed`. Concatenated gzip members (what `cat a.gz b.gz` makes) are read
    /// whole, as `gzip -d` reads them.
    pub fn decoder<R: AsyncBufRead + Send + Unpin + 'static>(self, compressed: R) -> Box<dyn AsyncRead + Send + Unpin> {
        match self {
            Compression::None => Box::new(compressed),
            Compression::Gzip => {
                let mut decoder = GzipDecoder::new(compressed);
                decoder.multiple_members(true);
                Box::new(decoder)
            }
            Compression::Zstd => {
                let mut decoder = ZstdDecoder::new(compressed);
                decoder.multiple_members(true);
                Box::new(decoder)
            }
            Compression::Bzip2 => {
                let mut decoder = BzDecoder::new(compressed);
                decoder.multiple_members(true);
                Box::new(decoder)
            }
            Compression::Xz => {
                let mut decoder = XzDecoder::new(compressed);
                decoder.multiple_members(true);
                Box::new(decoder)
            }
            Compression::Snappy => Box::new(snappy_decoder(compressed)),
        }
    }
}
