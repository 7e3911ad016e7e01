//! The loop every file source runs: list, skip what the table's ledger holds, read the new files in bounded
//! batches (several files at once, each streamed into Parquet on its own task) and commit each batch whole with
//! its files recorded in the ledger; in continuous mode, list again at the poll interval.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tracing::{info, warn};

use super::file_source::{FileListing, FileRead, FileRows, FileSource};
use super::parquet_encoder::{ParquetEncoder, ReaderEncoders};
use crate::cursor::TableCursor;
use crate::delta::{DeltaSink, DeltaTableWriter, SnapshotFiles, WrittenFiles};
use crate::error::{Error, ErrorKind, Result};
use crate::ingested_file::{IngestedFile, SourceFile};
use crate::metrics::metrics;
use crate::options::{RowsOrigin, TableOptions};
use crate::pipeline::{Shutdown, SyncMode, SyncReport, TableReport};
use crate::position::{SourcePosition, TokenCursor};
use crate::schema::{TableId, TableSchema};

/// How many files a commit takes, how many are read at once, and how often a continuous sync lists again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSettings {
    /// Files per commit at most: a backlog of a million files lands in bounded steps, each a commit.
    pub max_files_per_batch: usize,
    /// Source bytes per commit at most (a batch always takes at least one file, however large).
    pub max_bytes_per_batch: u64,
    /// Files read at once, each on a task of its own.
    pub parallel_files: usize,
    /// The pause between listings of a continuous sync.
    pub poll_interval: Duration,
    /// Whether a file rewritten in place (same path, another size, time or entity tag) is ingested again.
    pub reingest_changed_files: bool,
    /// Whether a file that cannot be read (corrupt, truncated, not its format) is skipped and recorded as such,
    /// instead of stopping the sync.
    pub ignore_corrupt_files: bool,
}

/// Ingests the new files of every table at once; a `once` sync lists once and ingests what it found, a
/// continuous one lists again at the poll interval until shut down. A table that fails returns its error once
/// the others have finished their pass.
pub async fn ingest_files<S: FileSource>(
    sources: &[Arc<S>],
    sink: &DeltaSink,
    settings: FileSettings,
    mode: SyncMode,
    shutdown: Shutdown,
) -> Result<SyncReport> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, source) in sources.iter().enumerate() {
        let (source, sink, shutdown) = (source.clone(), sink.clone(), shutdown.clone());
        tasks.spawn(async move { (index, ingest_table(source, sink, settings, mode, shutdown).await) });
    }
    let mut reports = vec![None; sources.len()];
    let mut failure: Option<Error> = None;
    while let Some(joined) = tasks.join_next().await {
        let (index, result) =
            joined.map_err(|panic| Error::state(format!("a file ingestion ended abnormally: {panic}")))?;
        match result {
            Ok(report) => reports[index] = Some(report),
            Err(error) => {
                warn!(table = %sources[index].table_id(), error = %error.report(), "ingestion stopped");
                failure.get_or_insert(error);
            }
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(SyncReport { tables: reports.into_iter().flatten().collect() }),
    }
}

/// A table of files and where it stands.
pub(super) struct FileTable {
    id: TableId,
    options: TableOptions,
    /// `None` until the first files create it.
    writer: Option<DeltaTableWriter>,
    /// The ledger, by path.
    pub(super) ingested: HashMap<String, IngestedFile>,
    /// The sequence of the last committed cursor; each commit takes the next one.
    sequence: u64,
    /// The listing token committed last.
    pub(super) token: Option<String>,
    report: TableReport,
}

async fn ingest_table<S: FileSource>(
    source: Arc<S>,
    sink: DeltaSink,
    settings: FileSettings,
    mode: SyncMode,
    mut shutdown: Shutdown,
) -> Result<TableReport> {
    let mut table = open(source.as_ref(), &sink).await?;
    loop {
        let listing = source.list(table.token.as_deref()).await?;
        let more = listing.more;
        pass(&source, &sink, &mut table, listing, settings, &shutdown).await?;
        if shutdown.is_requested() {
            break;
        }
        if more {
            continue;
        }
        if mode == SyncMode::Once {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = shutdown.requested() => break,
        }
    }
    table.report.position =
        table.writer.as_ref().and_then(|writer| writer.cursor()).map(|cursor| cursor.position.clone());
    Ok(table.report)
}

