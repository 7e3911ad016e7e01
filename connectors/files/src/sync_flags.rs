//! The flags of `connector sync files`, each setting the profile key of the same name ([`crate::config`]). The
//! format flags are a group of their own, which `connector load` will share.

use clap::{ArgAction, Args};
use connector_core::config::Profile;
use connector_core::sync_flags::{CommonSyncFlags, SyncRequest, count};

/// How files are parsed; the same keys in `pipelines.toml`.
#[derive(Debug, Default, Args)]
pub struct FormatFlags {
    /// csv, tsv, json (JSON lines or an array of records), parquet, avro, text or binary (default: each file's extension, past .gz/.zst/.bz2/.xz).
    #[arg(long)]
    pub format: Option<String>,

    /// CSV: the first line names the columns (the default).
    #[arg(long, overrides_with = "no_header")]
    pub header: bool,

    /// CSV: there is no header line; columns are _c0, _c1, ….
    #[arg(long, action = ArgAction::SetTrue)]
    pub no_header: bool,

    /// CSV: the field separator, one character (default `,`; a tab for TSV; `\t` is a tab).
    #[arg(long)]
    pub delimiter: Option<String>,

    /// CSV: the quote character (default `"`).
    #[arg(long)]
    pub quote: Option<String>,

    /// CSV: the escape character inside quoted values (default: a doubled quote).
    #[arg(long)]
    pub escape: Option<String>,

    /// CSV: skip lines starting with this character.
    #[arg(long)]
    pub comment: Option<String>,

    /// CSV: the text read as null (default: an empty field).
    #[arg(long)]
    pub null_value: Option<String>,

    /// CSV, JSON and text: the files' character encoding (default utf-8): latin1, windows-1252, utf-16le, shift_jis, ….
    #[arg(long, value_name = "LABEL")]
    pub encoding: Option<String>,

    /// CSV and JSON: how dates are written when not 2026-12-05, as a strftime pattern: '%d/%m/%Y'.
    #[arg(long, value_name = "PATTERN")]
    pub date_format: Option<String>,

    /// CSV and JSON: how timestamps are written when not ISO 8601, as a strftime pattern: '%d/%m/%Y %H:%M:%S' (with %z:
    /// zoned, stored in UTC).
    #[arg(long, value_name = "PATTERN")]
    pub timestamp_format: Option<String>,

    /// Binary: the largest file read, in bytes (default 64 MiB); a row holds a file's whole content.
    #[arg(long, value_name = "BYTES")]
    pub max_binary_file_bytes: Option<u64>,

    /// Column types that win over inference, as SQL: "id bigint, amount decimal(12,2)".
    #[arg(long)]
    pub schema_hints: Option<String>,

    /// JSON: records may span lines (pretty-printed objects); a file that is an array of records needs no flag.
    #[arg(long)]
    pub multi_line: bool,

    /// Stop at the first value that does not fit its column, naming the file, row, column and value, instead
    /// of keeping it in _rescued_data.
    #[arg(long)]
    pub strict: bool,
}

impl FormatFlags {
    /// The profile keys these flags set.
    pub fn add_to(self, settings: &mut toml::Table) {
        let texts = [
            ("format", self.format),
            ("delimiter", self.delimiter),
            ("quote", self.quote),
            ("escape", self.escape),
            ("comment", self.comment),
            ("null_value", self.null_value),
            ("date_format", self.date_format),
            ("encoding", self.encoding),
            ("timestamp_format", self.timestamp_format),
            ("schema_hints", self.schema_hints),
        ];
        for (key, value) in texts {
            if let Some(value) = value {
                settings.insert(key.into(), value.into());
            }
        }
        if let Some(bytes) = self.max_binary_file_bytes {
            settings.insert("max_binary_file_bytes".into(), count(bytes));
        }
        for (key, on) in [("strict", self.strict), ("multi_line", self.multi_line)] {
            if on {
                settings.insert(key.into(), true.into());
            }
        }
        if self.no_header {
            settings.insert("header".into(), false.into());
        } else if self.header {
            settings.insert("header".into(), true.into());
        }
    }
}

#[derive(Debug, Args)]
pub struct FilesSyncFlags {
    /// Where the files are: a local directory or file, or s3://, gs:// or az:// bucket/prefix/ (the stores' usual
    /// environment variables: AWS_*, GOOGLE_*, AZURE_*).
    #[arg(long)]
    pub path: String,

    /// The table the files land in, as namespace.name: it lands at <dest>/<namespace>/<name>.
    #[arg(long)]
    pub table: String,

    /// Only files whose path below --path matches: '*.csv.gz', '2026/*/orders-*.json' (`*` stays within a
    /// directory, `**` crosses them). Names starting with `.` or `_` are never taken.
    #[arg(long)]
    pub glob: Option<String>,

    /// Only files modified after this time (RFC 3339: 2026-12-01T00:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub modified_after: Option<String>,

