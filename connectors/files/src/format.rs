//! File formats, named by the user or told by a file's extension.

use std::fmt;

use connector_core::error::{Error, Result};

use crate::compression::Compression;

/// A format files are read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values (or another delimiter), with RFC 4180 quoting.
    Csv,
    /// Tab-separated values: CSV with a tab delimiter.
    Tsv,
    /// JSON lines: one JSON object per line.
    JsonLines,
    /// Apache Parquet, with its own schema.
    Parquet,
    /// Apache Avro object container files, with their writer's schema.
    Avro,
    /// Text: one row per line, in a column `value`.
    Text,
    /// Binary: one row per file, its whole content (Spark's `binaryFile`); never told by an extension.
    Binary,
}

impl Format {
    /// The names the `format` option takes.
    pub const NAMES: &'static str = "csv, tsv, json (JSON lines), parquet, avro, text, binary";

    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "tsv" => Ok(Format::Tsv),
            "json" | "jsonl" | "ndjson" | "json_lines" | "jsonlines" => Ok(Format::JsonLines),
            "parquet" => Ok(Format::Parquet),
            "avro" => Ok(Format::Avro),
            "text" | "txt" => Ok(Format::Text),
            "binary" | "binaryfile" => Ok(Format::Binary),
            other => Err(Error::config(format!("format `{other}` is not supported; use one of {}", Self::NAMES))),
        }
    }

    /// The format a file's name tells, looking past a compression extension (`orders.csv.gz` is CSV).
    pub fn of_file(name: &str) -> Option<Self> {
        let name = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
        let name = Compression::strip_extension(&name);
        let (_, extension) = name.rsplit_once('.')?;
        match extension {
            "csv" => Some(Format::Csv),
            "tsv" | "tab" => Some(Format::Tsv),
            "json" | "jsonl" | "ndjson" => Some(Format::JsonLines),
            "parquet" | "parq" => Some(Format::Parquet),
            "avro" => Some(Format::Avro),
            "txt" | "log" => Some(Format::Text),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::JsonLines => "json",
            Format::Parquet => "parquet",
            Format::Avro => "avro",
            Format::Text => "text",
            Format::Binary => "binary",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_format_is_told_by_its_extension_past_its_compression() {
        assert_eq!(Format::of_file("s3://bucket/day=1/orders.CSV.gz"), Some(Format::Csv));
        assert_eq!(Format::of_file("events.jsonl.zst"), Some(Format::JsonLines));
        assert_eq!(Format::of_file("part-0.snappy.parquet"), Some(Format::Parquet));
        assert_eq!(Format::of_file("orders/part-0.avro"), Some(Format::Avro));
        assert_eq!(Format::parse("Avro").expect("avro"), Format::Avro);
        assert_eq!(Format::of_file("logs/app.log.gz"), Some(Format::Text));
        assert_eq!(Format::of_file("notes.TXT"), Some(Format::Text));
        assert_eq!(Format::parse("binaryFile").expect("Spark's name"), Format::Binary);
        assert_eq!(Format::of_file("README"), None);
        assert!(Format::parse("xml").expect_err("unsupported").to_string().contains("use one of csv"));
    }
}