/// The table of `source`'s files as its last commit left it (no table yet: an empty ledger).
pub(super) async fn open<S: FileSource>(source: &S, sink: &DeltaSink) -> Result<FileTable> {
    let id = source.table_id();
    let options = file_table_options(source);
    let writer = sink.open_existing(&id, options.clone()).await?;
    let (mut ingested, mut sequence, mut token) = (HashMap::<String, IngestedFile>::new(), 0, None);
    if let Some(writer) = &writer {
        // A file ingested again after a rewrite has a record per version: the latest commit's is the one listed now.
        for file in writer.ingested_files().await? {
            match ingested.get(&file.file.path) {
                Some(known) if known.txn_version > file.txn_version => {}
                _ => {
                    ingested.insert(file.file.path.clone(), file);
                }
            }
        }
        match writer.cursor().map(|cursor| &cursor.position) {
            None => {}
            Some(SourcePosition::Token(cursor)) => (sequence, token) = (cursor.sequence, cursor.token.clone()),
            Some(other) => {
                return Err(Error::state(format!(
                    "{id} holds a cursor of another source ({other}); write the files to another table"
                )));
            }
        }
    }
    // Resynced (emptied, its ledger voided): the listing starts over too, so every file is listed again.
    if writer.as_ref().and_then(|writer| writer.cursor()).is_some_and(|cursor| !cursor.snapshot_complete()) {
        token = None;
    }
    let report = TableReport { files_ingested: Some(0), ..TableReport::new(id.clone()) };
    Ok(FileTable { id, options, writer, ingested, sequence, token, report })
}

/// Ingests the new files of one listing, a batch per commit; the listing's token is committed with the last,
/// and its notifications are acknowledged after it.
async fn pass<S: FileSource>(
    source: &Arc<S>,
    sink: &DeltaSink,
    table: &mut FileTable,
    listing: FileListing,
    settings: FileSettings,
    shutdown: &Shutdown,
) -> Result<()> {
    let FileListing { files, token, notifications, .. } = listing;
    if source.cleans_source() {
        // Files skipped unread stay for the user to look at.
        let ingested: Vec<&IngestedFile> = files
            .iter()
            .filter_map(|file| table.ingested.get(&file.path).filter(|ingested| ingested.same_version_as(file)))
            .filter(|ingested| ingested.skipped.is_none())
            .collect();
        if !ingested.is_empty() {
            source.clean_ingested(&ingested).await?;
        }
    }
    let new: Vec<SourceFile> = files.into_iter().filter(|file| is_new(table, file, settings)).collect();
    if new.is_empty() {
        metrics().set_files_outstanding(sink.pipeline(), &table.id, 0, 0);
        if table.writer.is_some() && table.token.as_deref() != Some(token.as_str()) {
            commit(table, None, Vec::new(), token).await?;
        }
        return source.acknowledge(notifications).await;
    }
    let total = new.len();
    info!(table = %table.id, files = total, "new files found");
    // Counted down batch by batch: summing what remains before each batch would cost a backlog of a million
    // files a million additions per commit.
    let mut outstanding_bytes: u64 = new.iter().map(|file| file.size).sum();
    let mut remaining = new.as_slice();
    while !remaining.is_empty() {
        metrics().set_files_outstanding(sink.pipeline(), &table.id, remaining.len() as u64, outstanding_bytes);
        if shutdown.is_requested() {
            return Ok(());
        }
        let batch = next_batch(remaining, settings);
        outstanding_bytes -= batch.iter().map(|file| file.size).sum::<u64>();
        remaining = &remaining[batch.len()..];
        let batch_token = if remaining.is_empty() { token.clone() } else { table.token.clone().unwrap_or_default() };
        ingest_batch(source, sink, table, batch, batch_token, settings).await?;
    }
    metrics().set_files_outstanding(sink.pipeline(), &table.id, 0, 0);
    source.acknowledge(notifications).await
}

fn is_new(table: &FileTable, file: &SourceFile, settings: FileSettings) -> bool {
    match file_state(&table.ingested, file) {
        FileState::New => true,
        FileState::Ingested => false,
        FileState::Rewritten if settings.reingest_changed_files => true,
        FileState::Rewritten => {
            warn!(table = %table.id, file = %file.path, "a file already ingested was rewritten; it is not ingested \
                   again (set reingest_changed_files to ingest rewritten files)");
            false
        }
    }
}

/// Where a listed file stands against the table's ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FileState {
    New,
    Ingested,
    /// Ingested, then rewritten in place (another size, time or entity tag).
    Rewritten,
}

pub(super) fn file_state(ingested: &HashMap<String, IngestedFile>, file: &SourceFile) -> FileState {
    match ingested.get(&file.path) {
        None => FileState::New,
        Some(ingested) if ingested.same_version_as(file) => FileState::Ingested,
        // A file skipped as unreadable and since rewritten is read again: it was likely fixed.
        Some(ingested) if ingested.skipped.is_some() => FileState::New,
        Some(_) => FileState::Rewritten,
    }
}

