//! A files profile: where the files are, how to read them, how many to take per commit.
//!
//! ```toml
//! [profiles.orders_landing]
//! kind = "files"
//! path = "s3://bucket/landing/orders/"
//! format = "csv"
//! glob = "*.csv.gz"
//! null_value = "NA"
//! schema_hints = "amount decimal(12,2)"
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use connector_core::config::{Pipeline as PipelineConfig, Profile};
use connector_core::error::{Error, Result};
use connector_core::options::TableOptions;
use connector_core::schema::TableId;

use crate::format::Format;
use crate::format_options::FormatOptions;
use crate::source_cleaning::CleanSource;

/// Files per commit when not set: a commit every thousand small files keeps the log short.
pub const DEFAULT_MAX_FILES_PER_BATCH: usize = 1000;
/// Source bytes per commit when not set.
pub const DEFAULT_MAX_BYTES_PER_BATCH: u64 = 10 * 1024 * 1024 * 1024;
/// Files read at once when not set: one per core of the machine this runs on is enough to keep both busy.
pub const DEFAULT_PARALLEL_FILES: usize = 2;
/// Files sampled to infer the columns when not set.
pub const DEFAULT_INFER_SAMPLE_FILES: usize = 20;
/// How long continuous mode waits between listings when not set.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// How often incremental listings and notifications are backed by a full listing when not set: late files
/// (named before the newest one listed) and files whose notification was lost wait at most this long.
pub const DEFAULT_FULL_LISTING_INTERVAL: Duration = Duration::from_secs(3600);

/// How long ingested files stay before `clean_source` deletes or moves them when not set (Auto Loader's
/// default): time to read them again should a table need rebuilding.
pub const DEFAULT_CLEAN_SOURCE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

fn duration(key: &str, text: &str) -> Result<Duration> {
    humantime::parse_duration(text)
        .map_err(|cause| Error::config(format!("{key} `{text}` is not a duration such as `30s` or `5m`: {cause}")))
}

/// What happens to columns that files bring and the table lacks (Auto Loader's `schemaEvolutionMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaEvolution {
    /// Add them to the table.
    #[default]
    AddNewColumns,
    /// Add them, and widen a column's type where files bring values of a wider one that Delta's type widening
    /// allows (`int` to `bigint`, integers and decimals to wider decimals, `float` to `double`, `date` to
    /// `timestamp_ntz`): the table is rewritten once, in one commit, at each widening.
    AddNewColumnsWithTypeWidening,
    /// Keep the table's columns; the new columns' values go to `_rescued_data`.
    Rescue,
    /// Stop, naming the new columns.
    FailOnNewColumns,
    /// Keep the table's columns; the new columns' values go to `_rescued_data` (as `rescue`).
    None,
}

/// The profile as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilesProfile {
    path: String,
    format: Option<String>,
    glob: Option<String>,
    modified_after: Option<String>,
    #[serde(default)]
    schema_evolution: SchemaEvolution,
    max_files_per_batch: Option<usize>,
    max_bytes_per_batch: Option<u64>,
    parallel_files: Option<usize>,
    infer_sample_files: Option<usize>,
    infer_sample_bytes: Option<u64>,
    poll_interval: Option<String>,
    #[serde(default, alias = "allow_overwrites")]
    reingest_changed_files: bool,
    #[serde(default)]
    incremental_listing: bool,
    #[serde(default)]
    ignore_corrupt_files: bool,
    full_listing_interval: Option<String>,
    queue_url: Option<String>,
    #[serde(default)]
    clean_source: CleanSource,
    clean_source_move_to: Option<String>,
    clean_source_retention: Option<String>,
    // The format options, flat (serde cannot deny unknown keys of a flattened struct).
    header: Option<bool>,
    delimiter: Option<String>,
    quote: Option<String>,
    escape: Option<String>,
    comment: Option<String>,
    null_value: Option<String>,
    date_format: Option<String>,
    timestamp_format: Option<String>,
    #[serde(alias = "charset")]
    encoding: Option<String>,
    schema_hints: Option<String>,
    max_binary_file_bytes: Option<u64>,
    strict: Option<bool>,
    #[serde(alias = "multiLine")]
    multi_line: Option<bool>,
}

/// A files source and the one table it feeds.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    pub pipeline: String,
    pub dest: String,
    pub table: TableId,
    pub table_options: TableOptions,
    pub path: String,
    /// `None`: each file's extension tells.
    pub format: Option<Format>,
    pub glob: Option<String>,
    pub modified_after: Option<DateTime<Utc>>,
    pub format_options: FormatOptions,
    pub schema_evolution: SchemaEvolution,
    pub max_files_per_batch: usize,
    pub max_bytes_per_batch: u64,
    pub parallel_files: usize,
    pub infer_sample_files: usize,
    /// The bytes of each sampled file whose rows are sampled; `None`: a CSV file's first batch of rows, a JSON
    /// lines file's first 4,096 lines.
    pub infer_sample_bytes: Option<u64>,
    pub poll_interval: Duration,
    pub reingest_changed_files: bool,
    /// A file that cannot be read is skipped (recorded in the ledger with the reason) instead of stopping the
    /// sync.
    pub ignore_corrupt_files: bool,
    /// Incremental listing or notifications: between full listings, this often at most, a pass lists only the
    /// files whose path sorts after the newest one listed, or takes those notified. `None`: every pass lists in
    /// full.
    pub full_listing_interval: Option<Duration>,
    /// The SQS queue the bucket's event notifications go to: discovery by notification.
    pub queue_url: Option<String>,
    pub clean_source: CleanSource,
    pub clean_source_move_to: Option<String>,
    /// Ingested files are cleaned once ingested this long ago.
    pub clean_source_retention: Duration,
}

