//! A binlog as the server sends it or a binlog file holds it (the magic number optional): events parsed by
//! mysql_common, then decoded as the stream decodes them (`connector_mysql`): MariaDB GTID and GTID list
//! events (`gtid`), table maps into table shapes (`table_map::shape_of`, `types`), rows events' row images
//! into the tables' pending changes (`row_images::push_rows`, `codec`, `json_text`), taken as Arrow batches at
//! each transaction's end.
#![no_main]

extern crate connector_fuzz;

use std::collections::HashMap;

use chrono::DateTime;
use connector_core::change_buffer::TakenRows;
use connector_core::engine::TableChanges;
use connector_core::position::{BinlogPosition, SourcePosition};
use connector_core::schema::TableId;
use connector_mysql::row_images::push_rows;
use connector_mysql::changes::PendingChanges;
use connector_mysql::gtid::{MARIADB_GTID_EVENT, MARIADB_GTID_LIST_EVENT, decode_gtid_event, decode_gtid_list};
use connector_mysql::table_map::{Collations, shape_of};
use libfuzzer_sys::fuzz_target;
use mysql_common::binlog::EventStreamReader;
use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::EventData;

/// The collations of the servers the seeds come from (`information_schema.COLLATIONS`, the ones tables use).
fn collations() -> Collations {
    [
        (8, "latin1"),
        (33, "utf8mb3"),
        (45, "utf8mb4"),
        (46, "utf8mb4"),
        (63, "binary"),
        (224, "utf8mb4"),
        (255, "utf8mb4"),
    ]
    .into_iter()
    .map(|(id, name)| (id, name.to_string()))
    .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut input = data.strip_prefix(b"\xfebin").unwrap_or(data);
    let collations = collations();
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let mut tables: HashMap<u64, (TableId, PendingChanges)> = HashMap::new();
    loop {
        // mysql_common 0.35 panics on an event shorter than its header's size (`Event::read` unwraps the read)
        // and on one too short for its checksum (docs/testing.md, Fuzzing: found, guarded here): such events end or are
        // skipped here, so that the fuzzing reaches the connector's decoders.
        let Some(size) = input.get(9..13).map(|size| u32::from_le_bytes(size.try_into().unwrap_or_default()) as usize)
        else {
            break;
        };
        if size > input.len() || size < 19 {
            break;
        }
        if size < 19 + 4 + 1 {
            input = &input[size..];
            continue;
        }
        let Ok(Some(event)) = reader.read(&mut input) else { break };
        let header = event.header();
        match header.event_type_raw() {
            MARIADB_GTID_EVENT => {
                let _ = decode_gtid_event(event.data(), header.server_id());
                continue;
            }
            MARIADB_GTID_LIST_EVENT => {
                let _ = decode_gtid_list(event.data());
                continue;
            }
            _ => {}
        }
        // The connector stops at a compressed transaction (it cannot read one), before mysql_common parses it: a
        // damaged one panics mysql_common (`crash-compressed-transaction-payload-cut-short`).
        if header.event_type_raw() == EventType::TRANSACTION_PAYLOAD_EVENT as u8 {
            break;
        }
        match event.read_data() {
            Ok(Some(EventData::TableMapEvent(map))) => {
                // The connector stops at a table map it cannot read; so does the fuzzing.
                let Ok(shape) = shape_of(&map, &collations, None) else { break };
                let id = TableId::new(map.database_name(), map.table_name());
                match tables.get_mut(&map.table_id()) {
                    Some((_, pending)) if !shape.same_columns(pending.shape()) => {
                        if pending.reshape(shape).is_err() {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => {
                        tables.insert(map.table_id(), (id, PendingChanges::new(shape, ())));
                    }
                }
            }
            Ok(Some(EventData::RowsEvent(rows))) => {
                let (Some((id, pending)), Some(map)) =
                    (tables.get_mut(&rows.table_id()), reader.get_tme(rows.table_id()))
                else {
                    continue;
                };
                // The connector stops at a change it cannot decode and drops what it buffered (a row may be half
                // appended), so the fuzzing stops there too.
                if push_rows(pending, &rows, map, id).is_err() {
                    break;
                }
            }
            Ok(Some(EventData::XidEvent(_))) => {
                let position = BinlogPosition {
                    file: "binlog.000001".into(),
                    offset: u64::from(header.log_pos()),
                    gtid: None,
                    server: None,
                };
                let commit_time = DateTime::from_timestamp(i64::from(header.timestamp()), 0).unwrap_or_default();
                for (_, pending) in tables.values_mut() {
                    let changes = pending.changes_mut();
                    changes.close_transaction(SourcePosition::Binlog(position.clone()), commit_time);
                    if changes.take_closed().and_then(|taken| taken.map(TakenRows::into_batch).transpose()).is_err() {
                        return;
                    }
                }
            }
            _ => {}
        }
    }
});
