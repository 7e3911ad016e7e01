//! `connector load`: the files given (local files, directories and globs, object-store URLs) into one table in
//! one commit, creating it, appending to it, replacing its rows or upserting them by key.

use std::collections::HashSet;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use object_store::ObjectStoreExt;

use connector_core::delta::{DEFAULT_MERGE_SLICE_BYTES, DeltaSink, Destination};
use connector_core::engine::{LoadMode, LoadReport, load_files};
use connector_core::error::{Error, Result};
use connector_core::ingested_file::SourceFile;
use connector_core::options::TableOptions;
use connector_core::schema::TableId;

use crate::config::{
    DEFAULT_CLEAN_SOURCE_RETENTION, DEFAULT_INFER_SAMPLE_FILES, DEFAULT_MAX_BYTES_PER_BATCH,
    DEFAULT_MAX_FILES_PER_BATCH, DEFAULT_PARALLEL_FILES, DEFAULT_POLL_INTERVAL, FilesConfig, SchemaEvolution,
};
use crate::format::Format;
use crate::listing::{FileFilter, list_files};
use crate::location::FileLocation;
use crate::pipeline::FilesSource;
use crate::source_cleaning::CleanSource;
use crate::sync_flags::FormatFlags;

/// The pipeline name a load records its commit under.
pub const LOAD_PIPELINE: &str = "load";

/// The flags of `connector load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Files to load: local files, directories (every file below), globs ('exports/2026-*.csv') and object-store
    /// URLs (s3://bucket/key, gs://…, az://container/key, or a prefix such as s3://bucket/prefix/ for every file
    /// below).
    #[arg(required = true, value_name = "PATH_OR_URL")]
    pub paths: Vec<String>,

    /// Where tables land: a local directory or s3://bucket/prefix.
    #[arg(long)]
    pub dest: String,

    /// The table, as namespace.name: it lands at <dest>/<namespace>/<name>.
    #[arg(long)]
    pub table: String,

    /// create (refuse if the table exists), append, overwrite (replace its rows in one commit), or merge
    /// (upsert the rows on --key in one commit, read in slices past --merge-memory: a row replaces the table's
    /// rows with its key, or is inserted; of the files' rows with one key the last wins, files in the order
    /// given, then rows in file order).
    #[arg(long, value_enum, default_value_t = LoadModeFlag::Create)]
    pub mode: LoadModeFlag,

    /// With --mode merge, the columns that identify a row, comma-separated (--key id, --key region,id).
    #[arg(long, value_delimiter = ',', value_name = "COLUMNS")]
    pub key: Vec<String>,

    /// With --mode merge, the loaded rows held at once, in bytes uncompressed (default 134217728, 128 MiB;
    /// the merge holds a few times this): more are read back in slices of their keys, still one commit.
    #[arg(long, value_name = "BYTES")]
    pub merge_memory: Option<u64>,

    #[command(flatten)]
    pub format: FormatFlags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoadModeFlag {
    Create,
    Append,
    Overwrite,
    Merge,
}

/// The load mode the flags ask for: --key and --merge-memory go with --mode merge, and only with it.
fn load_mode(mode: LoadModeFlag, key: &[String], merge_memory: Option<u64>) -> Result<LoadMode> {
    let key: Vec<String> = key.iter().map(|column| column.trim().to_string()).collect();
    if let Some(empty) = key.iter().position(String::is_empty) {
        return Err(Error::config(format!(
            "--key names an empty column (column {} of the list); give column names separated by commas, such as \
             --key region,id",
            empty + 1
        )));
    }
    match (mode, key.is_empty()) {
        (LoadModeFlag::Merge, true) => {
            Err(Error::config("--mode merge needs --key: the columns that identify a row, such as --key id"))
        }
        (LoadModeFlag::Merge, false) => match merge_memory {
            Some(0) => Err(Error::config("--merge-memory 0 holds no row; give a size in bytes, such as 134217728")),
            slice_bytes => Ok(LoadMode::Merge { key, slice_bytes: slice_bytes.unwrap_or(DEFAULT_MERGE_SLICE_BYTES) }),
        },
        (_, true) if merge_memory.is_some() => {
            Err(Error::config("--merge-memory is only for --mode merge; remove it, or add --mode merge --key COLUMNS"))
        }
        (_, false) => Err(Error::config(
            "--key is only for --mode merge (the other modes match no rows); remove --key, or add --mode merge",
        )),
        (LoadModeFlag::Create, true) => Ok(LoadMode::Create),
        (LoadModeFlag::Append, true) => Ok(LoadMode::Append),
        (LoadModeFlag::Overwrite, true) => Ok(LoadMode::Overwrite),
    }
}

