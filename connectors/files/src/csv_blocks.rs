//! A CSV file cut into blocks of whole rows, so that several tasks parse one large file at once
//! ([`crate::ordered_parses`]). The cuts are found in one pass over the bytes, ahead of the parsers.
//!
//! A row ends at a line break outside quotes, so the cut is found by counting quotes, at the speed of a byte
//! scan, as long as every quote stands where RFC 4180 puts one: opening a field, doubled inside it, or closing
//! it before a delimiter or a line break. At the first quote anywhere else (`12" pipe` in an unquoted field,
//! which the CSV reader takes as a plain character), with an escape character or comment lines, or when no
//! line break ends a row in a whole block (rows ended by `\r` alone, a value of megabytes), the rows are found
//! from then on by csv-core, the tokenizer arrow's decoder itself runs: a second tokenizing pass, but never a
//! cut inside a quoted value.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::format_options::CsvDialect;

/// Bytes of a block: enough that each task parses for milliseconds between hand-overs, few enough that the
/// blocks in flight hold a few MiB each.
const BLOCK_BYTES: usize = 4 * 1024 * 1024;

/// How the end of the last whole row of a block is found.
enum RowEnds {
    Quotes { quote: u8, delimiter: u8 },
    Records(Box<Reader>),
}

impl std::fmt::Debug for RowEnds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowEnds::Quotes { .. } => f.write_str("RowEnds::Quotes"),
            RowEnds::Records(_) => f.write_str("RowEnds::Records"),
        }
    }
}

/// A CSV file's bytes (after its header's first byte; the first block holds the header), a block of whole
/// rows at a time.
#[derive(Debug)]
pub struct CsvBlocks<R> {
    reader: R,
    ends: RowEnds,
    dialect: CsvDialect,
    /// The start of the row the last block stopped before.
    carried: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> CsvBlocks<R> {
    pub fn new(reader: R, dialect: &CsvDialect) -> Self {
        let ends = if dialect.escape.is_some() || dialect.comment.is_some() {
            RowEnds::Records(Box::new(records_reader(dialect)))
        } else {
            RowEnds::Quotes { quote: dialect.quote, delimiter: dialect.delimiter }
        };
        CsvBlocks { reader, ends, dialect: dialect.clone(), carried: Vec::new() }
    }

    /// The next block: about [`BLOCK_BYTES`] of whole rows (more when one row is longer); `None` at the end.
    pub async fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        // Room for the whole block at once: growing it as it fills copied each block about twice over.
        let mut block = Vec::with_capacity(BLOCK_BYTES.max(self.carried.len()));
        block.append(&mut self.carried);
        let mut wanted = BLOCK_BYTES;
        loop {
            while block.len() < wanted {
                let input = self.reader.fill_buf().await?;
                if input.is_empty() {
                    return Ok((!block.is_empty()).then_some(block));
                }
                let taken = input.len().min(wanted - block.len());
                block.extend_from_slice(&input[..taken]);
                self.reader.consume(taken);
            }
            if let Some(end) = self.last_row_end(&block) {
                self.carried = block.split_off(end);
                return Ok(Some(block));
            }
            wanted = block.len() + BLOCK_BYTES;
        }
    }

    /// Where the last whole row of `block` (which starts a row) ends; `None` when no row ends in it.
    fn last_row_end(&mut self, block: &[u8]) -> Option<usize> {
        if let RowEnds::Quotes { quote, delimiter } = self.ends {
            if let Some(end) = row_end_by_quotes(block, quote, delimiter) {
                return Some(end);
            }
            self.ends = RowEnds::Records(Box::new(records_reader(&self.dialect)));
        }
        match &mut self.ends {
            RowEnds::Records(reader) => row_end_by_records(reader, block),
            RowEnds::Quotes { .. } => None,
        }
    }
}

/// The most fields a record of `block` (whole records) has.
pub fn most_fields(dialect: &CsvDialect, block: &[u8]) -> usize {
    let mut reader = records_reader(dialect);
    let (mut output, mut ends) = (vec![0_u8; 64 * 1024], vec![0_usize; 1024]);
    let (mut at, mut fields, mut most) = (0, 0, 0);
    loop {
        // Once the block is read, empty input tells csv-core it ended: its last record completes.
        let (result, read, _, ended) = reader.read_record(&block[at..], &mut output, &mut ends);
        at += read;
        fields += ended;
        match result {
            ReadRecordResult::Record => {
                most = most.max(fields);
                fields = 0;
            }
            ReadRecordResult::End => return most,
            ReadRecordResult::InputEmpty | ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {}
        }
    }
}

fn records_reader(dialect: &CsvDialect) -> Reader {
    ReaderBuilder::new()
        .delimiter(dialect.delimiter)
        .quote(dialect.quote)
        .escape(dialect.escape)
        .comment(dialect.comment)
        .build()
}