    /// Columns that files bring and the table lacks: add_new_columns (the default), rescue (keep their values
    /// in _rescued_data), fail_on_new_columns, none (as rescue); add_new_columns_with_type_widening also
    /// widens a column's type (int to bigint, to a wider decimal, date to timestamp_ntz; rewrites the table).
    #[arg(long, value_name = "MODE")]
    pub schema_evolution: Option<String>,

    /// Files per commit at most (default 1000).
    #[arg(long, value_name = "COUNT")]
    pub max_files_per_batch: Option<usize>,

    /// Source bytes per commit at most (default 10 GiB; a commit always takes at least one file).
    #[arg(long, value_name = "BYTES")]
    pub max_bytes_per_batch: Option<u64>,

    /// Files read at once (default 2).
    #[arg(long, value_name = "COUNT")]
    pub parallel_files: Option<usize>,

    /// Files of a batch whose first rows the columns are inferred from (default 20).
    #[arg(long, value_name = "COUNT")]
    pub infer_sample_files: Option<usize>,

    /// Infer the columns from the rows within each sampled file's first BYTES (default: a CSV file's first
    /// 16,384 rows, a JSON lines file's first 4,096 lines).
    #[arg(long, value_name = "BYTES")]
    pub infer_sample_bytes: Option<u64>,

    /// Continuous mode: the pause between listings (default 10s).
    #[arg(long, value_name = "DURATION")]
    pub poll_interval: Option<String>,

    /// Ingest again a file rewritten in place (same path, another size, time or ETag); by default it is
    /// skipped with a warning.
    #[arg(long)]
    pub reingest_changed_files: bool,

    /// Skip a file that cannot be read (corrupt, truncated, not its format) instead of stopping: it is recorded
    /// as skipped, with the reason, and `connector status` lists it; a new version of it is read again.
    #[arg(long)]
    pub ignore_corrupt_files: bool,

    /// List only the files whose path sorts after the newest one listed (for names that grow with time:
    /// dates, sequence numbers), with a full listing every --full-listing-interval for late files.
    #[arg(long)]
    pub incremental_listing: bool,

    /// With --incremental-listing or --queue-url: how often a pass lists every file (default 1h).
    #[arg(long, value_name = "DURATION")]
    pub full_listing_interval: Option<String>,

    /// Discover new files from the bucket's S3 event notifications in this SQS queue (https://sqs.…/queue),
    /// with a full listing every --full-listing-interval as the safety net.
    #[arg(long, value_name = "URL")]
    pub queue_url: Option<String>,

    /// Once ingested files are older than --clean-source-retention: delete them, or move them below
    /// --clean-source-move-to (default: off, they stay).
    #[arg(long, value_name = "off|delete|move")]
    pub clean_source: Option<String>,

    /// With --clean-source move: the directory (same store, outside --path) ingested files move to.
    #[arg(long, value_name = "PATH")]
    pub clean_source_move_to: Option<String>,

    /// With --clean-source: how long after their ingestion files are cleaned (default 30d).
    #[arg(long, value_name = "DURATION")]
    pub clean_source_retention: Option<String>,

    #[command(flatten)]
    pub format: FormatFlags,

    #[command(flatten)]
    pub common: CommonSyncFlags,
}

impl FilesSyncFlags {
    pub fn into_request(self) -> SyncRequest {
        let mut settings = toml::Table::new();
        settings.insert("path".into(), self.path.into());
        let texts = [
            ("glob", self.glob),
            ("modified_after", self.modified_after),
            ("schema_evolution", self.schema_evolution),
            ("poll_interval", self.poll_interval),
            ("full_listing_interval", self.full_listing_interval),
            ("queue_url", self.queue_url),
            ("clean_source", self.clean_source),
            ("clean_source_move_to", self.clean_source_move_to),
            ("clean_source_retention", self.clean_source_retention),
        ];
        for (key, value) in texts {
            if let Some(value) = value {
                settings.insert(key.into(), value.into());
            }
        }
        let counts = [
            ("max_files_per_batch", self.max_files_per_batch.map(|n| n as u64)),
            ("max_bytes_per_batch", self.max_bytes_per_batch),
            ("parallel_files", self.parallel_files.map(|n| n as u64)),
            ("infer_sample_files", self.infer_sample_files.map(|n| n as u64)),
            ("infer_sample_bytes", self.infer_sample_bytes),
        ];
        for (key, value) in counts {
            if let Some(value) = value {
                settings.insert(key.into(), count(value));
            }
        }
        let switches = [
            ("reingest_changed_files", self.reingest_changed_files),
            ("incremental_listing", self.incremental_listing),
            ("ignore_corrupt_files", self.ignore_corrupt_files),
        ];
        for (key, _) in switches.into_iter().filter(|(_, on)| *on) {
            settings.insert(key.into(), true.into());
        }
        self.format.add_to(&mut settings);
        SyncRequest {
            profile: Profile { kind: crate::KIND.into(), settings },
            tables: vec![self.table],
            common: self.common,
        }
    }
}
