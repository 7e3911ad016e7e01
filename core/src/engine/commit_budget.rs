//! When buffered changes are committed: when they fill the memory budget, or when the oldest has waited the
//! commit interval (the latency target).

use std::time::Duration;

/// How much a stream buffers before committing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitBudget {
    /// The longest a change waits in memory before its commit starts.
    pub commit_interval: Duration,
    /// Buffered bytes (all tables together) that start a commit; a transaction larger than this is applied in
    /// parts where the table's mode allows.
    pub batch_bytes: usize,
}

/// How often a streaming loop checks whether its oldest pending change has waited `commit_interval`: a tenth
/// of it, between 10 and 100 ms. Checking only once per interval would let a change that arrived just after a
/// check wait almost two intervals.
pub fn commit_check_period(commit_interval: Duration) -> Duration {
    (commit_interval / 10).clamp(Duration::from_millis(10), Duration::from_millis(100))
}
