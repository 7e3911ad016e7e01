//! Values in PostgreSQL's binary send format for the codec's tests, and the round trip through a
//! [`ColumnBuilder`] that most of them check.

use connector_core::arrow::array::{Array, ArrayRef, AsArray};
use connector_core::change_buffer::ColumnRows;

use super::{ColumnBuilder, DecodeError};
use crate::schema::PgType;

pub(super) fn decode(pg_type: &PgType, values: &[Option<&[u8]>]) -> ArrayRef {
    let mut builder = ColumnBuilder::new(pg_type, 4);
    for value in values {
        builder.append(*value).expect("decodes");
    }
    assert_eq!(builder.len(), values.len());
    let array = builder.finish();
    assert_eq!(array.data_type(), &pg_type.arrow_type());
    assert_eq!(array.len(), values.len());
    assert!(builder.is_empty());
    array
}

pub(super) fn texts(pg_type: &PgType, values: &[&[u8]]) -> Vec<String> {
    let values: Vec<Option<&[u8]>> = values.iter().map(|v| Some(*v)).collect();
    let array = decode(pg_type, &values);
    array.as_string::<i32>().iter().map(|v| v.expect("not null").to_string()).collect()
}

pub(super) fn text(pg_type: &PgType, value: &[u8]) -> String {
    texts(pg_type, &[value]).remove(0)
}

pub(super) fn fails(pg_type: &PgType, value: &[u8]) -> DecodeError {
    let mut builder = ColumnBuilder::new(pg_type, 1);
    let error = builder.append(Some(value)).expect_err("must not decode");
    assert_eq!(builder.len(), 0, "a failed append leaves nothing behind");
    error
}

pub(super) fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[i16]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend((digits.len() as i16).to_be_bytes());
    out.extend(weight.to_be_bytes());
    out.extend(sign.to_be_bytes());
    out.extend(dscale.to_be_bytes());
    digits.iter().for_each(|d| out.extend(d.to_be_bytes()));
    out
}

pub(super) fn array(dims: &[i32], element_oid: u32, elements: &[Option<Vec<u8>>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend((dims.len() as i32).to_be_bytes());
    out.extend(i32::from(elements.iter().any(Option::is_none)).to_be_bytes());
    out.extend(element_oid.to_be_bytes());
    for len in dims {
        out.extend(len.to_be_bytes());
        out.extend(1i32.to_be_bytes());
    }
    for element in elements {
        push_len_value(&mut out, element.as_deref());
    }
    out
}

pub(super) fn push_len_value(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(bytes) => {
            out.extend((bytes.len() as i32).to_be_bytes());
            out.extend(bytes);
        }
        None => out.extend((-1i32).to_be_bytes()),
    }
}

pub(super) fn record(fields: &[(u32, Option<Vec<u8>>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend((fields.len() as i32).to_be_bytes());
    for (oid, value) in fields {
        out.extend(oid.to_be_bytes());
        push_len_value(&mut out, value.as_deref());
    }
    out
}

pub(super) fn range(flags: u8, lower: Option<Vec<u8>>, upper: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = vec![flags];
    for bound in [lower, upper].into_iter().flatten() {
        push_len_value(&mut out, Some(&bound));
    }
    out
}

pub(super) fn i4(v: i32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

pub(super) fn int_list(array: &ArrayRef) -> Vec<Option<Vec<Option<i32>>>> {
    array
        .as_list::<i32>()
        .iter()
        .map(|row| {
            row.map(|values| values.as_primitive::<connector_core::arrow::datatypes::Int32Type>().iter().collect())
        })
        .collect()
}
