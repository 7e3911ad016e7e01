//! Where a MySQL or MariaDB replication stream stands in GTID terms, independent of any one server's binlog
//! file names: what lets a binlog position be resumed on another server of the same topology (a failover to
//! a replica) and ordered against positions taken there.
//!
//! - MariaDB: the last GTID of each replication domain, `domain-server-sequence`, as in `@@gtid_binlog_pos`
//!   (`0-1-42,1-2-7`). A transaction is included when its domain's sequence is at or below the state's.
//! - MySQL: the set of executed GTIDs, as in `@@gtid_executed` (`3e11fa47-…:1-5:7-9,…`).
//!
//! States taken along one server's binlog only grow, so they are totally ordered by inclusion; states of
//! diverged servers (errant transactions) are not, and say so.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// A GTID state of either server family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GtidState {
    /// Domain → (server id, sequence) of its last transaction.
    MariaDb(BTreeMap<u32, (u32, u64)>),
    /// Source UUID (lower-case text) → executed transaction numbers, as sorted disjoint inclusive intervals.
    MySql(BTreeMap<String, Vec<(u64, u64)>>),
}

impl GtidState {
    /// Reads `@@gtid_binlog_pos` or `@@gtid_executed` text (whitespace and newlines ignored). The empty text is
    /// `None`: it names no family.
    pub fn parse(text: &str) -> Result<Option<GtidState>, String> {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if text.is_empty() {
            return Ok(None);
        }
        let invalid = |part: &str| format!("`{part}` in GTID state `{text}` is not a MariaDB or MySQL GTID");
        if text.contains(':') {
            let mut sets = BTreeMap::new();
            for part in text.split(',') {
                let mut pieces = part.split(':');
                let uuid = pieces.next().filter(|uuid| uuid.len() == 36).ok_or_else(|| invalid(part))?;
                let intervals: &mut Vec<(u64, u64)> = sets.entry(uuid.to_ascii_lowercase()).or_default();
                for interval in pieces {
                    let (start, end) = interval.split_once('-').unwrap_or((interval, interval));
                    let (start, end) =
                        (start.parse().map_err(|_| invalid(part))?, end.parse().map_err(|_| invalid(part))?);
                    if start == 0 || end < start {
                        return Err(invalid(part));
                    }
                    intervals.push((start, end));
                }
                normalise(intervals);
            }
            return Ok(Some(GtidState::MySql(sets)));
        }
        let mut domains = BTreeMap::new();
        for part in text.split(',') {
            let numbers: Vec<&str> = part.split('-').collect();
            let [domain, server, sequence] = numbers.as_slice() else { return Err(invalid(part)) };
            let domain = domain.parse().map_err(|_| invalid(part))?;
            let gtid = (server.parse().map_err(|_| invalid(part))?, sequence.parse().map_err(|_| invalid(part))?);
            domains.insert(domain, gtid);
        }
        Ok(Some(GtidState::MariaDb(domains)))
    }

    pub fn is_empty(&self) -> bool {
        match self {
            GtidState::MariaDb(domains) => domains.is_empty(),
            GtidState::MySql(sets) => sets.is_empty(),
        }
    }

    /// A MariaDB transaction's GTID: its domain's last transaction from now on.
    pub fn record_mariadb(&mut self, domain: u32, server: u32, sequence: u64) {
        if let GtidState::MariaDb(domains) = self {
            domains.insert(domain, (server, sequence));
        }
    }

    /// A MariaDB GTID list entry: the state at the start of a binlog file, which is never ahead of a domain
    /// already known, so it only fills in domains not seen yet.
    pub fn learn_mariadb_domain(&mut self, domain: u32, server: u32, sequence: u64) {
        if let GtidState::MariaDb(domains) = self {
            domains.entry(domain).or_insert((server, sequence));
        }
    }

    /// A MySQL transaction's GTID (`sid`, the 16 bytes of its source UUID, and its number) joins the set.
    pub fn record_mysql(&mut self, sid: [u8; 16], number: u64) {
        if let GtidState::MySql(sets) = self {
            // Every transaction names its source: the text is formatted on the stack, allocated only for a new one.
            let mut buffer = uuid::Uuid::encode_buffer();
            let uuid = uuid::Uuid::from_bytes(sid).hyphenated().encode_lower(&mut buffer);
            match sets.get_mut(uuid as &str) {
                Some(intervals) => add_number(intervals, number),
                None => add_number(sets.entry(uuid.to_string()).or_default(), number),
            }
        }
    }

    /// Whether every transaction of `other` is in `self`.
    fn includes(&self, other: &GtidState) -> Option<bool> {
        match (self, other) {
            (GtidState::MariaDb(mine), GtidState::MariaDb(theirs)) => Some(
                theirs.iter().all(|(domain, (_, sequence))| mine.get(domain).is_some_and(|(_, mine)| mine >= sequence)),
            ),
            (GtidState::MySql(mine), GtidState::MySql(theirs)) => Some(theirs.iter().all(|(uuid, intervals)| {
                let mine = mine.get(uuid).map(Vec::as_slice).unwrap_or_default();
                intervals.iter().all(|&(start, end)| mine.iter().any(|&(from, to)| from <= start && end <= to))
            })),
            _ => None,
        }
    }

