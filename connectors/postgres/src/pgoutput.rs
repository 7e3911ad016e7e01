//! Decodes the pgoutput messages (protocol version 1) that carry row changes: Relation, Type, Origin,
//! Insert, Update, Delete and Truncate. Begin, Commit and logical messages are decoded by the transport.
//!
//! Tuples are borrowed from the message: a value is a slice of the received buffer, decoded straight into
//! Arrow by the column builders, never copied on the way.

use std::fmt;

/// A malformed pgoutput message.
#[derive(Debug, thiserror::Error)]
#[error("malformed pgoutput {message} message: {reason}")]
pub struct ProtocolError {
    pub message: &'static str,
    pub reason: String,
}

/// One column of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TupleValue<'a> {
    Null,
    /// A TOASTed value the update did not change: the server did not send it.
    UnchangedToast,
    Text(&'a [u8]),
    Binary(&'a [u8]),
}

impl<'a> TupleValue<'a> {
    /// The value's bytes in the binary send format, `None` for NULL. Text values only arrive for types
    /// without a binary send function, which the catalog maps to text too.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self {
            TupleValue::Text(bytes) | TupleValue::Binary(bytes) => Some(bytes),
            TupleValue::Null | TupleValue::UnchangedToast => None,
        }
    }
}

/// A Relation message column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    pub is_key: bool,
    pub name: String,
    pub type_oid: u32,
    pub typmod: i32,
}

/// A Relation message: the shape of a table as the following changes use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub namespace: String,
    pub name: String,
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

/// A decoded change message.
#[derive(Debug, PartialEq, Eq)]
pub enum Change<'a> {
    Relation(Relation),
    Insert {
        relation: u32,
        new: Vec<TupleValue<'a>>,
    },
    Update {
        relation: u32,
        /// The old key (`K`, when the key changed) or whole old row (`O`, REPLICA IDENTITY FULL).
        old: Option<Vec<TupleValue<'a>>>,
        new: Vec<TupleValue<'a>>,
    },
    Delete {
        relation: u32,
        old: Vec<TupleValue<'a>>,
    },
    Truncate {
        relations: Vec<u32>,
    },
    /// Type, Origin and anything else that needs no action.
    Other(u8),
}

