//! Snappy-compressed files, decoded as they stream: Snappy's framing format (`.sz`: chunks of at most 64 KiB, each
//! with a CRC-32C of its data) and Hadoop's block format (`.snappy`, what Spark and Hive write for text with
//! `SnappyCodec`: blocks of an uncompressed length, each in compressed pieces), told apart by the framing format's
//! stream identifier at the start. Written over snap's raw decoder because snap reads frames only synchronously
//! and no crate reads Hadoop's blocks.

use std::io;

use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt};
use tokio_util::io::StreamReader;

/// The framing format's first chunk: a stream identifier (kind 0xff) of six bytes, `sNaPpY`.
const STREAM_IDENTIFIER: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Hadoop writes pieces of at most its buffer size (256 KiB by default); a larger length means the file is not
/// what its name says, and is refused before it is allocated.
const MOST_PIECE_BYTES: usize = 64 * 1024 * 1024;

/// The decoded bytes of a Snappy-compressed stream.
pub fn snappy_decoder<R: AsyncBufRead + Send + Unpin + 'static>(compressed: R) -> impl AsyncRead + Send + Unpin {
    let chunks = SnappyChunks { reader: compressed, layout: None, decoder: snap::raw::Decoder::new() };
    StreamReader::new(Box::pin(decoded(chunks)))
}

fn decoded<R: AsyncBufRead + Send + Unpin + 'static>(
    chunks: SnappyChunks<R>,
) -> impl Stream<Item = io::Result<Bytes>> + Send {
    futures::stream::try_unfold(
        chunks,
        |mut chunks| async move { Ok(chunks.next().await?.map(|bytes| (bytes, chunks))) },
    )
}

enum Layout {
    Framed,
    /// Bytes of the current block still to come.
    Hadoop {
        block_left: u64,
    },
}

struct SnappyChunks<R> {
    reader: R,
    /// Unknown until the first bytes are read.
    layout: Option<Layout>,
    decoder: snap::raw::Decoder,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl<R: AsyncBufRead + Unpin> SnappyChunks<R> {
    /// The next decoded bytes; `None` at the end of the stream.
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            let layout = match &mut self.layout {
                Some(layout) => layout,
                None => {
                    let Some(start) = self.read_start().await? else { return Ok(None) };
                    self.layout.insert(start)
                }
            };
            let decoded = match layout {
                Layout::Framed => self.next_frame().await?,
                Layout::Hadoop { .. } => self.next_hadoop_piece().await?,
            };
            match decoded {
                Some(bytes) if bytes.is_empty() => continue,
                other => return Ok(other),
            }
        }
    }

    /// Which layout the stream has, from its first bytes; `None` for an empty stream.
    async fn read_start(&mut self) -> io::Result<Option<Layout>> {
        let mut start = [0_u8; 4];
        if !self.read_or_end(&mut start).await? {
            return Ok(None);
        }
        if start[..] == STREAM_IDENTIFIER[..4] {
            let mut name = [0_u8; 6];
            self.reader.read_exact(&mut name).await?;
            if name[..] != STREAM_IDENTIFIER[4..] {
                return Err(invalid("not a Snappy stream: its first chunk is no stream identifier".into()));
            }
            return Ok(Some(Layout::Framed));
        }
        Ok(Some(Layout::Hadoop { block_left: u64::from(u32::from_be_bytes(start)) }))
    }

    /// Fills `buffer`; `false` when the stream ends before its first byte, an error when it ends inside it.
    async fn read_or_end(&mut self, buffer: &mut [u8]) -> io::Result<bool> {
        if self.reader.read(&mut buffer[..1]).await? == 0 {
            return Ok(false);
        }
        self.reader.read_exact(&mut buffer[1..]).await.map_err(|_| cut_short())?;
        Ok(true)
    }

    async fn read_body(&mut self, length: usize) -> io::Result<Vec<u8>> {
        let mut body = vec![0_u8; length];
        self.reader.read_exact(&mut body).await.map_err(|_| cut_short())?;
        Ok(body)
    }

    /// The data of the next chunk of the framing format (an empty one for chunks without data).
    async fn next_frame(&mut self) -> io::Result<Option<Bytes>> {
        let mut header = [0_u8; 4];
        if !self.read_or_end(&mut header).await? {
            return Ok(None);
        }
        let length = u32::from_le_bytes([header[1], header[2], header[3], 0]) as usize;
        let body = self.read_body(length).await?;
        let data = match header[0] {
            // Another stream identifier: streams concatenated.
            0xff if body == STREAM_IDENTIFIER[4..] => return Ok(Some(Bytes::new())),
            kind @ (0x00 | 0x01) if body.len() >= 4 => {
                let data = if kind == 0x00 {
                    self.decoder
                        .decompress_vec(&body[4..])
                        .map_err(|cause| invalid(format!("a Snappy chunk does not decompress: {cause}")))?
                } else {
                    body[4..].to_vec()
                };
                let expected = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
                if masked_crc32c(&data) != expected {
                    return Err(invalid(
                        "a Snappy chunk's checksum does not match its data: the file is corrupt".into(),
                    ));
                }
                data
            }
            // Padding and skippable chunks.
            0x80..=0xfe => Vec::new(),
            kind => return Err(invalid(format!("not a Snappy stream: a chunk of unknown kind {kind:#04x}"))),
        };
        Ok(Some(Bytes::from(data)))
    }

    /// The next piece of Hadoop's block format: a block is its uncompressed length (4 bytes, big-endian), then
    /// pieces, each its compressed length and raw Snappy data, until the block's bytes are all there.
    async fn next_hadoop_piece(&mut self) -> io::Result<Option<Bytes>> {
        let Some(Layout::Hadoop { block_left }) = self.layout else { unreachable!("read as Hadoop's blocks") };
        if block_left == 0 {
            let mut length = [0_u8; 4];
            if !self.read_or_end(&mut length).await? {
                return Ok(None);
            }
            self.layout = Some(Layout::Hadoop { block_left: u64::from(u32::from_be_bytes(length)) });
            return Ok(Some(Bytes::new()));
        }
        let mut length = [0_u8; 4];
        self.reader.read_exact(&mut length).await.map_err(|_| cut_short())?;
        let length = u32::from_be_bytes(length) as usize;
        if length > MOST_PIECE_BYTES {
            return Err(invalid(format!("not a Snappy file: a piece of {length} bytes")));
        }
        let body = self.read_body(length).await?;
        let decoded_length = snap::raw::decompress_len(&body)
            .map_err(|cause| invalid(format!("a Snappy piece does not decompress: {cause}")))?;
        if decoded_length as u64 > block_left {
            return Err(invalid("not a Snappy file: a piece is longer than its block".into()));
        }
        let data = self
            .decoder
            .decompress_vec(&body)
            .map_err(|cause| invalid(format!("a Snappy piece does not decompress: {cause}")))?;
        self.layout = Some(Layout::Hadoop { block_left: block_left - data.len() as u64 });
        Ok(Some(Bytes::from(data)))
    }
}

