//! The columns of an Avro file, from its writer schema: each Avro type as the Arrow type Delta stores it, and the
//! plan its values are built into arrays by ([`crate::avro_rows`]).

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::schema::{Name, ResolvedSchema, UnionSchema};
use connector_core::arrow::datatypes::{DataType, Field, Fields, TimeUnit};

/// Delta's widest decimal: wider Avro decimals are kept as text.
const MAX_DECIMAL_PRECISION: usize = 38;

/// The column a top-level Avro value that is not a record lands in (Spark's name for it).
pub const VALUE_COLUMN: &str = "value";

/// How an Avro value becomes an Arrow value.
#[derive(Debug, Clone)]
pub enum AvroColumn {
    /// A value of this type, taken from the Avro value's own kind (int, timestamp-millis, decimal, …).
    Scalar(DataType),
    /// A decimal wider than Delta's, as text at its scale.
    DecimalText(usize),
    /// The value as JSON text: unions of several types, and records that hold themselves.
    Json(Box<JsonShape>),
    List(Box<AvroColumn>),
    /// A map's values, under string keys.
    Map(Box<AvroColumn>),
    Struct(Vec<(String, AvroColumn)>),
}

/// What a value written as JSON text needs: its schema (decimals carry their scale only there) and the schema's
/// named types.
#[derive(Debug, Clone)]
pub struct JsonShape {
    pub schema: Schema,
    pub names: Arc<HashMap<Name, Schema>>,
}

/// The name Delta and Parquet give a map's entries, keys and values.
pub const MAP_ENTRIES: &str = "key_value";

impl AvroColumn {
    /// The Arrow type the column is stored as.
    pub fn data_type(&self) -> DataType {
        match self {
            AvroColumn::Scalar(data_type) => data_type.clone(),
            AvroColumn::Json(_) | AvroColumn::DecimalText(_) => DataType::Utf8,
            AvroColumn::List(item) => DataType::List(Arc::new(Field::new("element", item.data_type(), true))),
            AvroColumn::Map(value) => DataType::Map(Arc::new(map_entries(value.data_type())), false),
            AvroColumn::Struct(fields) => DataType::Struct(struct_fields(fields)),
        }
    }
}

/// The entries field of a map whose values are `value_type`.
pub fn map_entries(value_type: DataType) -> Field {
    let entries = Fields::from(vec![Field::new("key", DataType::Utf8, false), Field::new("value", value_type, true)]);
    Field::new(MAP_ENTRIES, DataType::Struct(entries), false)
}

pub fn struct_fields(fields: &[(String, AvroColumn)]) -> Fields {
    fields.iter().map(|(name, column)| Field::new(name, column.data_type(), true)).collect()
}

/// The columns of a file written with `schema`: a record's fields, else one column `value`.
pub fn avro_columns(schema: &Schema) -> Result<Vec<(String, AvroColumn)>, String> {
    let resolved = ResolvedSchema::try_from(schema).map_err(|cause| format!("its schema does not resolve: {cause}"))?;
    let names: HashMap<Name, Schema> =
        resolved.get_names().iter().map(|(name, schema)| (name.clone(), (*schema).clone())).collect();
    let mut planner = Planner { names: Arc::new(names), open_records: Vec::new() };
    match schema {
        Schema::Record(record) => {
            planner.open_records.push(record.name.clone());
            record.fields.iter().map(|field| Ok((field.name.clone(), planner.column(&field.schema)?))).collect()
        }
        other => Ok(vec![(VALUE_COLUMN.to_string(), planner.column(other)?)]),
    }
}

/// The Arrow fields of `columns`, nullable (a later file may lack a value).
pub fn fields_of(columns: &[(String, AvroColumn)]) -> Vec<Field> {
    struct_fields(columns).iter().map(|field| field.as_ref().clone()).collect()
}

struct Planner {
    names: Arc<HashMap<Name, Schema>>,
    /// The records being planned, outermost first: one met again inside itself is kept as JSON.
    open_records: Vec<Name>,
}

impl Planner {
    fn json(&self, schema: &Schema) -> AvroColumn {
        AvroColumn::Json(Box::new(JsonShape { schema: schema.clone(), names: self.names.clone() }))
    }

