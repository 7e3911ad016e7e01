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
        if self.buffer.is_empty() {
            return Ok(None);
        }
        // The next chunk is about as large: room for it at once, rather than growing (and copying) it from empty.
        let next = Vec::with_capacity(self.buffer.capacity());
        Ok(Some(std::mem::replace(&mut self.buffer, next)))
    }

    /// Whole lines up to the budget: as much of the reader's buffer as it holds at once (a line at a time cost
    /// an await and a copy per line), ending at the line that reaches [`BATCH_LINES`] or [`BATCH_BYTES`].
    async fn fill(&mut self) -> std::io::Result<()> {
        self.buffer.clear();
        let mut lines = 0;
        loop {
            let at_line_end = self.buffer.last().is_none_or(|&byte| byte == b'\n');
            if at_line_end && (lines >= BATCH_LINES || self.buffer.len() >= BATCH_BYTES) {
                return Ok(());
            }
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                return Ok(());
            }
            let mut take = available.len();
            for end in memchr::memchr_iter(b'\n', available) {
                lines += 1;
                if lines >= BATCH_LINES || self.buffer.len() + end + 1 >= BATCH_BYTES {
                    take = end + 1;
                    break;
                }
            }
            self.buffer.extend_from_slice(&available[..take]);
            self.reader.consume(take);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::BufReader;

    use super::*;

    #[tokio::test]
    async fn chunks_hold_whole_lines_up_to_the_budget_whatever_the_reads() {
        let text: String = (0..40_000).map(|line| format!("{{\"id\": {line}}}\n")).collect::<String>() + "last";
        for capacity in [7, 4096, 1 << 20] {
            let mut chunks = LineChunks::new(BufReader::with_capacity(capacity, text.as_bytes()));
            let mut read = Vec::new();
            let mut lines_per_chunk = Vec::new();
            while let Some(chunk) = chunks.next_owned().await.expect("read") {
                lines_per_chunk.push(memchr::memchr_iter(b'\n', &chunk).count());
                read.push(chunk);
            }
            assert_eq!(lines_per_chunk, [BATCH_LINES, BATCH_LINES, 40_000 - 2 * BATCH_LINES], "capacity {capacity}");
            assert!(read[..2].iter().all(|chunk| chunk.ends_with(b"\n")), "whole lines");
            assert_eq!(read.concat(), text.as_bytes(), "every byte once, in order");
        }
    }

    #[tokio::test]
    async fn a_line_longer_than_the_byte_budget_is_read_whole() {
        let long = "x".repeat(BATCH_BYTES + 10);
        let text = format!("short\n{long}\nnext\n");
        let mut chunks = LineChunks::new(BufReader::with_capacity(1 << 16, text.as_bytes()));
        let first = chunks.next_owned().await.expect("read").expect("a chunk");
        assert_eq!(first.len(), "short\n".len() + long.len() + 1);
        assert_eq!(chunks.next_owned().await.expect("read").expect("a chunk"), b"next\n");
        assert!(chunks.next_owned().await.expect("read").is_none());
    }
}
