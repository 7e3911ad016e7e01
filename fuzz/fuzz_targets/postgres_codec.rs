//! PostgreSQL's binary send format (`connector_postgres::codec`): one value of a type the input describes,
//! appended to the column builder of that type (to Arrow) and rendered in its text form.
//!
//! Input: a type, then the value's bytes. A type is a tag byte then its parameters:
//! `0` built-in: OID (u32, big-endian), typmod (i32, big-endian); `1` array: dimensions (u8), element type;
//! `2` range: subtype; `3` composite: field count (u8), field types. (numeric(p,s) is OID 1700 with its typmod.)
//! Nesting is cut at depth 4, as the catalog cuts recursive types.
#![no_main]

extern crate connector_fuzz;

use connector_core::change_buffer::ColumnRows;
use connector_postgres::codec::{ColumnBuilder, text_form};
use connector_postgres::schema::PgType;
use libfuzzer_sys::fuzz_target;

fn take<'a>(data: &mut &'a [u8], count: usize) -> Option<&'a [u8]> {
    let (head, tail) = data.split_at_checked(count)?;
    *data = tail;
    Some(head)
}

fn pg_type(data: &mut &[u8], depth: usize) -> Option<PgType> {
    let tag = *take(data, 1)?.first()?;
    if depth > 4 {
        return Some(PgType::Unknown { name: "deep".into() });
    }
    Some(match tag % 4 {
        0 => {
            let oid = u32::from_be_bytes(take(data, 4)?.try_into().ok()?);
            let typmod = i32::from_be_bytes(take(data, 4)?.try_into().ok()?);
            PgType::builtin(oid, typmod).unwrap_or(PgType::Unknown { name: format!("oid {oid}") })
        }
        1 => {
            let dimensions = usize::from(*take(data, 1)?.first()? % 7).max(1);
            PgType::Array { element: Box::new(pg_type(data, depth + 1)?), dimensions }
        }
        2 => PgType::Range(Box::new(pg_type(data, depth + 1)?)),
        _ => {
            let count = *take(data, 1)?.first()? % 8;
            let fields = (0..count)
                .map(|index| Some((format!("f{index}"), pg_type(data, depth + 1)?)))
                .collect::<Option<Vec<_>>>()?;
            PgType::Composite(fields)
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let Some(pg_type) = pg_type(&mut data, 0) else { return };
    let _ = text_form(&pg_type, data);
    let mut builder = ColumnBuilder::new(&pg_type, 4);
    let _ = builder.append(Some(data));
    let _ = builder.append(None);
    let _ = builder.finish();
});