    fn column(&mut self, schema: &Schema) -> Result<AvroColumn, String> {
        let scalar = |data_type: DataType| Ok(AvroColumn::Scalar(data_type));
        let utc = || Some(Arc::from("UTC"));
        match schema {
            Schema::Ref { name } => match self.names.get(name).cloned() {
                Some(_) if self.open_records.contains(name) => Ok(self.json(schema)),
                Some(named) => self.column(&named),
                None => Err(format!("its schema names a type `{name:?}` it does not define")),
            },
            // A column that is always null: text, as Parquet's null columns are stored.
            Schema::Null => scalar(DataType::Utf8),
            Schema::Boolean => scalar(DataType::Boolean),
            Schema::Int => scalar(DataType::Int32),
            Schema::Long => scalar(DataType::Int64),
            Schema::Float => scalar(DataType::Float32),
            Schema::Double => scalar(DataType::Float64),
            Schema::Bytes | Schema::Fixed(_) => scalar(DataType::Binary),
            // Uuids, enums' symbols, times of day, durations and decimals Delta cannot hold are text.
            Schema::String | Schema::Uuid(_) | Schema::Enum(_) | Schema::BigDecimal => scalar(DataType::Utf8),
            Schema::TimeMillis | Schema::TimeMicros | Schema::Duration(_) => scalar(DataType::Utf8),
            Schema::Decimal(decimal) if decimal.precision <= MAX_DECIMAL_PRECISION => {
                let precision = u8::try_from(decimal.precision).map_err(|_| "internal: decimal precision")?;
                let scale = i8::try_from(decimal.scale).map_err(|_| "a decimal's scale is above its precision")?;
                scalar(DataType::Decimal128(precision, scale))
            }
            Schema::Decimal(decimal) => Ok(AvroColumn::DecimalText(decimal.scale)),
            Schema::Date => scalar(DataType::Date32),
            Schema::TimestampMillis | Schema::TimestampMicros | Schema::TimestampNanos => {
                scalar(DataType::Timestamp(TimeUnit::Microsecond, utc()))
            }
            Schema::LocalTimestampMillis | Schema::LocalTimestampMicros | Schema::LocalTimestampNanos => {
                scalar(DataType::Timestamp(TimeUnit::Microsecond, None))
            }
            Schema::Array(array) => Ok(AvroColumn::List(Box::new(self.column(&array.items)?))),
            Schema::Map(map) => Ok(AvroColumn::Map(Box::new(self.column(&map.types)?))),
            Schema::Union(union) => match nullable_type(union) {
                Some(inner) => self.column(inner),
                None => Ok(self.json(schema)),
            },
            Schema::Record(record) => {
                if self.open_records.contains(&record.name) {
                    return Ok(self.json(schema));
                }
                self.open_records.push(record.name.clone());
                let fields: Result<Vec<_>, String> =
                    record.fields.iter().map(|field| Ok((field.name.clone(), self.column(&field.schema)?))).collect();
                self.open_records.pop();
                Ok(AvroColumn::Struct(fields?))
            }
        }
    }
}

/// The one type of a union of it and null (`["null", T]`, `[T, "null"]`, `[T]`); `None` for other unions.
fn nullable_type(union: &UnionSchema) -> Option<&Schema> {
    let mut types = union.variants().iter().filter(|variant| !matches!(variant, Schema::Null));
    match (types.next(), types.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns_of(schema: &str) -> Vec<(String, DataType)> {
        let schema = Schema::parse_str(schema).expect("a schema");
        avro_columns(&schema).expect("columns").into_iter().map(|(name, column)| (name, column.data_type())).collect()
    }

    #[test]
    fn avro_types_become_the_types_delta_stores() {
        let columns = columns_of(
            r#"{"type": "record", "name": "order", "fields": [
                {"name": "id", "type": "long"},
                {"name": "qty", "type": ["null", "int"]},
                {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
                {"name": "huge", "type": {"type": "bytes", "logicalType": "decimal", "precision": 40, "scale": 0}},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
                {"name": "day", "type": {"type": "int", "logicalType": "date"}},
                {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
                {"name": "state", "type": {"type": "enum", "name": "state", "symbols": ["open", "shut"]}},
                {"name": "either", "type": ["int", "string"]},
                {"name": "tags", "type": {"type": "array", "items": "string"}},
                {"name": "attributes", "type": {"type": "map", "values": "long"}},
                {"name": "next", "type": ["null", "order"]}
            ]}"#,
        );
        let utc = Some(Arc::from("UTC"));
        let expected = [
            ("id", DataType::Int64),
            ("qty", DataType::Int32),
            ("amount", DataType::Decimal128(12, 2)),
            ("huge", DataType::Utf8),
            ("at", DataType::Timestamp(TimeUnit::Microsecond, utc)),
            ("local", DataType::Timestamp(TimeUnit::Microsecond, None)),
            ("day", DataType::Date32),
            ("ref", DataType::Utf8),
            ("state", DataType::Utf8),
            ("either", DataType::Utf8),
            ("tags", DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)))),
            ("attributes", DataType::Map(Arc::new(map_entries(DataType::Int64)), false)),
            ("next", DataType::Utf8),
        ];
        let expected: Vec<(String, DataType)> =
            expected.into_iter().map(|(name, data_type)| (name.to_string(), data_type)).collect();
        assert_eq!(columns, expected, "a record holding itself is JSON text, so is a union of two types");
        assert_eq!(columns_of(r#""long""#), [("value".to_string(), DataType::Int64)]);
    }
}
