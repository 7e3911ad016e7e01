//! Rows encoded into a table's Parquet files on a task of their own, so that the task reading them (a file's
//! parser, a chunk's reader) goes on reading meanwhile: parsing and encoding cost about the same, and a reader
//! that also encodes keeps one core busy where two could be.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::arrow::array::RecordBatch;
use crate::delta::SnapshotFiles;
use crate::error::{Error, Result};
use crate::ingested_file::SourceFile;

/// Batches read ahead of the encoder.
const BATCHES_AHEAD: usize = 2;

/// Rows handed to the encoder.
#[derive(Debug)]
pub(super) enum EncodedRows {
    /// Snapshot rows of a copy.
    Snapshot(RecordBatch),
    /// Rows of a source file, the first of them numbered `first_row` within it.
    OfFile { rows: RecordBatch, file: Arc<SourceFile>, first_row: u64 },
}

/// The encoding task of one reader's rows.
#[derive(Debug)]
pub(super) struct ParquetEncoder {
    sender: mpsc::Sender<EncodedRows>,
    task: JoinHandle<Result<SnapshotFiles>>,
}

impl ParquetEncoder {
    /// Starts encoding into `files`.
    pub fn spawn(files: SnapshotFiles) -> Self {
        let (sender, mut batches) = mpsc::channel::<EncodedRows>(BATCHES_AHEAD);
        let task = tokio::spawn(async move {
            let mut files = files;
            while let Some(rows) = batches.recv().await {
                match rows {
                    EncodedRows::Snapshot(rows) => files.write_part(0, &rows).await?,
                    EncodedRows::OfFile { rows, file, first_row } => {
                        files.write_file_rows(&rows, &file, first_row).await?
                    }
                }
            }
            Ok(files)
        });
        ParquetEncoder { sender, task }
    }

    /// Hands rows over; waits while the encoder is [`BATCHES_AHEAD`] behind. Fails when the encoder stopped on an
    /// error, which [`finish`](Self::finish) returns.
    pub async fn encode(&self, rows: EncodedRows, what: &str) -> Result<()> {
        self.sender.send(rows).await.map_err(|_| Error::state(format!("the rows of {what} could not be written")))
    }

    /// Waits for every row handed over to be encoded; returns the files to finish and commit.
    pub async fn finish(self, what: &str) -> Result<SnapshotFiles> {
        let ParquetEncoder { sender, task } = self;
        drop(sender);
        task.await.map_err(|panic| Error::state(format!("writing the rows of {what} ended abnormally: {panic}")))?
    }
}

/// A reader's encoding tasks, given its rows in turn: a reader whose rows come faster than one task encodes
/// them (a large file parsed in parallel blocks) keeps several busy. Each writes Parquet files of its own.
#[derive(Debug)]
pub(super) struct ReaderEncoders {
    encoders: Vec<ParquetEncoder>,
    next: usize,
}

impl ReaderEncoders {
    /// `encoders`: at least one.
    pub fn new(encoders: Vec<ParquetEncoder>) -> Self {
        ReaderEncoders { encoders, next: 0 }
    }

    /// Hands rows to the next encoder in turn; waits while it is behind.
    pub async fn encode(&mut self, rows: EncodedRows, what: &str) -> Result<()> {
        let encoder =
            self.encoders.get(self.next).ok_or_else(|| Error::state("internal: a file reader has no encoder"))?;
        self.next = (self.next + 1) % self.encoders.len();
        encoder.encode(rows, what).await
    }

    /// Waits for every encoder; returns the files of each. The first error wins, once all have stopped.
    pub async fn finish(self, what: &str) -> Result<Vec<SnapshotFiles>> {
        let mut finished = Vec::with_capacity(self.encoders.len());
        let mut failure = None;
        for encoder in self.encoders {
            match encoder.finish(what).await {
                Ok(files) => finished.push(files),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        match failure {
            Some(error) => {
                finished.into_iter().for_each(SnapshotFiles::abandon);
                Err(error)
            }
            None => Ok(finished),
        }
    }
}
