//! MariaDB's own GTID events, which mysql_async's binlog reader passes through undecoded: a GTID event opens
//! each transaction (`domain-server-sequence`), a GTID list event states the position at the start of each
//! binlog file. The state they build is [`connector_core::gtid_state::GtidState`].

/// MariaDB's GTID event type code.
pub const MARIADB_GTID_EVENT: u8 = 162;
/// MariaDB's GTID list event type code.
pub const MARIADB_GTID_LIST_EVENT: u8 = 163;
/// A GTID event flag: the transaction is a single statement without BEGIN (DDL).
const FLAG_STANDALONE: u8 = 1;

/// One MariaDB GTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub sequence: u64,
}

/// What a GTID event says: the transaction's GTID and whether a BEGIN follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtidEvent {
    pub gtid: MariaGtid,
    pub standalone: bool,
}

/// Decodes a GTID event's body (`server` is the event header's server id).
pub fn decode_gtid_event(body: &[u8], server: u32) -> Option<GtidEvent> {
    let sequence = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    let flags = *body.get(12)?;
    Some(GtidEvent { gtid: MariaGtid { domain, server, sequence }, standalone: flags & FLAG_STANDALONE != 0 })
}

/// Decodes a GTID list event's body: a count (low 28 bits) then domain, server and sequence per entry.
pub fn decode_gtid_list(body: &[u8]) -> Option<Vec<MariaGtid>> {
    let count = u32::from_le_bytes(body.get(0..4)?.try_into().ok()?) & 0x0fff_ffff;
    // The count is the event's claim: room only for the entries the body holds (a claim of 2^28 entries would
    // reserve 4 GiB; found by the `mysql_binlog` fuzz target, fuzz/corpus/mysql_binlog/crash-gtid-list-count).
    let mut gtids = Vec::with_capacity((count as usize).min(body.len().saturating_sub(4) / 16));
    for index in 0..count as usize {
        let entry = body.get(4 + index * 16..4 + (index + 1) * 16)?;
        gtids.push(MariaGtid {
            domain: u32::from_le_bytes(entry[0..4].try_into().ok()?),
            server: u32::from_le_bytes(entry[4..8].try_into().ok()?),
            sequence: u64::from_le_bytes(entry[8..16].try_into().ok()?),
        });
    }
    Some(gtids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_events_and_lists_decode() {
        let mut body = 42_u64.to_le_bytes().to_vec();
        body.extend(3_u32.to_le_bytes());
        body.push(FLAG_STANDALONE);
        let event = decode_gtid_event(&body, 7).expect("a GTID event");
        assert_eq!(event, GtidEvent { gtid: MariaGtid { domain: 3, server: 7, sequence: 42 }, standalone: true });

        let mut list = 2_u32.to_le_bytes().to_vec();
        for (domain, server, sequence) in [(0_u32, 1_u32, 10_u64), (3, 7, 42)] {
            list.extend(domain.to_le_bytes());
            list.extend(server.to_le_bytes());
            list.extend(sequence.to_le_bytes());
        }
        let listed = decode_gtid_list(&list).expect("a GTID list");
        assert_eq!(
            listed,
            vec![MariaGtid { domain: 0, server: 1, sequence: 10 }, MariaGtid { domain: 3, server: 7, sequence: 42 }]
        );
    }

    #[test]
    fn a_gtid_list_claiming_more_entries_than_it_holds_is_not_decoded() {
        let mut list = 0x0fff_ffff_u32.to_le_bytes().to_vec();
        list.extend([0_u8; 16]);
        assert_eq!(decode_gtid_list(&list), None);
    }
}
