//! A JSON file's records, a bounded chunk at a time, one record per line, whatever the file's layout: JSON lines
//! (a record per line), an array of records (`[{…}, {…}]`, as APIs export them; told by its first character), or,
//! with `multi_line`, records written over several lines (a pretty-printed object, or several one after the
//! other). A document is cut into its records as it streams, each put on a line of its own with its line breaks
//! made spaces (JSON strings cannot hold a raw line break, so only whitespace changes): the JSON lines decoder
//! then reads every layout, and memory holds a chunk of records, never the whole document.
//!
//! Written by hand: the streaming JSON crates (`struson`, `serde_json`'s `StreamDeserializer`) parse every value
//! into their own form, where here only the records' boundaries are needed, at the speed of a byte scan.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::line_chunks::LineChunks;

/// Records of a document read at once.
const BATCH_RECORDS: usize = 16 * 1024;
/// Bytes of records read at once, whatever their count (a single larger record is read whole).
const BATCH_BYTES: usize = 16 * 1024 * 1024;

/// A JSON file's records, a chunk of lines at a time.
#[derive(Debug)]
pub enum JsonChunks<R> {
    Lines(LineChunks<R>),
    Document(DocumentRecords<R>),
}

impl<R: AsyncBufRead + Unpin> JsonChunks<R> {
    /// Tells the file's layout from its first character: `[` opens an array of records; anything else is JSON
    /// lines, unless `multi_line`, when records may span lines.
    pub async fn open(mut reader: R, multi_line: bool) -> std::io::Result<Self> {
        let array = loop {
            let buffer = reader.fill_buf().await?;
            match buffer.iter().position(|byte| !byte.is_ascii_whitespace()) {
                Some(at) => {
                    let array = buffer[at] == b'[';
                    reader.consume(at);
                    break array;
                }
                None if buffer.is_empty() => break false,
                None => {
                    let all = buffer.len();
                    reader.consume(all);
                }
            }
        };
        Ok(if array || multi_line {
            JsonChunks::Document(DocumentRecords::new(reader))
        } else {
            JsonChunks::Lines(LineChunks::new(reader))
        })
    }

    /// The next records, a line each; `None` at the end of the file.
    pub async fn next(&mut self) -> std::io::Result<Option<&[u8]>> {
        match self {
            JsonChunks::Lines(lines) => lines.next().await,
            JsonChunks::Document(records) => records.next().await,
        }
    }

    /// The same, owned: to decode on another task.
    pub async fn next_owned(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        match self {
            JsonChunks::Lines(lines) => lines.next_owned().await,
            JsonChunks::Document(records) => Ok(records.next().await?.map(<[u8]>::to_vec)),
        }
    }
}

/// The records of a document: the elements of a top-level array, else each top-level value.
#[derive(Debug)]
pub struct DocumentRecords<R> {
    reader: R,
    splitter: RecordSplitter,
    /// Complete records (a line each), then the start of the next one.
    buffer: Vec<u8>,
    /// Where the complete records end in `buffer`.
    complete: usize,
    records: usize,
}

impl<R: AsyncBufRead + Unpin> DocumentRecords<R> {
    fn new(reader: R) -> Self {
        DocumentRecords { reader, splitter: RecordSplitter::default(), buffer: Vec::new(), complete: 0, records: 0 }
    }