/// The end of the last line break outside quotes in `block`; `None` when there is none, or when a quote stands
/// where counting quotes cannot vouch for the cut.
fn row_end_by_quotes(block: &[u8], quote: u8, delimiter: u8) -> Option<usize> {
    let (mut quoted, mut last_end, mut at) = (false, None, 0);
    while let Some(found) = memchr::memchr2(quote, b'\n', &block[at..]) {
        let index = at + found;
        at = index + 1;
        if block[index] == b'\n' {
            if !quoted {
                last_end = Some(at);
            }
        } else if !quoted {
            // An opening quote starts its field.
            if index > 0 && !matches!(block[index - 1], b'\n' | b'\r') && block[index - 1] != delimiter {
                return None;
            }
            quoted = true;
        } else {
            match block.get(index + 1) {
                // What follows is not read yet: the rows before this one are the block.
                None => break,
                Some(&next) if next == quote => at = index + 2,
                Some(&next) if next == delimiter || next == b'\n' || next == b'\r' => quoted = false,
                Some(_) => return None,
            }
        }
    }
    last_end
}

/// The end of the last record csv-core finds complete in `block`.
fn row_end_by_records(reader: &mut Reader, block: &[u8]) -> Option<usize> {
    reader.reset();
    // The fields are not kept: each record's output overwrites the one before.
    let (mut output, mut ends) = (vec![0_u8; 64 * 1024], vec![0_usize; 1024]);
    let (mut at, mut last_end) = (0, None);
    // Empty input would tell csv-core the file ended, completing the last record even if it goes on.
    while at < block.len() {
        let (result, read, _, _) = reader.read_record(&block[at..], &mut output, &mut ends);
        at += read;
        match result {
            ReadRecordResult::Record => last_end = Some(at),
            ReadRecordResult::InputEmpty | ReadRecordResult::End => break,
            ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {}
        }
    }
    last_end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect() -> CsvDialect {
        CsvDialect {
            header: true,
            delimiter: b',',
            quote: b'"',
            escape: None,
            comment: None,
            null_value: None,
            times: Default::default(),
            encoding: None,
        }
    }

    #[test]
    fn quotes_are_counted_so_that_a_quoted_line_break_is_never_a_cut() {
        let end = |text: &str| row_end_by_quotes(text.as_bytes(), b'"', b',');
        assert_eq!(end("a,b\nc,d\ne,"), Some(8));
        assert_eq!(end("a,\"b\nc\",d\ne"), Some(10), "the break inside quotes is not a row's end");
        assert_eq!(end("a,\"say \"\"hi\"\"\nthere\"\nx"), Some(21), "doubled quotes stay inside");
        assert_eq!(end("a,\"open\nstill open"), None);
        assert_eq!(end("a,\"b\"\r\nc"), Some(7));
        assert_eq!(end("a,12\" pipe\nb\n"), None, "a quote inside an unquoted field: counting cannot vouch");
        assert_eq!(end("a,\"b\"c\n"), None, "text after a closing quote");
        assert_eq!(end("a,\"b\"\nc,\"d"), Some(6), "a quote at the end is read with the next block");
    }

    #[test]
    fn csv_core_finds_rows_where_quotes_cannot_be_counted() {
        let mut reader = records_reader(&dialect());
        assert_eq!(row_end_by_records(&mut reader, b"a,12\" pipe\nb,\"c\nd\"\ne"), Some(19));
        assert_eq!(row_end_by_records(&mut reader, b"a,\"open\nstill"), None);
        assert_eq!(row_end_by_records(&mut reader, b"a\rb\rc"), Some(4), "rows ended by \\r alone");
        let escaped = CsvDialect { escape: Some(b'\\'), ..dialect() };
        let mut reader = records_reader(&escaped);
        assert_eq!(row_end_by_records(&mut reader, b"a,\"x\\\"\ny\"\nz"), Some(10));
    }

    #[test]
    fn the_widest_record_is_counted_quotes_and_all() {
        assert_eq!(most_fields(&dialect(), b"a,b\n1,\"x,y\",3,4\n5"), 4);
        assert_eq!(most_fields(&dialect(), b"a,b\r\n1,2,3"), 3, "the last record, without a line break");
        let wide = format!("{}\n", vec!["v"; 3000].join(","));
        assert_eq!(most_fields(&dialect(), wide.as_bytes()), 3000);
    }

    #[tokio::test]
    async fn blocks_hold_every_byte_once_and_end_at_rows() {
        // Rows with quoted line breaks and a stray quote halfway, over several blocks.
        let mut text = String::from("id,note\n");
        for row in 0..600_000 {
            let note = match row % 7 {
                0 => "\"two\nlines\"".to_string(),
                1 => "\"a, \"\"quoted\"\" word\"".to_string(),
                _ if row == 300_003 => "12\" pipe".to_string(),
                _ => format!("plain {row}"),
            };
            text.push_str(&format!("{row},{note}\n"));
        }
        let mut blocks = CsvBlocks::new(text.as_bytes(), &dialect());
        let mut joined = Vec::new();
        let mut count = 0;
        while let Some(block) = blocks.next().await.expect("read") {
            let mut whole = records_reader(&dialect());
            assert_eq!(row_end_by_records(&mut whole, &block), Some(block.len()), "block {count} ends at a row");
            joined.extend_from_slice(&block);
            count += 1;
        }
        assert!(count > 1, "{count} blocks");
        assert_eq!(joined, text.as_bytes());
        assert!(matches!(blocks.ends, RowEnds::Records(_)), "the stray quote switched to csv-core");
    }
}
