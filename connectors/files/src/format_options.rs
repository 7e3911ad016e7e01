//! How files are parsed: the options `connector sync files` and `pipelines.toml` share (and `connector load`
//! will), each with Spark's and Auto Loader's name where they have one.

use serde::Deserialize;

use connector_core::error::{Error, Result};

use encoding_rs::{Encoding, UTF_8};

use crate::text_encoding::encoding_for_label;
use crate::text_types::TimeFormats;

/// The format options as written; every one has a default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct FormatOptions {
    /// CSV: whether the first line names the columns (default true); without, columns are `_c0`, `_c1`, ….
    pub header: Option<bool>,
    /// CSV: the field separator, one character (default `,`; a tab for TSV).
    pub delimiter: Option<String>,
    /// CSV: the quote character (default `"`).
    pub quote: Option<String>,
    /// CSV: the escape character inside quoted values (default: a doubled quote escapes a quote).
    pub escape: Option<String>,
    /// CSV: lines starting with this character are skipped.
    pub comment: Option<String>,
    /// CSV: the text read as null (default: an empty field).
    pub null_value: Option<String>,
    /// CSV, JSON and text: the files' character encoding, a WHATWG label (default UTF-8): `latin1`,
    /// `windows-1252`, `utf-16le`.
    pub encoding: Option<String>,
    /// CSV and JSON: how dates are written when not `2026-12-05`, as a strftime pattern (`%d/%m/%Y`).
    pub date_format: Option<String>,
    /// CSV and JSON: how timestamps are written when not ISO 8601, as a strftime pattern (`%d/%m/%Y %H:%M:%S`; with `%z`
    /// they are zoned, stored in UTC).
    pub timestamp_format: Option<String>,
    /// Binary: the largest file read, in bytes (default 64 MiB): a row holds a file's whole content.
    pub max_binary_file_bytes: Option<u64>,
    /// Column types that win over inference: `id bigint, amount decimal(12,2), seen timestamp`.
    pub schema_hints: Option<String>,
    /// JSON: records may span lines (pretty-printed objects, one or several per file; Spark's `multiLine`). An
    /// array of records (a file starting with `[`) is read as such without it.
    pub multi_line: Option<bool>,
    /// Stop at the first value that does not fit its column (naming the file, row, column and value) instead of
    /// keeping it in `_rescued_data` (default false; Spark's `mode = FAILFAST`).
    pub strict: Option<bool>,
}

/// The CSV dialect, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvDialect {
    pub header: bool,
    pub delimiter: u8,
    pub quote: u8,
    pub escape: Option<u8>,
    pub comment: Option<u8>,
    pub null_value: Option<String>,
    pub times: TimeFormats,
    /// `None`: UTF-8, read as it is.
    pub encoding: Option<&'static Encoding>,
}

impl FormatOptions {
    pub fn strict(&self) -> bool {
        self.strict.unwrap_or(false)
    }

    /// The CSV dialect these options give, `tab_separated` for TSV files.
    pub fn csv_dialect(&self, tab_separated: bool) -> Result<CsvDialect> {
        let default_delimiter = if tab_separated { b'\t' } else { b',' };
        Ok(CsvDialect {
            header: self.header.unwrap_or(true),
            delimiter: one_byte("delimiter", self.delimiter.as_deref())?.unwrap_or(default_delimiter),
            quote: one_byte("quote", self.quote.as_deref())?.unwrap_or(b'"'),
            escape: one_byte("escape", self.escape.as_deref())?,
            comment: one_byte("comment", self.comment.as_deref())?,
            null_value: self.null_value.clone(),
            times: self.times()?,
            encoding: self.encoding()?,
        })
    }

    /// How dates and timestamps are written (CSV and JSON), checked.
    pub fn times(&self) -> Result<TimeFormats> {
        TimeFormats::new(self.date_format.clone(), self.timestamp_format.clone()).map_err(Error::config)
    }

    /// The files' character encoding (CSV, JSON and text), checked; `None`: UTF-8, read as it is.
    pub fn encoding(&self) -> Result<Option<&'static Encoding>> {
        Ok(match self.encoding.as_deref().map(encoding_for_label).transpose().map_err(Error::config)? {
            Some(encoding) if encoding == UTF_8 => None,
            other => other,
        })
    }
}

/// A one-character option as its byte; `\t` may be written as the two characters `\t`.
fn one_byte(option: &str, value: Option<&str>) -> Result<Option<u8>> {
    let Some(value) = value else { return Ok(None) };
    let value = if value == "\\t" { "\t" } else { value };
    match value.as_bytes() {
        [byte] if byte.is_ascii() => Ok(Some(*byte)),
        _ => Err(Error::config(format!(
            "{option} `{value}` is not one ASCII character; give one, such as `;` or `\\t` (option `{option}`)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dialect_takes_one_ascii_character_per_option_and_names_the_option_it_refuses() {
        let options = FormatOptions { delimiter: Some("\\t".into()), ..FormatOptions::default() };
        let dialect = options.csv_dialect(false).expect("a dialect");
        assert_eq!((dialect.delimiter, dialect.quote, dialect.header), (b'\t', b'"', true));
        let wrong = FormatOptions { quote: Some("''".into()), ..FormatOptions::default() };
        let error = wrong.csv_dialect(false).expect_err("two characters");
        assert!(error.to_string().contains("quote `''` is not one ASCII character"), "{error}");
    }
}