    async fn next(&mut self) -> std::io::Result<Option<&[u8]>> {
        // The records returned last go; the one begun after them stays.
        self.buffer.drain(..self.complete);
        self.complete = 0;
        self.records = 0;
        while self.records < BATCH_RECORDS && self.complete < BATCH_BYTES {
            let input = self.reader.fill_buf().await?;
            if input.is_empty() {
                if self.splitter.finish(&mut self.buffer).map_err(invalid)? {
                    self.complete = self.buffer.len();
                }
                break;
            }
            let mut taken = 0;
            for &byte in input {
                taken += 1;
                if self.splitter.push(byte, &mut self.buffer).map_err(invalid)? {
                    self.complete = self.buffer.len();
                    self.records += 1;
                    if self.records == BATCH_RECORDS || self.complete >= BATCH_BYTES {
                        break;
                    }
                }
            }
            self.reader.consume(taken);
        }
        Ok((self.complete > 0).then(|| &self.buffer[..self.complete]))
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Finds where records begin and end in a document, a byte at a time.
#[derive(Debug, Default)]
struct RecordSplitter {
    /// Bytes seen, for errors.
    offset: u64,
    /// The document is one array, whose elements are the records.
    array: bool,
    /// The array's `]` was seen: only whitespace may follow.
    array_closed: bool,
    /// Nesting of objects and arrays inside the record being read (0: between records).
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// A record has begun and not ended.
    open: bool,
    /// After a comma of the array: its end here would leave an element out.
    after_comma: bool,
}

impl RecordSplitter {
    /// Takes the next byte of the document, writing the records' bytes into `out`, a line each; returns whether
    /// a record ended (and its line with it).
    fn push(&mut self, byte: u8, out: &mut Vec<u8>) -> Result<bool, String> {
        self.offset += 1;
        if self.in_string {
            out.push(byte);
            match byte {
                _ if self.escaped => self.escaped = false,
                b'\\' => self.escaped = true,
                b'"' => self.in_string = false,
                _ => {}
            }
            return Ok(false);
        }
        if self.offset == 1 && byte == b'[' {
            self.array = true;
            return Ok(false);
        }
        if self.array_closed {
            return match byte.is_ascii_whitespace() {
                true => Ok(false),
                false => Err(self.error("something follows the end of the array")),
            };
        }
        match byte {
            // Outside a record's objects and arrays, whitespace ends a top-level scalar (`1 2`); else it is nothing.
            b'\n' | b'\r' | b' ' | b'\t' if self.depth == 0 => Ok(self.open && !self.array && self.end_record(out)),
            b'\n' | b'\r' => {
                out.push(b' ');
                Ok(false)
            }
            b',' if self.array && self.depth == 0 => {
                if !self.open {
                    return Err(self.error("an element of the array is missing before this comma"));
                }
                self.after_comma = true;
                Ok(self.end_record(out))
            }
            b']' if self.array && self.depth == 0 => {
                self.array_closed = true;
                if self.open {
                    return Ok(self.end_record(out));
                }
                match self.after_comma {
                    true => Err(self.error("the array ends after a comma")),
                    false => Ok(false),
                }
            }
            b'{' | b'[' => {
                // A new top-level value right after a closed one (`{…}{…}`) is a record of its own.
                let ended = !self.array && self.open && self.depth == 0 && self.end_record(out);
                self.depth += 1;
                self.begin(byte, out);
                Ok(ended)
            }
            b'}' | b']' => {
                if self.depth == 0 {
                    return Err(self.error(&format!("`{}` closes nothing", byte as char)));
                }
                self.depth -= 1;
                out.push(byte);
                Ok(false)
            }
            b'"' => {
                let ended = !self.array && self.open && self.depth == 0 && self.end_record(out);
                self.in_string = true;
                self.begin(byte, out);
                Ok(ended)
            }
            _ => {
                self.begin(byte, out);
                Ok(false)
            }
        }
    }

    fn begin(&mut self, byte: u8, out: &mut Vec<u8>) {
        self.open = true;
        self.after_comma = false;
        out.push(byte);
    }

    fn end_record(&mut self, out: &mut Vec<u8>) -> bool {
        self.open = false;
        out.push(b'\n');
        true
    }

    /// Checks the document ended whole, and ends its last record (returning whether there was one to end).
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<bool, String> {
        if self.in_string || self.depth > 0 {
            return Err(self.error("the document is cut short inside a record"));
        }
        if self.array && !self.array_closed {
            return Err(self.error("the array is cut short: its closing `]` is missing"));
        }
        Ok(self.open && self.end_record(out))
    }

    fn error(&self, what: &str) -> String {
        format!("{what} (byte {} of the document)", self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn records(document: &str, multi_line: bool) -> Result<Vec<String>, String> {
        let mut chunks = JsonChunks::open(document.as_bytes(), multi_line).await.map_err(|e| e.to_string())?;
        let mut lines = Vec::new();
        while let Some(chunk) = chunks.next().await.map_err(|e| e.to_string())? {
            let text = std::str::from_utf8(chunk).expect("utf-8");
            lines.extend(text.lines().map(str::to_string));
        }
        Ok(lines)
    }

    #[tokio::test]
    async fn an_array_s_elements_are_records_a_line_each_strings_untouched() {
        let document = "  [\n  {\"a\": 1,\n   \"b\": \"x, ] }\\\" y\"},\n  {\"a\": [1, 2]}, 3 ,\"s\"\n]\n";
        let lines = records(document, false).await.expect("records");
        assert_eq!(lines, [r#"{"a": 1,    "b": "x, ] }\" y"}"#, r#"{"a": [1, 2]}"#, "3", r#""s""#]);
        assert_eq!(records("[]", false).await.expect("empty"), Vec::<String>::new());
    }

    #[tokio::test]
    async fn json_lines_stay_lines_and_multi_line_reads_records_over_lines() {
        let lines = records("{\"a\": 1}\n{\"a\": 2}\n", false).await.expect("lines");
        assert_eq!(lines, [r#"{"a": 1}"#, r#"{"a": 2}"#]);
        let pretty = "{\n  \"a\": 1,\n  \"b\": {\"c\": 2}\n}\n{\"a\": 2}{\"a\": 3}";
        let lines = records(pretty, true).await.expect("records");
        assert_eq!(lines, [r#"{   "a": 1,   "b": {"c": 2} }"#, r#"{"a": 2}"#, r#"{"a": 3}"#]);
    }

    #[tokio::test]
    async fn a_broken_document_is_refused_with_where() {
        let cut = records(r#"[{"a": 1}, {"a": "#, false).await.expect_err("cut short");
        assert!(cut.contains("cut short inside a record"), "{cut}");
        let unclosed = records(r#"[{"a": 1}"#, false).await.expect_err("no ]");
        assert!(unclosed.contains("closing `]` is missing"), "{unclosed}");
        let trailing = records(r#"[{"a": 1}] {"#, false).await.expect_err("after the array");
        assert!(trailing.contains("follows the end of the array (byte 12"), "{trailing}");
        let hole = records(r#"[{"a": 1},,{"a": 2}]"#, false).await.expect_err("a hole");
        assert!(hole.contains("missing before this comma"), "{hole}");
    }

    #[tokio::test]
    async fn a_large_array_comes_in_bounded_chunks_losing_no_record() {
        let elements: Vec<String> = (0..40_000).map(|i| format!("{{\"id\": {i}}}")).collect();
        let document = format!("[{}]", elements.join(",\n"));
        let mut chunks = JsonChunks::open(document.as_bytes(), false).await.expect("opened");
        let (mut count, mut chunk_count) = (0, 0);
        while let Some(chunk) = chunks.next().await.expect("a chunk") {
            let text = std::str::from_utf8(chunk).expect("utf-8");
            for line in text.lines() {
                assert_eq!(line, format!("{{\"id\": {count}}}"));
                count += 1;
            }
            chunk_count += 1;
        }
        assert_eq!((count, chunk_count), (40_000, 3), "at most {BATCH_RECORDS} records a chunk");
    }
}
