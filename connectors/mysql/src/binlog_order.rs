//! The order of binlog positions, which decides where a stream starts (the oldest cursor of the tables), where
//! a `once` sync stops, and which transactions a table already holds.

use std::cmp::Ordering;

use connector_core::error::{Error, Result};
use connector_core::position::BinlogPosition;

/// Orders two binlog positions: by file and offset on one server, by GTID state across servers. Positions that
/// cannot be ordered (diverged GTID histories, file names without a sequence number) stop the sync with the
/// reason: guessing an order would skip or repeat transactions.
pub fn compare(left: &BinlogPosition, right: &BinlogPosition) -> Result<Ordering> {
    left.try_cmp(right).map_err(|reason| incomparable_positions_error(left, right, reason))
}

/// The earliest of `positions` by [`compare`] (`None` when there are none); positions that cannot be ordered
/// stop, as there.
pub fn earliest<'p>(positions: impl IntoIterator<Item = &'p BinlogPosition>) -> Result<Option<&'p BinlogPosition>> {
    let mut earliest: Option<&BinlogPosition> = None;
    for position in positions {
        let earlier = match earliest {
            Some(kept) => compare(position, kept)?.is_lt(),
            None => true,
        };
        if earlier {
            earliest = Some(position);
        }
    }
    Ok(earliest)
}

fn incomparable_positions_error(left: &BinlogPosition, right: &BinlogPosition, reason: &str) -> Error {
    let describe = |position: &BinlogPosition| {
        format!(
            "{}:{} of server {} (GTID state {})",
            position.file,
            position.offset,
            position.server.as_deref().unwrap_or("-"),
            position.gtid.as_deref().unwrap_or("-")
        )
    };
    Error::state(format!(
        "cannot tell which of binlog positions {} and {} comes first: {reason}. Applying changes by a guessed order \
         would skip or repeat transactions, so the sync stops. Point the pipeline at a server whose GTID history \
         includes the tables' (without errant transactions), or copy the tables anew from this one with \
         `connector resync`",
        describe(left),
        describe(right)
    ))
}
