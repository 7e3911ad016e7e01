//! Where a chunk's reader puts the rows it reads: straight into Parquet files of the table on the reader's own
//! task, so that a chunk costs no memory beyond the files being encoded and the stream only commits it.

use tokio::sync::oneshot;

use super::chunked_copy::{ChunkRequest, ChunkStart, chunk_key, integer_keys};
use super::parquet_encoder::{EncodedRows, ParquetEncoder};
use crate::arrow::array::RecordBatch;
use crate::delta::{SnapshotFiles, WrittenFiles};
use crate::error::{Error, Result};
use crate::schema::{TableId, TableSchema};

/// The rows of a chunk, as the reader hands them over. The reader reports the chunk's start
/// ([`positioned`](Self::positioned)) before it writes any row, then [`write`](Self::write)s the rows in key
/// order and [`finish`](Self::finish)es.
///
/// Rows whose columns fit the Delta table's go to Parquet files as they come (not visible until the stream
/// commits them). Rows with a column the table lacks, or holds narrower, are held in memory instead, since the
/// table must change first: the stream does that when it applies the chunk, before writing them.
pub struct ChunkRows {
    table: TableId,
    after: Option<i128>,
    report: Option<oneshot::Sender<ChunkStart>>,
    start: Option<ChunkStart>,
    /// Where rows go while they fit the table; `None` once they are held.
    files: Option<SnapshotFiles>,
    /// The task encoding the rows into `files`, from the first rows written on.
    encoder: Option<ParquetEncoder>,
    held: Vec<RecordBatch>,
    /// The chunk's columns, from its first rows.
    schema: Option<TableSchema>,
    greatest_key: Option<i128>,
    rows: u64,
    bytes: u64,
}

impl std::fmt::Debug for ChunkRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkRows").field("table", &self.table).field("rows", &self.rows).finish_non_exhaustive()
    }
}

impl ChunkRows {
    pub(super) fn new(request: &ChunkRequest, report: oneshot::Sender<ChunkStart>, files: SnapshotFiles) -> Self {
        ChunkRows {
            table: request.table.clone(),
            after: request.after,
            report: Some(report),
            start: None,
            files: Some(files),
            encoder: None,
            held: Vec::new(),
            schema: None,
            greatest_key: None,
            rows: 0,
            bytes: 0,
        }
    }

    /// Reports where the chunk's snapshot sits in the stream and the key it reads up to, as soon as the source
    /// knows them and before any row is written.
    pub fn positioned(&mut self, start: ChunkStart) {
        if let Some(files) = self.files.as_mut() {
            files.positioned(&start.position);
        }
        if let Some(report) = self.report.take() {
            let _ = report.send(start.clone());
        }
        self.start = Some(start);
    }

    /// Adds rows read, `schema` being the table's columns in the chunk's snapshot (the same for every call).
    pub async fn write(&mut self, schema: &TableSchema, rows: RecordBatch) -> Result<()> {
        if self.start.is_none() {
            return Err(Error::state(format!("internal: rows of a chunk of {} came before its position", self.table)));
        }
        self.settle_columns(schema)?;
        if rows.num_rows() == 0 {
            return Ok(());
        }
        let key = chunk_key(schema)
            .and_then(|key| schema.column_index(key))
            .ok_or_else(|| Error::state(format!("{} has no single integer key to copy in chunks by", self.table)))?;
        let greatest = integer_keys(&self.table, rows.column(key))?.into_iter().flatten().max();
        self.greatest_key = self.greatest_key.max(greatest);
        self.rows += rows.num_rows() as u64;
        if let Some(files) = self.files.take() {
            self.encoder = Some(ParquetEncoder::spawn(files));
        }
        match &self.encoder {
            Some(encoder) => encoder.encode(EncodedRows::Snapshot(rows), &format!("a chunk of {}", self.table)).await,
            None => {
                self.held.push(rows);
                Ok(())
            }
        }
    }

    /// Counts `bytes` more of the source's answer read for the chunk: the table's bytes read once it commits.
    pub fn count_bytes(&mut self, bytes: u64) {
        self.bytes += bytes;
    }

    /// The chunk, once every row is written; `schema` as for [`write`](Self::write).
    pub async fn finish(mut self, schema: TableSchema) -> Result<Chunk> {
        let Some(start) = self.start.take() else {
            return Err(Error::state(format!("internal: a chunk of {} ended without its position", self.table)));
        };
        self.settle_columns(&schema)?;
        if let Some(encoder) = self.encoder.take() {
            self.files = Some(encoder.finish(&format!("a chunk of {}", self.table)).await?);
        }
        let rows = match self.files.as_mut() {
            Some(files) => ChunkContent::Written(files.finish().await?),
            None => ChunkContent::Held(self.held),
        };
        let last_key = match start.up_to {
            Some(key) => Some(key),
            None => self.greatest_key.or(self.after),
        };
        Ok(Chunk {
            schema,
            rows,
            row_count: self.rows,
            byte_count: self.bytes,
            last_key,
            complete: start.up_to.is_none(),
        })
    }

    /// Decides, from the chunk's columns, whether its rows go to files or wait in memory.
    fn settle_columns(&mut self, schema: &TableSchema) -> Result<()> {
        match &self.schema {
            Some(settled) if settled == schema => return Ok(()),
            Some(_) => {
                return Err(Error::state(format!("internal: the rows of a chunk of {} changed columns", self.table)));
            }
            None => {}
        }
        let fits = self.files.as_ref().map(|files| files.fits(schema)).transpose()?;
        if fits == Some(false)
            && let Some(files) = self.files.take()
        {
            files.abandon();
        }
        self.schema = Some(schema.clone());
        Ok(())
    }
}

/// The rows of a table after some key, read under one snapshot.
#[derive(Debug)]
pub struct Chunk {
    /// The table's shape when the chunk was read.
    pub schema: TableSchema,
    pub(super) rows: ChunkContent,
    pub row_count: u64,
    /// The bytes of the source's answer the rows came in.
    pub byte_count: u64,
    /// The greatest key read; `None` when the chunk is empty.
    pub last_key: Option<i128>,
    /// No rows follow the chunk's: the copy ends with it.
    pub complete: bool,
}

/// A chunk's rows: in files to commit, or in memory when the table must change before they are written.
#[derive(Debug)]
pub(super) enum ChunkContent {
    Written(WrittenFiles),
    Held(Vec<RecordBatch>),
}
