//! The records of a block of CSV text cut into fields where they lie, for the common dialect (RFC 4180: a quote
//! opens a field, is doubled inside it and closes it before a delimiter or a line end; no escape character,
//! no comment lines): a field is a slice of the block, or of `scratch` when it holds a doubled quote.
//!
//! Written by hand because csv-core, the tokenizer arrow's decoder runs, copies every field into an output
//! buffer through a byte-at-a-time state machine: 15% of a CSV load's CPU. This cutter gives the same fields
//! as csv-core for the text it takes, and says [`Cut::Unsupported`] for the rest (a quote inside an unquoted
//! field, a character after a closing quote, a quoted field still open where the block ends), which csv-core
//! then reads by its own rules.

/// Where a field's text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Block(usize, usize),
    Scratch(usize, usize),
}

/// What the next call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Record,
    End,
    Unsupported,
}

/// Byte classes: what ends an unquoted field.
const PLAIN: u8 = 0;
const DELIMITER: u8 = 1;
const LINE_END: u8 = 2;
const QUOTE: u8 = 3;

/// Cuts the records of a block of CSV text.
#[derive(Debug)]
pub struct CsvFields<'a> {
    text: &'a str,
    at: usize,
    quote: u8,
    classes: [u8; 256],
}

impl<'a> CsvFields<'a> {
    pub fn new(text: &'a str, delimiter: u8, quote: u8) -> Self {
        let mut classes = [PLAIN; 256];
        classes[usize::from(b'\n')] = LINE_END;
        classes[usize::from(b'\r')] = LINE_END;
        classes[usize::from(quote)] = QUOTE;
        classes[usize::from(delimiter)] = DELIMITER;
        CsvFields { text, at: 0, quote, classes }
    }

