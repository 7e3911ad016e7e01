//! pgoutput messages (`connector_postgres::pgoutput::decode`), as a stream of them: each message is framed
//! by its length (u32, big-endian), as CopyData frames it. A Relation message's columns get the builders of
//! their built-in types (other types land as text, as without the catalog), and the tuples of the changes to
//! that relation are appended to them, as the stream appends them.
#![no_main]

extern crate connector_fuzz;

use std::collections::HashMap;

use connector_core::change_buffer::ColumnRows;
use connector_postgres::codec::ColumnBuilder;
use connector_postgres::pgoutput::{Change, TupleValue, decode};
use connector_postgres::schema::PgType;
use libfuzzer_sys::fuzz_target;

fn append(builders: &mut [ColumnBuilder], tuple: &[TupleValue<'_>]) {
    if builders.len() != tuple.len() {
        return;
    }
    for (builder, value) in builders.iter_mut().zip(tuple) {
        let _ = builder.append(value.bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut relations: HashMap<u32, Vec<ColumnBuilder>> = HashMap::new();
    let mut rest = data;
    while let Some((length, tail)) = rest.split_first_chunk::<4>() {
        let length = (u32::from_be_bytes(*length) as usize).min(tail.len());
        let (message, tail) = tail.split_at(length);
        rest = tail;
        match decode(message) {
            Ok(Change::Relation(relation)) => {
                let builders = relation
                    .columns
                    .iter()
                    .map(|column| {
                        let pg_type = PgType::builtin(column.type_oid, column.typmod)
                            .unwrap_or(PgType::Unknown { name: column.name.clone() });
                        ColumnBuilder::new(&pg_type, 16)
                    })
                    .collect();
                relations.insert(relation.oid, builders);
            }
            Ok(Change::Insert { relation, new }) => {
                if let Some(builders) = relations.get_mut(&relation) {
                    append(builders, &new);
                }
            }
            Ok(Change::Update { relation, old, new }) => {
                if let Some(builders) = relations.get_mut(&relation) {
                    if let Some(old) = old {
                        append(builders, &old);
                    }
                    append(builders, &new);
                }
            }
            Ok(Change::Delete { relation, old }) => {
                if let Some(builders) = relations.get_mut(&relation) {
                    append(builders, &old);
                }
            }
            Ok(change) => {
                let _ = change.to_string();
            }
            Err(error) => {
                let _ = error.to_string();
            }
        }
    }
    for builders in relations.values_mut() {
        for builder in builders {
            let _ = builder.finish();
        }
    }
});
