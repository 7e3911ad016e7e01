//! `connector preview`: the columns a load of the given files would create and their first rows, written
//! nowhere: what the upload page shows before the user edits the types and loads (as `--schema-hints`).

use std::sync::Arc;

use clap::Args;

use connector_core::arrow::array::RecordBatch;
use connector_core::arrow::compute::concat_batches;
use connector_core::arrow::datatypes::Field;
use connector_core::error::{Error, Result};
use connector_core::schema::TableId;

use crate::listing::FileFilter;
use crate::load::{files_of, one_off_config};
use crate::pipeline::FilesSource;
use crate::row_sink::RowSink;
use crate::sync_flags::FormatFlags;

/// Rows shown when not set: a screenful to check the types against.
pub const DEFAULT_PREVIEW_ROWS: usize = 50;

/// The flags of `connector preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Files to look at, as `connector load` takes them: local files, directories, globs, s3:// URLs.
    #[arg(required = true, value_name = "PATH_OR_URL")]
    pub paths: Vec<String>,

    /// Rows to show, from the first file on (default 50).
    #[arg(long, default_value_t = DEFAULT_PREVIEW_ROWS)]
    pub rows: usize,

    /// Print the columns and rows as one JSON document.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub format: FormatFlags,
}

/// The columns a load would create, and the first rows as they would land (values that do not fit in
/// `_rescued_data`).
#[derive(Debug)]
pub struct Preview {
    pub columns: Vec<Field>,
    pub rows: RecordBatch,
    /// The files the paths name (the columns come from a sample of them, as a load's do).
    pub files: usize,
}

/// Infers the files' columns as `connector load` would and reads their first rows into memory.
pub async fn preview(args: PreviewArgs) -> Result<Preview> {
    // A load's settings without a table: nothing is opened or written.
    let table = TableId::new("preview", "files");
    let config = Arc::new(one_off_config("preview", "", table, &args.paths, args.format)?);
    let (locations, files) = files_of(&args.paths).await?;
    let source = FilesSource::new(config, locations, FileFilter::default())?;
    let schema = connector_core::engine::FileSource::columns_for(&source, &files, None).await?;
    let columns: Vec<Field> = schema.arrow_schema().fields().iter().map(|field| field.as_ref().clone()).collect();
    let mut rows = PreviewRows { wanted: args.rows, batches: Vec::new(), taken: 0, of_file: 0 };
    for file in &files {
        if rows.taken >= rows.wanted {
            break;
        }
        rows.of_file = 0;
        source.read_into(file, &schema, &mut rows).await?;
    }
    let rows = concat_batches(&schema.arrow_schema(), &rows.batches)
        .map_err(|cause| Error::state(format!("internal: the preview's rows do not join: {cause}")))?;
    Ok(Preview { columns, rows, files: files.len() })
}

/// The first `wanted` rows, over files.
struct PreviewRows {
    wanted: usize,
    batches: Vec<RecordBatch>,
    taken: usize,
    /// Rows taken of the file being read.
    of_file: u64,
}

impl RowSink for PreviewRows {
    async fn take(&mut self, rows: &RecordBatch) -> Result<bool> {
        let kept = rows.num_rows().min(self.wanted.saturating_sub(self.taken));
        if kept > 0 {
            self.batches.push(rows.slice(0, kept));
        }
        self.taken += kept;
        self.of_file += rows.num_rows() as u64;
        Ok(self.taken < self.wanted)
    }

    fn rows_taken(&self) -> u64 {
        self.of_file
    }

    fn takes_any_order(&self) -> bool {
        false
    }

    async fn take_at(&mut self, rows: &RecordBatch, _first_row: u64) -> Result<bool> {
        self.take(rows).await
    }
}