    /// The text of `span`.
    pub fn field<'s>(&self, span: Span, scratch: &'s str) -> &'s str
    where
        'a: 's,
    {
        match span {
            Span::Block(start, end) => &self.text[start..end],
            Span::Scratch(start, end) => &scratch[start..end],
        }
    }

    /// The next record's fields into `fields` (cleared first), a field with a doubled quote unescaped into
    /// `scratch` (cleared first). Lines that are empty are no records, as csv-core skips them (a line ends at
    /// `\n`, `\r\n` or `\r`).
    pub fn next_record(&mut self, fields: &mut Vec<Span>, scratch: &mut String) -> Cut {
        fields.clear();
        scratch.clear();
        let bytes = self.text.as_bytes();
        while self.at < bytes.len() && self.classes[usize::from(bytes[self.at])] == LINE_END {
            self.at += 1;
        }
        if self.at == bytes.len() {
            return Cut::End;
        }
        loop {
            let start = self.at;
            let ended_by = if bytes.get(start) == Some(&self.quote) {
                match self.quoted(start, fields, scratch) {
                    Some(ended_by) => ended_by,
                    None => return Cut::Unsupported,
                }
            } else {
                let mut end = start;
                while end < bytes.len() && self.classes[usize::from(bytes[end])] == PLAIN {
                    end += 1;
                }
                fields.push(Span::Block(start, end));
                self.at = end;
                match bytes.get(end).map(|&byte| self.classes[usize::from(byte)]) {
                    None => None,
                    Some(QUOTE) => return Cut::Unsupported,
                    Some(class) => Some(class),
                }
            };
            match ended_by {
                Some(DELIMITER) => self.at += 1,
                // The end of the block, or of the line (its `\n` after a `\r` is skipped as an empty line).
                _ => return Cut::Record,
            }
        }
    }

    /// A quoted field at `start` (its opening quote); the class of the byte after its closing quote (`None`
    /// at the block's end). `None` when csv-core's rules must read it.
    fn quoted(&mut self, start: usize, fields: &mut Vec<Span>, scratch: &mut String) -> Option<Option<u8>> {
        let bytes = self.text.as_bytes();
        let mut at = start + 1;
        let mut unescaped: Option<usize> = None;
        loop {
            let close = at + memchr::memchr(self.quote, &bytes[at..])?;
            if bytes.get(close + 1) == Some(&self.quote) {
                // A doubled quote: one quote of the value.
                if unescaped.is_none() {
                    unescaped = Some(scratch.len());
                }
                scratch.push_str(&self.text[at..=close]);
                at = close + 2;
                continue;
            }
            let field = match unescaped {
                None => Span::Block(start + 1, close),
                Some(from) => {
                    scratch.push_str(&self.text[at..close]);
                    Span::Scratch(from, scratch.len())
                }
            };
            fields.push(field);
            self.at = close + 1;
            return match bytes.get(self.at).map(|&byte| self.classes[usize::from(byte)]) {
                None => Some(None),
                Some(DELIMITER | LINE_END) => Some(bytes.get(self.at).map(|&byte| self.classes[usize::from(byte)])),
                Some(_) => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use csv_core::{ReadRecordResult, Reader};

    use super::*;

    /// Each record's fields as csv-core cuts them.
    fn by_csv_core(text: &str) -> Vec<Vec<String>> {
        let mut reader = Reader::new();
        let (mut output, mut ends) = (vec![0_u8; 1 << 16], vec![0_usize; 1024]);
        let (mut input, mut records) = (text.as_bytes(), Vec::new());
        loop {
            let (mut written, mut count) = (0, 0);
            loop {
                let (result, read, wrote, ended) =
                    reader.read_record(input, &mut output[written..], &mut ends[count..]);
                input = &input[read..];
                written += wrote;
                count += ended;
                match result {
                    ReadRecordResult::Record => break,
                    ReadRecordResult::End => return records,
                    _ => {}
                }
            }
            let mut start = 0;
            let fields = ends[..count]
                .iter()
                .map(|&end| {
                    let field = String::from_utf8(output[start..end].to_vec()).expect("utf-8");
                    start = end;
                    field
                })
                .collect();
            records.push(fields);
        }
    }

    /// Each record's fields as [`CsvFields`] cuts them; `None` when it leaves the text to csv-core.
    fn in_place(text: &str) -> Option<Vec<Vec<String>>> {
        let mut cutter = CsvFields::new(text, b',', b'"');
        let (mut fields, mut scratch, mut records) = (Vec::new(), String::new(), Vec::new());
        loop {
            match cutter.next_record(&mut fields, &mut scratch) {
                Cut::Record => {
                    records.push(fields.iter().map(|&span| cutter.field(span, &scratch).to_string()).collect())
                }
                Cut::End => return Some(records),
                Cut::Unsupported => return None,
            }
        }
    }

    #[test]
    fn fields_are_cut_as_csv_core_cuts_them() {
        let text = "a,b,c\n\"x, \"\"y\"\"\nz\",,\"\"\r\n\r\n\n1,2\r3\n\"\"\"\",é\n,\nlast";
        assert_eq!(in_place(text), Some(by_csv_core(text)));
        assert_eq!(in_place(""), Some(vec![]));
        for unsupported in ["a\"b,c", "\"a\"b,c", "\"open"] {
            assert_eq!(in_place(unsupported), None, "{unsupported}");
        }
    }

    #[test]
    fn random_text_is_cut_as_csv_core_cuts_it_or_left_to_it() {
        let alphabet = ["a", "bc", ",", "\"", "\"\"", "\n", "\r\n", "\r", " ", "é"];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let (mut taken, mut left) = (0, 0);
        for _ in 0..20_000 {
            let mut text = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let length = state % 24;
            for _ in 0..length {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            match in_place(&text) {
                Some(records) => {
                    assert_eq!(records, by_csv_core(&text), "{text:?}");
                    taken += 1;
                }
                None => left += 1,
            }
        }
        assert!(taken > 5_000 && left > 1_000, "both kinds of text were tried: {taken} taken, {left} left");
    }
}