    /// Orders two states by inclusion; `None` when neither includes the other (diverged servers) or they are
    /// of different families.
    pub fn compare(&self, other: &GtidState) -> Option<Ordering> {
        match (self.includes(other)?, other.includes(self)?) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Greater),
            (false, true) => Some(Ordering::Less),
            (false, false) => None,
        }
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written piece by piece: MySQL positions format the state once per transaction.
        match self {
            GtidState::MariaDb(domains) => {
                for (index, (domain, (server, sequence))) in domains.iter().enumerate() {
                    let separator = if index == 0 { "" } else { "," };
                    write!(f, "{separator}{domain}-{server}-{sequence}")?;
                }
            }
            GtidState::MySql(sets) => {
                for (index, (uuid, intervals)) in sets.iter().enumerate() {
                    f.write_str(if index == 0 { "" } else { "," })?;
                    f.write_str(uuid)?;
                    for &(start, end) in intervals {
                        if start == end { write!(f, ":{start}")? } else { write!(f, ":{start}-{end}")? }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Adds transaction `number` to one source's sorted intervals.
fn add_number(intervals: &mut Vec<(u64, u64)>, number: u64) {
    match intervals.last_mut() {
        // Transactions of one source arrive in order: the common case extends the last interval.
        Some((_, end)) if *end + 1 == number => *end = number,
        Some((_, end)) if *end >= number => {
            intervals.push((number, number));
            normalise(intervals);
        }
        _ => intervals.push((number, number)),
    }
}

/// Sorts intervals and merges those that overlap or touch.
fn normalise(intervals: &mut Vec<(u64, u64)>) {
    intervals.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(start, end) in intervals.iter() {
        match merged.last_mut() {
            Some((_, last)) if start <= last.saturating_add(1) => *last = (*last).max(end),
            _ => merged.push((start, end)),
        }
    }
    *intervals = merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(text: &str) -> GtidState {
        GtidState::parse(text).expect("valid").expect("not empty")
    }

    const UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn mysql_transactions_join_their_sources_intervals() {
        let sid = *uuid::Uuid::parse_str(UUID).expect("uuid").as_bytes();
        let other = [7_u8; 16];
        let mut set = state(&format!("{UUID}:1-5"));
        set.record_mysql(sid, 6);
        assert_eq!(set.to_string(), format!("{UUID}:1-6"));
        set.record_mysql(sid, 9);
        set.record_mysql(sid, 3);
        assert_eq!(set.to_string(), format!("{UUID}:1-6:9"));
        // A transaction out of order fills the gap it belongs to.
        set.record_mysql(sid, 8);
        set.record_mysql(sid, 7);
        assert_eq!(set.to_string(), format!("{UUID}:1-9"));
        set.record_mysql(other, 1);
        set.record_mysql(other, 2);
        assert_eq!(set.to_string(), format!("07070707-0707-0707-0707-070707070707:1-2,{UUID}:1-9"));
    }

    #[test]
    fn mariadb_states_read_write_and_order_by_domain_sequences() {
        let earlier = state("0-1-42, 1-2-7");
        assert_eq!(earlier.to_string(), "0-1-42,1-2-7");
        let mut later = earlier.clone();
        later.record_mariadb(0, 1, 43);
        later.learn_mariadb_domain(1, 2, 3);
        later.learn_mariadb_domain(2, 5, 9);
        assert_eq!(later.to_string(), "0-1-43,1-2-7,2-5-9");
        assert_eq!(earlier.compare(&later), Some(Ordering::Less));
        assert_eq!(later.compare(&earlier), Some(Ordering::Greater));
        assert_eq!(later.compare(&later.clone()), Some(Ordering::Equal));
        // Another domain ahead on each side: diverged.
        assert_eq!(state("0-1-50,1-2-1").compare(&state("0-1-40,1-2-9")), None);
    }

    #[test]
    fn mysql_sets_read_write_and_order_by_inclusion() {
        const OTHER: &str = "8a94f357-aab4-11df-86ab-c80aa9429562";
        let executed = state(&format!("{OTHER}:1-3,\n{UUID}:1-5:7"));
        assert_eq!(executed.to_string(), format!("{UUID}:1-5:7,{OTHER}:1-3"));
        let sid: [u8; 16] =
            [0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62];
        let mut grown = executed.clone();
        grown.record_mysql(sid, 6);
        assert_eq!(grown.to_string(), format!("{UUID}:1-7,{OTHER}:1-3"));
        grown.record_mysql(sid, 9);
        assert_eq!(grown.to_string(), format!("{UUID}:1-7:9,{OTHER}:1-3"));
        assert_eq!(executed.compare(&grown), Some(Ordering::Less));
        assert_eq!(state(&format!("{UUID}:1-9")).compare(&state(&format!("{UUID}:2-10"))), None);
        assert_eq!(state(&format!("{UUID}:1-3:4-6")).to_string(), format!("{UUID}:1-6"));
    }

    #[test]
    fn bad_states_are_refused_and_families_do_not_compare() {
        assert!(GtidState::parse("0-1").is_err());
        assert!(GtidState::parse("abc:1-2").is_err());
        assert!(GtidState::parse(&format!("{UUID}:5-2")).is_err());
        assert_eq!(GtidState::parse(" \n").expect("empty is valid"), None);
        assert_eq!(state("0-1-1").compare(&state(&format!("{UUID}:1"))), None);
    }
}