impl fmt::Display for Change<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Relation(relation) => write!(f, "relation {}.{}", relation.namespace, relation.name),
            Change::Insert { relation, .. } => write!(f, "insert into {relation}"),
            Change::Update { relation, .. } => write!(f, "update of {relation}"),
            Change::Delete { relation, .. } => write!(f, "delete from {relation}"),
            Change::Truncate { relations } => write!(f, "truncate of {relations:?}"),
            Change::Other(tag) => write!(f, "message {}", char::from(*tag)),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    message: &'static str,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: impl Into<String>) -> ProtocolError {
        ProtocolError { message: self.message, reason: reason.into() }
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], ProtocolError> {
        if self.bytes.len() < count {
            return Err(self.error(format!("needs {count} more bytes, {} left", self.bytes.len())));
        }
        let (head, tail) = self.bytes.split_at(count);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> Result<i16, ProtocolError> {
        let bytes = self.take(2)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn i32(&mut self) -> Result<i32, ProtocolError> {
        let bytes = self.take(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(self.i32()? as u32)
    }

    fn string(&mut self) -> Result<String, ProtocolError> {
        let end = self.bytes.iter().position(|&byte| byte == 0).ok_or_else(|| self.error("unterminated string"))?;
        let text = String::from_utf8_lossy(&self.bytes[..end]).into_owned();
        self.bytes = &self.bytes[end + 1..];
        Ok(text)
    }

    fn tuple(&mut self) -> Result<Vec<TupleValue<'a>>, ProtocolError> {
        let count = self.i16()?;
        let count = usize::try_from(count).map_err(|_| self.error(format!("negative column count {count}")))?;
        let mut values = Vec::with_capacity(count);
        for _ in 0..count {
            values.push(match self.u8()? {
                b'n' => TupleValue::Null,
                b'u' => TupleValue::UnchangedToast,
                kind @ (b't' | b'b') => {
                    let length = self.i32()?;
                    let length =
                        usize::try_from(length).map_err(|_| self.error(format!("negative value length {length}")))?;
                    let bytes = self.take(length)?;
                    if kind == b't' { TupleValue::Text(bytes) } else { TupleValue::Binary(bytes) }
                }
                other => return Err(self.error(format!("unknown tuple value kind {:?}", char::from(other)))),
            });
        }
        Ok(values)
    }
}

/// Decodes one pgoutput message (the payload of an XLogData).
pub fn decode(bytes: &[u8]) -> Result<Change<'_>, ProtocolError> {
    let Some((&tag, rest)) = bytes.split_first() else {
        return Err(ProtocolError { message: "empty", reason: "no message tag".into() });
    };
    let message = match tag {
        b'R' => "Relation",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        other => return Ok(Change::Other(other)),
    };
    let mut reader = Reader { bytes: rest, message };
    Ok(match tag {
        b'R' => {
            let oid = reader.u32()?;
            let namespace = reader.string()?;
            let name = reader.string()?;
            let replica_identity = reader.u8()?;
            let count = reader.i16()?;
            let mut columns = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
            for _ in 0..count {
                let flags = reader.u8()?;
                let name = reader.string()?;
                let type_oid = reader.u32()?;
                let typmod = reader.i32()?;
                columns.push(RelationColumn { is_key: flags & 1 == 1, name, type_oid, typmod });
            }
            // pg_catalog tables replicated from the default schema arrive with an empty namespace.
            let namespace = if namespace.is_empty() { "pg_catalog".to_string() } else { namespace };
            Change::Relation(Relation { oid, namespace, name, replica_identity, columns })
        }
        b'I' => {
            let relation = reader.u32()?;
            match reader.u8()? {
                b'N' => Change::Insert { relation, new: reader.tuple()? },
                other => return Err(reader.error(format!("expected N, found {:?}", char::from(other)))),
            }
        }
        b'U' => {
            let relation = reader.u32()?;
            let mut old = None;
            let mut kind = reader.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(reader.tuple()?);
                kind = reader.u8()?;
            }
            if kind != b'N' {
                return Err(reader.error(format!("expected N, found {:?}", char::from(kind))));
            }
            Change::Update { relation, old, new: reader.tuple()? }
        }
        b'D' => {
            let relation = reader.u32()?;
            match reader.u8()? {
                b'K' | b'O' => Change::Delete { relation, old: reader.tuple()? },
                other => return Err(reader.error(format!("expected K or O, found {:?}", char::from(other)))),
            }
        }
        _ => {
            let count = reader.i32()?;
            let _options = reader.u8()?;
            let mut relations = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1024));
            for _ in 0..count {
                relations.push(reader.u32()?);
            }
            Change::Truncate { relations }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut bytes = (values.len() as i16).to_be_bytes().to_vec();
        for value in values {
            match value {
                None => bytes.push(b'n'),
                Some(data) => {
                    bytes.push(b'b');
                    bytes.extend((data.len() as i32).to_be_bytes());
                    bytes.extend(*data);
                }
            }
        }
        bytes
    }

    #[test]
    fn relation_messages_list_columns_and_key_flags() {
        let mut message = vec![b'R'];
        message.extend(16_384u32.to_be_bytes());
        message.extend(b"public\0orders\0d");
        message.extend(2i16.to_be_bytes());
        message.extend([1u8]);
        message.extend(b"id\0");
        message.extend(20u32.to_be_bytes());
        message.extend((-1i32).to_be_bytes());
        message.extend([0u8]);
        message.extend(b"note\0");
        message.extend(25u32.to_be_bytes());
        message.extend((-1i32).to_be_bytes());
        let Change::Relation(relation) = decode(&message).expect("valid") else { panic!("not a relation") };
        assert_eq!((relation.oid, relation.namespace.as_str(), relation.name.as_str()), (16_384, "public", "orders"));
        assert_eq!(relation.columns.len(), 2);
        assert!(relation.columns[0].is_key && !relation.columns[1].is_key);
        assert_eq!(relation.columns[1].type_oid, 25);
    }

    #[test]
    fn updates_carry_the_old_key_when_it_changed() {
        let mut message = vec![b'U'];
        message.extend(7u32.to_be_bytes());
        message.push(b'K');
        message.extend(tuple(&[Some(&1i64.to_be_bytes()), None]));
        message.push(b'N');
        message.extend(tuple(&[Some(&2i64.to_be_bytes()), Some(b"x")]));
        let Change::Update { relation, old, new } = decode(&message).expect("valid") else { panic!("not an update") };
        assert_eq!(relation, 7);
        assert_eq!(old.expect("old key")[0], TupleValue::Binary(&1i64.to_be_bytes()));
        assert_eq!(new[1], TupleValue::Binary(b"x"));
    }

    #[test]
    fn unchanged_toast_values_are_marked() {
        let mut message = vec![b'U'];
        message.extend(7u32.to_be_bytes());
        message.push(b'N');
        message.extend(1i16.to_be_bytes());
        message.push(b'u');
        let Change::Update { new, .. } = decode(&message).expect("valid") else { panic!("not an update") };
        assert_eq!(new, vec![TupleValue::UnchangedToast]);
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        let mut message = vec![b'I'];
        message.extend(7u32.to_be_bytes());
        message.push(b'N');
        message.extend(1i16.to_be_bytes());
        message.push(b'b');
        message.extend(100i32.to_be_bytes());
        message.extend(b"short");
        let error = decode(&message).expect_err("truncated");
        assert!(error.to_string().contains("Insert"), "{error}");
    }
}
