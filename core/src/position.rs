//! Typed source positions. Positions are totally ordered within one source kind; comparing two kinds is an
//! error, never a panic.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::gtid_state::GtidState;

/// A PostgreSQL write-ahead-log position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl std::str::FromStr for Lsn {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{text}` is not a PostgreSQL LSN (expected the form 16/B374D848)");
        let (high, low) = text.split_once('/').ok_or_else(invalid)?;
        let high = u64::from_str_radix(high, 16).map_err(|_| invalid())?;
        let low = u64::from_str_radix(low, 16).map_err(|_| invalid())?;
        if high > u64::from(u32::MAX) || low > u64::from(u32::MAX) {
            return Err(invalid());
        }
        Ok(Lsn((high << 32) | low))
    }
}

/// A MySQL/MariaDB binlog coordinate. Positions taken on one server are ordered by file sequence number then
/// offset; positions of different servers that both carry a GTID state by that (see [`GtidState`]), which holds
/// on every server of a replication topology.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BinlogPosition {
    pub file: String,
    pub offset: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// The server whose binlog the file and offset are of (MariaDB's `server_id`, MySQL's `server_uuid`): they
    /// mean nothing on another server, where the GTID state carries the position over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

impl BinlogPosition {
    /// The GTID state, when the position carries a valid one.
    pub fn gtid_state(&self) -> Option<GtidState> {
        GtidState::parse(self.gtid.as_deref()?).ok().flatten()
    }

    /// Orders two positions by their GTID states, which hold across the servers of a topology where file
    /// names and offsets differ: `None` when either has none (then file and offset order them),
    /// `Some(None)` when the states diverge.
    fn gtid_order(&self, other: &BinlogPosition) -> Option<Option<Ordering>> {
        let (mine, theirs) = (self.gtid.as_deref()?, other.gtid.as_deref()?);
        if mine == theirs {
            return Some(Some(Ordering::Equal));
        }
        let (mine, theirs) = (self.gtid_state()?, other.gtid_state()?);
        Some(mine.compare(&theirs))
    }

    /// Whether both positions name the server they were taken on, and it is the same one.
    pub fn same_server(&self, other: &BinlogPosition) -> bool {
        self.server.is_some() && self.server == other.server
    }

    /// Orders two positions: by file and offset on one server, else by GTID state when both carry one.
    pub fn try_cmp(&self, other: &BinlogPosition) -> Result<Ordering, &'static str> {
        if !self.same_server(other)
            && let Some(ordering) = self.gtid_order(other)
        {
            return ordering.ok_or("their GTID states diverge (errant transactions?)");
        }
        match (self.file_sequence(), other.file_sequence()) {
            (Some(mine), Some(theirs)) => Ok(mine.cmp(&theirs).then(self.offset.cmp(&other.offset))),
            _ => Err("binlog file names have no numeric suffix"),
        }
    }

    /// The numeric suffix of the binlog file name (`mysql-bin.000042` → 42), which orders files.
    fn file_sequence(&self) -> Option<u64> {
        self.file.rsplit_once('.').and_then(|(_, suffix)| suffix.parse().ok())
    }
}

/// The position of a polled source (an API's paging state, a file listing, a topic's offsets): a token only the
/// source understands, ordered by `sequence`, which grows by one with every commit of the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenCursor {
    pub sequence: u64,
    /// Where the source reads on from; `None`: from its start (a resync restarted the table). Tables written
    /// before the token was generalised call it `cursor`.
    #[serde(alias = "cursor")]
    pub token: Option<String>,
}

/// Where a source stands. One variant per source kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourcePosition {
    Postgres {
        lsn: Lsn,
    },
    Binlog(BinlogPosition),
    /// Tables written before the token was generalised say `api`.
    #[serde(alias = "api")]
    Token(TokenCursor),
}

/// Two positions that cannot be ordered.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot compare source position {left} with {right}: {reason}")]
pub struct IncomparablePositions {
    pub left: String,
    pub right: String,
    pub reason: &'static str,
}

impl SourcePosition {
    /// Orders two positions of the same source kind.
    pub fn try_cmp(&self, other: &SourcePosition) -> Result<Ordering, IncomparablePositions> {
        let incomparable = |reason| IncomparablePositions { left: self.to_string(), right: other.to_string(), reason };
        match (self, other) {
            (SourcePosition::Postgres { lsn: left }, SourcePosition::Postgres { lsn: right }) => Ok(left.cmp(right)),
            (SourcePosition::Binlog(left), SourcePosition::Binlog(right)) => left.try_cmp(right).map_err(incomparable),
            (SourcePosition::Token(left), SourcePosition::Token(right)) => Ok(left.sequence.cmp(&right.sequence)),
            _ => Err(incomparable("they come from different kinds of source")),
        }
    }

