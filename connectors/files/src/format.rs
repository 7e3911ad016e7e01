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
}

impl Format {
    /// The names the `format` option takes.
    pub const NAMES: &'static str = "csv, tsv, json (JSON lines), parquet";

    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "tsv" => Ok(Format::Tsv),
            "json" | "jsonl" | "ndjson" | "json_lines" | "jsonlines" => Ok(Format::JsonLines),
            "parquet" => Ok(Format::Parquet),
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
        assert_eq!(Format::of_file("README"), None);
        assert!(Format::parse("xml").expect_err("unsupported").to_string().contains("use one of csv"));
    }
}
