//! The change model: Arrow rows, each paired with its operation and the source transaction it belongs to.
//!
//! A [`ChangeBatch`] cannot be built with operations, rows and positions out of step: the constructor
//! checks that every row has one operation and falls in exactly one transaction, in source commit order.

use chrono::{DateTime, Utc};
use deltalake::arrow::array::RecordBatch;

use crate::error::{Error, Result};
use crate::position::SourcePosition;
use crate::schema::TableSchema;

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Insert,
    Update,
    Delete,
    /// Every row of the table was removed. The row's column values are ignored.
    Truncate,
}

impl Operation {
    /// The value stored in the `_cdc_op` metadata column.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Insert => "insert",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Truncate => "truncate",
        }
    }
}

/// The rows of one source transaction inside a batch: `rows` ends (exclusive) at `end_row`.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionSpan {
    pub end_row: usize,
    /// Position at which the transaction committed; acknowledging it acknowledges the whole transaction.
    pub position: SourcePosition,
    pub commit_time: DateTime<Utc>,
}

/// Changes to one table, in source commit order.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    rows: RecordBatch,
    operations: Vec<Operation>,
    transactions: Vec<TransactionSpan>,
}

impl ChangeBatch {
    /// `rows` holds the table's columns as in `schema` (deletes need only the key columns; others may be null).
    pub fn new(
        schema: &TableSchema,
        rows: RecordBatch,
        operations: Vec<Operation>,
        transactions: Vec<TransactionSpan>,
    ) -> Result<Self> {
        let invalid = |reason: String| Error::state(format!("invalid change batch for {}: {reason}", schema.id));
        if operations.len() != rows.num_rows() {
            return Err(invalid(format!("{} rows but {} operations", rows.num_rows(), operations.len())));
        }
        let mut start = 0;
        for (index, span) in transactions.iter().enumerate() {
            if span.end_row < start {
                return Err(invalid(format!("transaction {index} ends at row {} before row {start}", span.end_row)));
            }
            if index > 0 {
                let previous = &transactions[index - 1].position;
                let ordering = previous.try_cmp(&span.position).map_err(|cause| invalid(cause.to_string()))?;
                if ordering.is_gt() {
                    return Err(invalid(format!(
                        "transaction positions go backwards ({previous} then {})",
                        span.position
                    )));
                }
            }
            start = span.end_row;
        }
        if start != rows.num_rows() || transactions.is_empty() {
            return Err(invalid(format!(
                "transactions cover {start} of {} rows (a batch needs at least one transaction)",
                rows.num_rows()
            )));
        }
        for (name, field) in schema.columns.iter().map(|c| &c.name).zip(rows.schema().fields()) {
            if name != field.name() {
                return Err(invalid(format!("column `{}` found where `{name}` was expected", field.name())));
            }
        }
        if rows.num_columns() != schema.columns.len() {
            return Err(invalid(format!("{} columns but the table has {}", rows.num_columns(), schema.columns.len())));
        }
        Ok(ChangeBatch { rows, operations, transactions })
    }

    pub fn rows(&self) -> &RecordBatch {
        &self.rows
    }

    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    pub fn transactions(&self) -> &[TransactionSpan] {
        &self.transactions
    }

    /// The position of the last transaction in the batch: the cursor after applying it.
    pub fn end_position(&self) -> &SourcePosition {
        // `new` guarantees at least one transaction.
        &self.transactions[self.transactions.len() - 1].position
    }

    pub fn len(&self) -> usize {
        self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// The part of the batch after `position`: `None` when every transaction is at or below it. Used to
    /// skip what a previous run already committed.
    pub fn after(&self, schema: &TableSchema, position: &SourcePosition) -> Result<Option<ChangeBatch>> {
        let mut start_row = 0;
        for (index, span) in self.transactions.iter().enumerate() {
            let ordering = span
                .position
                .try_cmp(position)
                .map_err(|cause| Error::state(format!("cannot resume {}: {cause}", schema.id)))?;
            if ordering.is_gt() {
                if index == 0 {
                    return Ok(Some(self.clone()));
                }
                let transactions = self.transactions[index..]
                    .iter()
                    .map(|span| TransactionSpan { end_row: span.end_row - start_row, ..span.clone() })
                    .collect();
                let rows = self.rows.slice(start_row, self.rows.num_rows() - start_row);
                return ChangeBatch::new(schema, rows, self.operations[start_row..].to_vec(), transactions).map(Some);
            }
            start_row = span.end_row;
        }
        Ok(None)
    }

    /// For each row, the index of the transaction it belongs to.
    pub fn transaction_of_rows(&self) -> Vec<usize> {
        let mut owners = Vec::with_capacity(self.len());
        let mut start = 0;
        for (index, span) in self.transactions.iter().enumerate() {
            owners.extend(std::iter::repeat_n(index, span.end_row - start));
            start = span.end_row;
        }
        owners
    }
}
