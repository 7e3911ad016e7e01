//! A table's identity in the source. Apart from the schema, so that errors can name tables without the
//! schema module (which returns errors) and the error module depending on each other.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A table's identity in the source: `schema.table` for databases, `service.stream` for APIs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    pub namespace: String,
    pub name: String,
}

impl TableId {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        TableId { namespace: namespace.into(), name: name.into() }
    }

    /// Parses `namespace.name`, as users write tables on the command line.
    pub fn parse(text: &str) -> Result<Self, UnqualifiedName> {
        match text.split_once('.') {
            Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains('.') => {
                Ok(TableId::new(namespace, name))
            }
            _ => Err(UnqualifiedName(text.to_string())),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace, self.name)
    }
}

/// A table name given without its namespace (or with too many parts); a configuration error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnqualifiedName(String);

impl fmt::Display for UnqualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a qualified table name: write it as `schema.table` (for example `public.orders`)",
            self.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_parse() {
        assert_eq!(TableId::parse("public.orders").expect("valid"), TableId::new("public", "orders"));
        assert!(TableId::parse("orders").is_err());
        assert!(TableId::parse("a.b.c").is_err());
    }
}