fn cut_short() -> io::Error {
    invalid("the Snappy stream is cut short".into())
}

/// The framing format's checksum: CRC-32C, rotated and offset so that a checksum of checksums stays unlikely.
fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn decode(compressed: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut decoded = Vec::new();
        snappy_decoder(std::io::Cursor::new(compressed)).read_to_end(&mut decoded).await?;
        Ok(decoded)
    }

    fn text() -> Vec<u8> {
        (0..50_000).flat_map(|i| format!("{i},customer {i}\n").into_bytes()).collect()
    }

    #[tokio::test]
    async fn framed_streams_from_snap_decode_whole_and_corruption_is_refused() {
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut framed, &text()).expect("encode");
        let framed = framed.into_inner().expect("flush");
        assert_eq!(decode(framed.clone()).await.expect("decodes"), text());

        let twice = [framed.clone(), framed.clone()].concat();
        assert_eq!(decode(twice).await.expect("concatenated"), [text(), text()].concat());

        let mut corrupt = framed.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x55;
        assert!(decode(corrupt).await.is_err(), "a flipped byte fails its chunk");
        assert!(decode(framed[..framed.len() - 3].to_vec()).await.is_err(), "cut short");
        assert_eq!(decode(Vec::new()).await.expect("empty"), b"");
    }

    #[tokio::test]
    async fn hadoop_blocks_of_several_pieces_decode_whole() {
        // Two blocks; the first in two pieces, as Hadoop writes a block larger than its buffer.
        let text = text();
        let (first, second) = text.split_at(300_000);
        let (first_a, first_b) = first.split_at(200_000);
        let mut hadoop = Vec::new();
        for (block, pieces) in [(first, vec![first_a, first_b]), (second, vec![second])] {
            hadoop.extend_from_slice(&(block.len() as u32).to_be_bytes());
            for piece in pieces {
                let compressed = snap::raw::Encoder::new().compress_vec(piece).expect("compress");
                hadoop.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                hadoop.extend_from_slice(&compressed);
            }
        }
        assert_eq!(decode(hadoop.clone()).await.expect("decodes"), text);
        assert!(decode(hadoop[..hadoop.len() - 10].to_vec()).await.is_err(), "cut short");
    }
}