/// The first files of `files` one commit takes: at most `max_files_per_batch` and `max_bytes_per_batch`, at
/// least one.
fn next_batch(files: &[SourceFile], settings: FileSettings) -> &[SourceFile] {
    let mut bytes = 0u64;
    let mut count = 0;
    for file in files.iter().take(settings.max_files_per_batch.max(1)) {
        bytes = bytes.saturating_add(file.size);
        if count > 0 && bytes > settings.max_bytes_per_batch {
            break;
        }
        count += 1;
    }
    &files[..count.max(1)]
}

async fn ingest_batch<S: FileSource>(
    source: &Arc<S>,
    sink: &DeltaSink,
    table: &mut FileTable,
    batch: &[SourceFile],
    token: String,
    settings: FileSettings,
) -> Result<()> {
    let existing = table.writer.as_ref().map(DeltaTableWriter::source_columns).transpose()?;
    let schema = source.columns_for(batch, existing.as_deref()).await?;
    let writer = table_with_columns(sink, table.writer.take(), &schema, &table.options).await?;
    let writer = table.writer.insert(writer);
    let mut batch = batch.to_vec();
    let mut skipped = Vec::new();
    let (written, mut ingested) = loop {
        match read_into_parquet(source, writer, schema.clone(), &batch, settings.parallel_files).await {
            Ok(read) => break read,
            // The batch is read again without the file: its rows, and the rows of files read alongside it, may
            // already be in Parquet files that are now never committed.
            Err(ReadFailure { error, unreadable: Some(file) }) if settings.ignore_corrupt_files => {
                warn!(table = %table.id, file = %file.path, error = %error.report(),
                      "the file cannot be read; skipped and recorded as skipped (ignore_corrupt_files)");
                batch.retain(|listed| listed.path != file.path);
                skipped.push(IngestedFile::skipped(file, error.to_string()));
                if batch.is_empty() {
                    break (None, Vec::new());
                }
            }
            Err(failure) => return Err(failure.error),
        }
    };
    ingested.extend(skipped);
    commit(table, written, ingested, token).await
}

/// Why reading a batch's files failed, and the file at fault when the file itself cannot be read (an error of
/// kind [`ErrorKind::BadInput`]) rather than the store or the table.
#[derive(Debug)]
pub(super) struct ReadFailure {
    pub(super) error: Error,
    pub(super) unreadable: Option<SourceFile>,
}

impl From<Error> for ReadFailure {
    fn from(error: Error) -> Self {
        ReadFailure { error, unreadable: None }
    }
}

/// The options of a source's table of files.
pub(super) fn file_table_options<S: FileSource>(source: &S) -> TableOptions {
    TableOptions { rows_origin: RowsOrigin::Files, ..source.table_options() }
}

/// The table, given the columns its next rows bring: `existing` with the columns it lacks added, or created.
pub(super) async fn table_with_columns(
    sink: &DeltaSink,
    existing: Option<DeltaTableWriter>,
    schema: &TableSchema,
    options: &TableOptions,
) -> Result<DeltaTableWriter> {
    match existing {
        Some(mut writer) => {
            writer.evolve(schema).await?;
            Ok(writer)
        }
        None => sink.open_table(schema, options.clone()).await,
    }
}

/// Reads `files` into Parquet files of `writer`'s table by `parallel` readers, each taking the next file not yet
/// taken, parsing it on its task while its encoders write the rows before; the files a reader takes share its
/// Parquet files. There are `parallel` encoders whatever the number of files: with fewer files than that, a
/// reader has several (its source may parse one file on several tasks). Returns what they wrote, to commit, and
/// the files read (those gone since listing are left out).
pub(super) async fn read_into_parquet<S: FileSource>(
    source: &Arc<S>,
    writer: &DeltaTableWriter,
    schema: TableSchema,
    files: &[SourceFile],
    parallel: usize,
) -> std::result::Result<(Option<WrittenFiles>, Vec<IngestedFile>), ReadFailure> {
    let schema = Arc::new(schema);
    let taken_at = Utc::now();
    let waiting = Arc::new(Mutex::new(files.iter().cloned().collect::<VecDeque<SourceFile>>()));
    let mut readers = tokio::task::JoinSet::new();
    let reader_count = parallel.clamp(1, files.len().max(1));
    for reader in 0..reader_count {
        let encoder_count = (reader..parallel.max(1)).step_by(reader_count).count();
        let encoders = (0..encoder_count)
            .map(|_| Ok(ParquetEncoder::spawn(writer.snapshot_files(taken_at)?)))
            .collect::<Result<Vec<_>>>()?;
        readers.spawn(read_files(source.clone(), schema.clone(), waiting.clone(), ReaderEncoders::new(encoders)));
    }
    let (mut written, mut ingested): (Option<WrittenFiles>, Vec<IngestedFile>) = (None, Vec::new());
    while let Some(joined) = readers.join_next().await {
        // A failed reader ends the others (dropping `readers` aborts them): nothing of the batch is committed.
        let (files, read) =
            joined.map_err(|panic| Error::state(format!("reading files ended abnormally: {panic}")))??;
        if let Some(files) = files {
            gather(&mut written, files)?;
        }
        ingested.extend(read);
    }
    Ok((written, ingested))
}