    /// The Delta `txn` version this position maps to, when the position itself is a number that only grows
    /// (the PostgreSQL LSN). Other sources use the table's commit sequence instead.
    pub fn txn_version(&self) -> Option<i64> {
        match self {
            SourcePosition::Postgres { lsn } => i64::try_from(lsn.0).ok(),
            SourcePosition::Binlog(_) | SourcePosition::Token(_) => None,
        }
    }
}

impl fmt::Display for SourcePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcePosition::Postgres { lsn } => write!(f, "{lsn}"),
            SourcePosition::Binlog(position) => match &position.gtid {
                Some(gtid) => write!(f, "{}:{} (gtid {gtid})", position.file, position.offset),
                None => write!(f, "{}:{}", position.file, position.offset),
            },
            SourcePosition::Token(TokenCursor { sequence, token: Some(token) }) => write!(f, "#{sequence} {token}"),
            SourcePosition::Token(TokenCursor { sequence, token: None }) => write!(f, "#{sequence} (from the start)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_through_text() {
        let lsn: Lsn = "16/B374D848".parse().expect("valid lsn");
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert!("16-B374".parse::<Lsn>().is_err());
    }

    #[test]
    fn binlog_positions_order_by_file_then_offset() {
        let at = |file: &str, offset| {
            SourcePosition::Binlog(BinlogPosition { file: file.into(), offset, gtid: None, server: None })
        };
        let ordering = at("bin.000002", 4).try_cmp(&at("bin.000010", 1)).expect("comparable");
        assert_eq!(ordering, Ordering::Less);
        let ordering = at("bin.000010", 900).try_cmp(&at("bin.000010", 120)).expect("comparable");
        assert_eq!(ordering, Ordering::Greater);
    }

    #[test]
    fn binlog_positions_with_gtid_states_order_by_them_across_servers() {
        let at = |file: &str, offset, gtid: &str| {
            let server = Some(file.split('-').next().expect("a prefix").to_string());
            SourcePosition::Binlog(BinlogPosition { file: file.into(), offset, gtid: Some(gtid.into()), server })
        };
        // A replica's file and offset say nothing of the primary's: the GTID state orders them.
        let primary = at("primary-bin.000009", 900, "0-1-41");
        let replica = at("replica-bin.000001", 120, "0-1-42");
        assert_eq!(primary.try_cmp(&replica).expect("comparable"), Ordering::Less);
        assert_eq!(at("a.000001", 5, "0-1-42").try_cmp(&replica).expect("comparable"), Ordering::Equal);
        let diverged = at("replica-bin.000001", 120, "0-1-42,1-3-1").try_cmp(&at("b.000002", 4, "0-1-43"));
        assert!(diverged.expect_err("diverged").to_string().contains("diverge"));
        // On one server file and offset are exact, and order positions between transactions too.
        let later = at("primary-bin.000010", 4, "0-1-41");
        assert_eq!(primary.try_cmp(&later).expect("comparable"), Ordering::Less);
    }

    #[test]
    fn different_kinds_do_not_compare() {
        let pg = SourcePosition::Postgres { lsn: Lsn(5) };
        let token = SourcePosition::Token(TokenCursor { sequence: 1, token: Some("x".into()) });
        let error = pg.try_cmp(&token).expect_err("kinds differ");
        assert!(error.to_string().contains("different kinds"), "{error}");
    }

    #[test]
    fn token_cursors_read_the_api_cursors_of_older_tables_and_order_by_sequence() {
        let older: SourcePosition =
            serde_json::from_str(r#"{"kind":"api","sequence":7,"cursor":"{\"after\":\"c\"}"}"#).expect("api cursor");
        assert_eq!(older, SourcePosition::Token(TokenCursor { sequence: 7, token: Some(r#"{"after":"c"}"#.into()) }));
        let restarted = SourcePosition::Token(TokenCursor { sequence: 8, token: None });
        let written = serde_json::to_string(&restarted).expect("json");
        assert_eq!(written, r#"{"kind":"token","sequence":8,"token":null}"#);
        assert_eq!(serde_json::from_str::<SourcePosition>(&written).expect("token"), restarted);
        assert_eq!(older.try_cmp(&restarted).expect("comparable"), Ordering::Less);
        assert_eq!(restarted.to_string(), "#8 (from the start)");
    }
}