/// Runs the load the flags ask for.
pub async fn load(args: LoadArgs) -> Result<LoadReport> {
    let table = TableId::parse(&args.table)?;
    let mode = load_mode(args.mode, &args.key, args.merge_memory)?;
    let config = Arc::new(one_off_config(LOAD_PIPELINE, &args.dest, table, &args.paths, args.format)?);
    let (locations, files) = files_of(&args.paths).await?;
    let source = FilesSource::new(config.clone(), locations, FileFilter::default())?;
    let sink = DeltaSink::new(Destination::parse(&args.dest)?, LOAD_PIPELINE, Default::default());
    load_files(Arc::new(source), &sink, files, mode, config.parallel_files).await
}

/// The settings a load or a preview reads files with: the format flags given, the defaults for the rest.
pub(crate) fn one_off_config(
    pipeline: &str,
    dest: &str,
    table: TableId,
    paths: &[String],
    format: FormatFlags,
) -> Result<FilesConfig> {
    let mut settings = toml::Table::new();
    format.add_to(&mut settings);
    let format = settings.get("format").and_then(toml::Value::as_str).map(Format::parse).transpose()?;
    let format_options = settings.try_into().map_err(|cause| Error::config(format!("format options: {cause}")))?;
    Ok(FilesConfig {
        pipeline: pipeline.into(),
        dest: dest.into(),
        table,
        table_options: TableOptions::default(),
        path: paths.join(" "),
        format,
        glob: None,
        modified_after: None,
        format_options,
        schema_evolution: SchemaEvolution::AddNewColumns,
        max_files_per_batch: DEFAULT_MAX_FILES_PER_BATCH,
        max_bytes_per_batch: DEFAULT_MAX_BYTES_PER_BATCH,
        parallel_files: DEFAULT_PARALLEL_FILES,
        infer_sample_files: DEFAULT_INFER_SAMPLE_FILES,
        infer_sample_bytes: None,
        poll_interval: DEFAULT_POLL_INTERVAL,
        reingest_changed_files: false,
        ignore_corrupt_files: false,
        full_listing_interval: None,
        queue_url: None,
        clean_source: CleanSource::Off,
        clean_source_move_to: None,
        clean_source_retention: DEFAULT_CLEAN_SOURCE_RETENTION,
    })
}

/// Every file the paths name, each once, in the order the paths are given (the files of one directory, glob or
/// prefix in path order): the order a merge load applies rows of the same key in.
pub(crate) async fn files_of(paths: &[String]) -> Result<(Vec<FileLocation>, Vec<SourceFile>)> {
    let mut locations = Vec::new();
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for path in paths {
        for expanded in expand_local_glob(path)? {
            let location = FileLocation::parse(&expanded)?;
            let mut found = list_files(&location, &FileFilter::default()).await?;
            if found.is_empty() {
                found = single_object(&location).await?;
            }
            if found.is_empty() {
                return Err(Error::config(format!("{expanded} holds no file to load")));
            }
            found.sort_by(|a, b| a.path.cmp(&b.path));
            files.extend(found.into_iter().filter(|file| seen.insert(file.path.clone())));
            locations.push(location);
        }
    }
    Ok((locations, files))
}

/// A local path with glob characters as the paths it matches; anything else as itself.
fn expand_local_glob(path: &str) -> Result<Vec<String>> {
    let is_url = path.contains("://");
    if is_url || !path.contains(['*', '?', '[']) {
        return Ok(vec![path.to_string()]);
    }
    let matches = glob::glob(path).map_err(|cause| Error::config(format!("`{path}` is not a valid glob: {cause}")))?;
    let expanded: Vec<String> =
        matches.filter_map(|entry| entry.ok()).map(|entry| entry.display().to_string()).collect();
    if expanded.is_empty() {
        return Err(Error::config(format!("`{path}` matches no file")));
    }
    Ok(expanded)
}

/// An object-store URL that names one object (`s3://bucket/orders.csv`) rather than a prefix.
async fn single_object(location: &FileLocation) -> Result<Vec<SourceFile>> {
    if location.single_file().is_some() || location.prefix.as_ref().is_empty() {
        return Ok(Vec::new());
    }
    match location.store.head(&location.prefix).await {
        Ok(meta) => Ok(vec![SourceFile {
            path: location.url_of(&meta.location),
            size: meta.size,
            modified: meta.last_modified,
            etag: meta.e_tag,
        }]),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(cause) => Err(Error::config(format!("cannot read {}", location.url_of(&location.prefix))).caused_by(cause)),
    }
}
