//! Errors at the engine boundary: what went wrong, to which table, and whether retrying can help.
//!
//! The scheduler decides from [`Error::retry`] whether to back off and try again or to stop the pipeline and
//! tell the user. Causes are attached as `#[source]`, never formatted into the message.

use std::fmt;

use crate::table_id::{TableId, UnqualifiedName};

/// Whether repeating the failed operation can succeed without anyone changing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A transient condition (connection reset, commit conflict, throttling): back off and retry.
    WithBackoff,
    /// The user must act (configuration, permissions, incompatible schema): retrying repeats the failure.
    No,
}

/// Which part of the system failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Config,
    Source,
    Destination,
    State,
    Schema,
    /// The source no longer holds the changes the tables need (a replication slot invalidated, a binlog purged,
    /// events expired): retrying cannot help, the tables must be copied anew ([`Error::tables_to_resync`]).
    HistoryLost,
    /// The input itself cannot be read (a corrupt or truncated file, a value that does not fit its column in
    /// strict mode): retrying the same input cannot help; the input must be fixed or skipped.
    BadInput,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Config => "configuration",
            ErrorKind::Source => "source",
            ErrorKind::Destination => "destination",
            ErrorKind::State => "state",
            ErrorKind::Schema => "schema",
            ErrorKind::HistoryLost => "history lost",
            ErrorKind::BadInput => "bad input",
        })
    }
}

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error with its kind, retry policy, the table it concerns (if any) and an actionable message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    retry: Retry,
    table: Option<TableId>,
    /// For [`ErrorKind::HistoryLost`]: the tables to copy anew.
    resync: Vec<TableId>,
    message: String,
    #[source]
    cause: Option<Cause>,
}

impl Error {
    pub fn new(kind: ErrorKind, retry: Retry, message: impl Into<String>) -> Self {
        Error { kind, retry, table: None, resync: Vec::new(), message: message.into(), cause: None }
    }

    /// The source lost the changes `tables` need since their cursors; `message` says what happened and how to
    /// copy them anew.
    pub fn history_lost(tables: impl IntoIterator<Item = TableId>, message: impl Into<String>) -> Self {
        let mut error = Self::new(ErrorKind::HistoryLost, Retry::No, message);
        error.resync = tables.into_iter().collect();
        error
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, Retry::No, message)
    }

    pub fn schema(table: &TableId, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Schema, Retry::No, message).for_table(table)
    }

    pub fn state(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::State, Retry::No, message)
    }

    /// A Delta write or read failed; commit conflicts and I/O errors are worth a retry.
    pub fn destination(message: impl Into<String>, cause: deltalake::DeltaTableError) -> Self {
        let retry = match &cause {
            deltalake::DeltaTableError::ObjectStore { .. }
            | deltalake::DeltaTableError::Io { .. }
            | deltalake::DeltaTableError::Transaction { .. }
            | deltalake::DeltaTableError::VersionAlreadyExists(_) => Retry::WithBackoff,
            _ => Retry::No,
        };
        Self::new(ErrorKind::Destination, retry, message).caused_by(cause)
    }

    pub fn for_table(mut self, table: &TableId) -> Self {
        self.table = Some(table.clone());
        self
    }

    pub fn caused_by(mut self, cause: impl Into<Cause>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn retry(&self) -> Retry {
        self.retry
    }

    pub fn table(&self) -> Option<&TableId> {
        self.table.as_ref()
    }

    /// The tables a [`ErrorKind::HistoryLost`] error says must be copied anew.
    pub fn tables_to_resync(&self) -> &[TableId] {
        &self.resync
    }

    /// The message followed by its chain of causes, for one-line display to users.
    pub fn report(&self) -> String {
        let mut text = self.message.clone();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(next) = cause {
            text.push_str(": ");
            text.push_str(&next.to_string());
            cause = next.source();
        }
        text
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<UnqualifiedName> for Error {
    fn from(name: UnqualifiedName) -> Self {
        Error::config(name.to_string())
    }
}
