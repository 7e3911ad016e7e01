//! A file's lines, a bounded chunk at a time (JSON lines, text files).

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Lines read at once.
const BATCH_LINES: usize = 16 * 1024;
/// Bytes of lines read at once, whatever their count (a single longer line is read whole).
const BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Complete lines of a file, a chunk at a time.
#[derive(Debug)]
pub struct LineChunks<R> {
    reader: R,
    buffer: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineChunks<R> {
    pub fn new(reader: R) -> Self {
        LineChunks { reader, buffer: Vec::new() }
    }

    /// The next lines (at most [`BATCH_LINES`] or about [`BATCH_BYTES`]); `None` at the end of the file.
    pub async fn next(&mut self) -> std::io::Result<Option<&[u8]>> {
        self.fill().await?;
        Ok((!self.buffer.is_empty()).then_some(self.buffer.as_slice()))
    }

    /// The same, owned: to parse on another task.
    pub async fn next_owned(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        self.fill().await?;
        Ok((!self.buffer.is_empty()).then(|| std::mem::take(&mut self.buffer)))
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        self.buffer.clear();
        let mut lines = 0;
        while lines < BATCH_LINES && self.buffer.len() < BATCH_BYTES {
            if self.reader.read_until(b'\n', &mut self.buffer).await? == 0 {
                break;
            }
            lines += 1;
        }
        Ok(())
    }
}
