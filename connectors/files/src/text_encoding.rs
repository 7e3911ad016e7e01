//! CSV files in encodings other than UTF-8 (`encoding = "latin1"`, `windows-1252`, `utf-16le`, `shift_jis`, …:
//! the WHATWG labels `encoding_rs` knows), decoded to UTF-8 as they stream, before the parser sees them. Bytes
//! that are not of the encoding stop the file (they are never replaced), and a byte order mark is dropped.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use encoding_rs::{DecoderResult, Encoding};
use tokio::io::{AsyncBufRead, AsyncRead, BufReader, ReadBuf};

/// The encoding a label names; the error says which labels are known.
pub fn encoding_for_label(label: &str) -> Result<&'static Encoding, String> {
    Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
        format!(
            "encoding `{label}` is not known; give a WHATWG label such as utf-8, latin1, windows-1252, utf-16le, \
             shift_jis or gb18030 (https://encoding.spec.whatwg.org/#names-and-labels)"
        )
    })
}

/// `bytes` as UTF-8: as they are without an encoding (UTF-8 already), else decoded from it.
pub fn in_utf8(
    bytes: impl AsyncBufRead + Send + Unpin + 'static,
    encoding: Option<&'static Encoding>,
) -> Box<dyn AsyncBufRead + Send + Unpin> {
    match encoding {
        None => Box::new(bytes),
        Some(encoding) => Box::new(BufReader::with_capacity(DECODED_BUFFER_BYTES, Utf8Decoding::new(bytes, encoding))),
    }
}

/// Decoded bytes buffered for the parser.
const DECODED_BUFFER_BYTES: usize = 1024 * 1024;

/// The UTF-8 text of `inner`, bytes of `encoding`.
pub struct Utf8Decoding<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    encoding: &'static Encoding,
    /// Decoded bytes not yet read, from `start`.
    decoded: Vec<u8>,
    start: usize,
    /// Bytes of `inner` decoded so far, for errors.
    offset: u64,
    finished: bool,
}

impl<R> std::fmt::Debug for Utf8Decoding<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Utf8Decoding").field("encoding", &self.encoding.name()).field("offset", &self.offset).finish()
    }
}

impl<R> Utf8Decoding<R> {
    pub fn new(inner: R, encoding: &'static Encoding) -> Self {
        Utf8Decoding {
            inner,
            // Sniffs a byte order mark (and drops it), which may also say the file is UTF-16 or UTF-8.
            decoder: encoding.new_decoder(),
            encoding,
            decoded: Vec::new(),
            start: 0,
            offset: 0,
            finished: false,
        }
    }
}

impl<R: AsyncBufRead + Unpin> AsyncRead for Utf8Decoding<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.start < this.decoded.len() {
                let count = buf.remaining().min(this.decoded.len() - this.start);
                buf.put_slice(&this.decoded[this.start..this.start + count]);
                this.start += count;
                return Poll::Ready(Ok(()));
            }
            if this.finished {
                return Poll::Ready(Ok(()));
            }
            let input = ready!(Pin::new(&mut this.inner).poll_fill_buf(cx))?;
            let last = input.is_empty();
            let room =
                this.decoder.max_utf8_buffer_length_without_replacement(input.len()).unwrap_or(input.len() * 3 + 16);
            this.decoded.resize(room, 0);
            this.start = 0;
            let (result, read, written) =
                this.decoder.decode_to_utf8_without_replacement(input, &mut this.decoded, last);
            this.decoded.truncate(written);
            if let DecoderResult::Malformed(bad, _) = result {
                let at = this.offset + read as u64 - u64::from(bad);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "byte {at} of the file is not {} text; set the file's encoding (--encoding)",
                        this.encoding.name()
                    ),
                )));
            }
            this.offset += read as u64;
            Pin::new(&mut this.inner).consume(read);
            this.finished = last;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn decoded(bytes: &[u8], label: &str) -> io::Result<String> {
        let mut text = String::new();
        Utf8Decoding::new(bytes, encoding_for_label(label).expect("a label")).read_to_string(&mut text).await?;
        Ok(text)
    }

    #[tokio::test]
    async fn latin1_and_utf16_become_utf8_and_bytes_of_another_encoding_stop() {
        assert_eq!(decoded(b"caf\xe9,na\xefve\n", "latin1").await.expect("latin1"), "café,naïve\n");
        let utf16: Vec<u8> =
            [0xFF, 0xFE].into_iter().chain("ü,1\n".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_eq!(decoded(&utf16, "utf-16le").await.expect("utf-16"), "ü,1\n", "its byte order mark dropped");
        let error = decoded(b"ok\n\xff\xfe\xfd", "utf-8").await.expect_err("not UTF-8");
        assert!(error.to_string().starts_with("byte 3 of the file is not UTF-8 text"), "{error}");
        assert!(encoding_for_label("klingon").expect_err("unknown").contains("WHATWG label"));
    }
}