/// One reader: takes files from `waiting` until none is left, each read whole into `encoders`' files.
async fn read_files<S: FileSource>(
    source: Arc<S>,
    schema: Arc<TableSchema>,
    waiting: Arc<Mutex<VecDeque<SourceFile>>>,
    mut encoders: ReaderEncoders,
) -> std::result::Result<(Option<WrittenFiles>, Vec<IngestedFile>), ReadFailure> {
    let mut ingested = Vec::new();
    loop {
        let next = waiting.lock().map_err(|_| Error::state("internal: the files to read are poisoned"))?.pop_front();
        let Some(file) = next else { break };
        let mut rows = FileRows::new(encoders, file.clone());
        let read = source.read(&file, &schema, &mut rows).await;
        let (returned, file, count) = rows.into_parts();
        encoders = returned;
        match read {
            Ok(FileRead::Complete) => ingested.push(IngestedFile::new(file, count)),
            Ok(FileRead::Vanished) if count == 0 => {
                warn!(file = %file.path, "the file was deleted after it was listed; skipped");
            }
            Ok(FileRead::Vanished) => {
                return Err(Error::state(format!(
                    "internal: {} vanished after {count} of its rows were read",
                    file.path
                ))
                .into());
            }
            // The encoder's error first: a read that failed because the encoder stopped says less.
            Err(error) => {
                let written = match encoders.finish(&file.path).await {
                    Err(encoding) => return Err(encoding.into()),
                    Ok(written) => written,
                };
                // Nothing of the batch is committed: the rows this reader wrote are dropped, as when it read none.
                written.into_iter().for_each(SnapshotFiles::abandon);
                let unreadable = (error.kind() == ErrorKind::BadInput).then_some(file);
                return Err(ReadFailure { error, unreadable });
            }
        }
    }
    let encoded = encoders.finish("the files read").await?;
    if ingested.is_empty() {
        encoded.into_iter().for_each(SnapshotFiles::abandon);
        return Ok((None, ingested));
    }
    let mut written: Option<WrittenFiles> = None;
    for mut files in encoded {
        gather(&mut written, files.finish().await?)?;
    }
    Ok((written, ingested))
}

/// Adds `files` to those written so far, to commit together.
fn gather(written: &mut Option<WrittenFiles>, files: WrittenFiles) -> Result<()> {
    match written {
        Some(all) => all.absorb(files),
        None => {
            *written = Some(files);
            Ok(())
        }
    }
}

/// Commits a batch's rows, its files in the ledger and `token` in one Delta commit.
async fn commit(
    table: &mut FileTable,
    written: Option<WrittenFiles>,
    ingested: Vec<IngestedFile>,
    token: String,
) -> Result<()> {
    let Some(writer) = table.writer.as_mut() else {
        return Err(Error::state(format!("internal: {} has no table to commit to", table.id)));
    };
    let sequence = table.sequence + 1;
    let cursor = TableCursor {
        position: SourcePosition::Token(TokenCursor { sequence, token: Some(token.clone()) }),
        snapshot: None,
        parts_of: None,
    };
    let rows: u64 = ingested.iter().map(|file| file.rows).sum();
    let read = || ingested.iter().filter(|file| file.skipped.is_none());
    let bytes: u64 = read().map(|file| file.file.size).sum();
    let files = read().count();
    // A file's lag is from its last modification (when it landed) to the commit of its rows.
    if let Some(newest) = read().map(|file| file.file.modified).max() {
        writer.note_source_commit(newest);
    }
    // Counted before the commit, whose event counts them committed: read never trails committed.
    metrics().rows_read(writer.pipeline(), &table.id).inc_by(rows);
    metrics().bytes_read(writer.pipeline(), &table.id).inc_by(bytes);
    writer.land_files_with_next_commit(ingested.clone());
    match written {
        Some(written) => writer.commit_snapshot_files(written, cursor).await?,
        None => {
            writer.advance_cursor(&cursor.position).await?;
        }
    }
    for file in ingested {
        table.ingested.insert(file.file.path.clone(), file);
    }
    table.sequence = sequence;
    table.token = Some(token);
    table.report.changes_applied += rows;
    *table.report.files_ingested.get_or_insert(0) += files as u64;
    info!(table = %table.id, files, rows, bytes, sequence, "committed");
    Ok(())
}