impl FilesConfig {
    pub fn from_profile(profile: &Profile, pipeline: &PipelineConfig) -> Result<Self> {
        let raw: RawFilesProfile = profile.settings.clone().try_into().map_err(|cause| {
            Error::config(format!("pipeline `{}`: the files profile is not valid: {cause}", pipeline.name))
        })?;
        let table = match pipeline.tables.as_slice() {
            [table] => TableId::parse(table)?,
            tables => {
                return Err(Error::config(format!(
                    "pipeline `{}` names {} tables; a files pipeline feeds one table (`tables = [\"raw.orders\"]`, \
                     or --table): give each path its own pipeline",
                    pipeline.name,
                    tables.len()
                )));
            }
        };
        let table_options =
            pipeline.table_options.get(&table.to_string()).cloned().unwrap_or_else(|| pipeline.default_options.clone());
        let positive = |name: &str, value: Option<usize>, default: usize| match value {
            Some(0) => Err(Error::config(format!("{name} must be at least 1"))),
            Some(value) => Ok(value),
            None => Ok(default),
        };
        Ok(FilesConfig {
            pipeline: pipeline.name.clone(),
            dest: pipeline.dest.clone(),
            table,
            table_options,
            path: raw.path,
            format: raw.format.as_deref().map(Format::parse).transpose()?,
            glob: raw.glob,
            modified_after: raw
                .modified_after
                .map(|text| {
                    DateTime::parse_from_rfc3339(&text).map(|time| time.with_timezone(&Utc)).map_err(|cause| {
                        Error::config(format!(
                            "modified_after `{text}` is not an RFC 3339 time such as 2026-12-01T00:00:00Z: {cause}"
                        ))
                    })
                })
                .transpose()?,
            format_options: FormatOptions {
                header: raw.header,
                delimiter: raw.delimiter,
                quote: raw.quote,
                escape: raw.escape,
                comment: raw.comment,
                null_value: raw.null_value,
                date_format: raw.date_format,
                encoding: raw.encoding,
                timestamp_format: raw.timestamp_format,
                schema_hints: raw.schema_hints,
                max_binary_file_bytes: raw.max_binary_file_bytes,
                strict: raw.strict,
                multi_line: raw.multi_line,
            },
            schema_evolution: raw.schema_evolution,
            max_files_per_batch: positive("max_files_per_batch", raw.max_files_per_batch, DEFAULT_MAX_FILES_PER_BATCH)?,
            max_bytes_per_batch: raw.max_bytes_per_batch.unwrap_or(DEFAULT_MAX_BYTES_PER_BATCH).max(1),
            parallel_files: positive("parallel_files", raw.parallel_files, DEFAULT_PARALLEL_FILES)?,
            infer_sample_files: positive("infer_sample_files", raw.infer_sample_files, DEFAULT_INFER_SAMPLE_FILES)?,
            infer_sample_bytes: match raw.infer_sample_bytes {
                Some(0) => return Err(Error::config("infer_sample_bytes must be a positive number of bytes")),
                bytes => bytes,
            },
            poll_interval: match raw.poll_interval {
                None => DEFAULT_POLL_INTERVAL,
                Some(text) => duration("poll_interval", &text)?,
            },
            reingest_changed_files: raw.reingest_changed_files,
            ignore_corrupt_files: raw.ignore_corrupt_files,
            full_listing_interval: match (raw.incremental_listing || raw.queue_url.is_some(), raw.full_listing_interval)
            {
                (false, None) => None,
                (false, Some(_)) => {
                    return Err(Error::config(
                        "full_listing_interval applies to incremental listings and notifications: set \
                         incremental_listing = true (--incremental-listing) or queue_url (--queue-url), or remove \
                         full_listing_interval",
                    ));
                }
                (true, None) => Some(DEFAULT_FULL_LISTING_INTERVAL),
                (true, Some(text)) => Some(duration("full_listing_interval", &text)?),
            },
            queue_url: raw.queue_url,
            clean_source: raw.clean_source,
            clean_source_move_to: raw.clean_source_move_to,
            clean_source_retention: match raw.clean_source_retention {
                None => DEFAULT_CLEAN_SOURCE_RETENTION,
                Some(text) => duration("clean_source_retention", &text)?,
            },
        })
    }
}
