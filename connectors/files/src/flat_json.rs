//! JSON lines of flat records decoded straight into the table's typed columns, in one pass over the bytes.
//!
//! Written by hand because arrow's JSON decoder builds a tape of every line, then arrays from the tape, and the
//! decimal, date and timestamp columns went through text a second time: 43% of a JSON load's CPU. Here each
//! value is read where it lies and appended to its column's builder, by the rules [`crate::text_types`] gives
//! text values, so a column reads the same whichever decoder took the chunk.
//!
//! It takes tables whose columns are all scalars (text, integers, doubles, booleans, decimals, dates,
//! timestamps), and any line that is a JSON object: values that do not fit their column, and keys the table
//! does not have, are rescued; a line that is not JSON, or not an object, is rescued whole under
//! `_corrupt_record`. A chunk with anything else (a key twice in one record, a table with nested columns)
//! is left to [`crate::json_rows::JsonRows`]'s general decoder.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use connector_core::arrow::array::{ArrayRef, RecordBatch};
use connector_core::arrow::datatypes::{Field, Schema, SchemaRef};
use serde_json::Value;

use crate::column_builders::{ColumnBuilder, ColumnKind};
use crate::rescued_data::{CORRUPT_RECORD, RescuedValues, RowOrigin};
use crate::text_types::TimeFormats;

/// Decodes chunks of JSON lines into a table of scalar columns.
#[derive(Debug)]
pub struct FlatJsonRows {
    table: SchemaRef,
    columns: Vec<ColumnKind>,
    by_name: HashMap<String, usize>,
    /// Each column's name as a JSON key is written without escapes, quotes included (`None` for a name JSON
    /// would escape): a record's key is matched against the column predicted for it by its bytes alone.
    quoted_names: Vec<Option<Box<[u8]>>>,
    times: TimeFormats,
}

/// A value of a record, as it lies in the line.
#[derive(Debug)]
enum Scalar<'a> {
    Null,
    Bool(bool),
    /// A JSON number's text.
    Number(&'a str),
    Text(Cow<'a, str>),
    /// An object or an array: never a value of a scalar column.
    Nested(Value),
}

/// Where a key of a record goes: a column of the table, or the rescued data.
#[derive(Debug)]
enum Key<'a> {
    Column(usize),
    Unknown(Cow<'a, str>),
}

impl FlatJsonRows {
    /// `None` when a column of `table` is not a scalar this decoder builds.
    pub fn new(table: &[Field], times: &TimeFormats) -> Option<Self> {
        let columns = ColumnKind::of_table(table)?;
        let by_name = table.iter().enumerate().map(|(index, field)| (field.name().clone(), index)).collect();
        let quoted_names = table
            .iter()
            .map(|field| {
                let plain = field.name().bytes().all(|byte| byte >= 0x20 && byte != b'"' && byte != b'\\');
                plain.then(|| format!("\"{}\"", field.name()).into_bytes().into_boxed_slice())
            })
            .collect();
        Some(FlatJsonRows {
            table: Arc::new(Schema::new(table.to_vec())),
            columns,
            by_name,
            quoted_names,
            times: times.clone(),
        })
    }

    /// The rows of `lines` (complete lines; blank ones are not rows) in the table's columns; `None` when the
    /// chunk needs the general decoder. Fails as [`RescuedValues::place_in`] does.
    pub fn decode(&self, lines: &[u8], origin: RowOrigin<'_>) -> Option<Result<RecordBatch, String>> {
        let text = std::str::from_utf8(lines).ok()?;
        let rows = memchr::memchr_iter(b'\n', lines).count() + 1;
        let mut builders = ColumnBuilder::for_columns(&self.columns, rows)?;
        let mut rescued = RescuedValues::new(rows);
        let mut filled_in_row = vec![usize::MAX; self.columns.len()];
        let mut entries: Vec<(Key<'_>, Scalar<'_>)> = Vec::new();
        // The columns of the previous record, in its order: records of a file mostly list their keys alike.
        let mut previous_order: Vec<usize> = Vec::new();
        let mut row = 0;
        for line in text.split('\n') {
            if line.bytes().all(|byte| byte.is_ascii_whitespace()) {
                continue;
            }
            entries.clear();
            if Record::new(line).entries(self, &previous_order, &mut entries).is_none() {
                // Not an object this reader takes: either a line the general decoder reads as one, or one that
                // is no record at all, which it too keeps whole.
                if matches!(serde_json::from_str::<Value>(line), Ok(Value::Object(_))) {
                    return None;
                }
                rescued.keep(row, CORRUPT_RECORD, Value::String(line.to_string()));
                entries.clear();
            }
            previous_order.clear();
            for (key, value) in entries.drain(..) {
                let column = match key {
                    Key::Column(column) => column,
                    Key::Unknown(name) => {
                        rescued.keep(row, &name, value.into_json());
                        continue;
                    }
                };
                if filled_in_row[column] == row {
                    return None;
                }
                filled_in_row[column] = row;
                previous_order.push(column);
                if let Err(unfit) = append(&mut builders[column], &self.columns[column], value, &self.times) {
                    rescued.keep(row, self.table.field(column).name(), unfit);
                }
            }
            for (column, builder) in builders.iter_mut().enumerate() {
                if filled_in_row[column] != row {
                    builder.append_null();
                }
            }
            row += 1;
        }
        rescued.truncate(row);
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(builders.len());
        for builder in builders {
            columns.push(builder.finish()?);
        }
        let table: Vec<Field> = self.table.fields().iter().map(|field| field.as_ref().clone()).collect();
        if let Err(error) = rescued.place_in(&mut columns, &table, origin) {
            return Some(Err(error));
        }
        Some(RecordBatch::try_new(self.table.clone(), columns).map_err(|cause| format!("internal: {cause}")))
    }
}

/// Appends `value` to `column` (of `kind`): a JSON value fits a column of its own kind (a number an integer or
/// double column, a boolean a boolean one), or a column read from text (text, decimals, dates, timestamps);
/// else, or when its text does not read as the column's type, a null is appended and the value handed back to
/// rescue.
fn append(column: &mut ColumnBuilder, kind: &ColumnKind, value: Scalar<'_>, times: &TimeFormats) -> Result<(), Value> {
    let fits = match (kind, &value) {
        (_, Scalar::Null) => {
            column.append_null();
            return Ok(());
        }
        (ColumnKind::Integer { .. } | ColumnKind::Double, Scalar::Number(_))
        | (ColumnKind::Boolean, Scalar::Bool(_)) => true,
        (ColumnKind::Text | ColumnKind::Decimal { .. } | ColumnKind::Date | ColumnKind::Timestamp { .. }, _) => true,
        _ => false,
    };
    let Some(text) = value.literal().filter(|_| fits) else {
        column.append_null();
        return Err(value.into_json());
    };
    if column.append_text(text, times) {
        return Ok(());
    }
    // A value read from text is rescued as its text, as the general decoder rescues it.
    Err(match kind {
        ColumnKind::Decimal { .. } | ColumnKind::Date | ColumnKind::Timestamp { .. } => Value::String(text.to_string()),
        _ => value.into_json(),
    })
}

impl<'a> Scalar<'a> {
    /// The text of a string, number or boolean, as written (a string's characters unescaped); `None` for null,
    /// an object or an array.
    fn literal(&self) -> Option<&str> {
        match self {
            Scalar::Text(text) => Some(text),
            Scalar::Number(number) => Some(number),
            Scalar::Bool(flag) => Some(if *flag { "true" } else { "false" }),
            Scalar::Null | Scalar::Nested(_) => None,
        }
    }

    /// The value as rescued data keeps it.
    fn into_json(self) -> Value {
        match self {
            Scalar::Null => Value::Null,
            Scalar::Bool(flag) => Value::Bool(flag),
            Scalar::Number(number) => {
                serde_json::from_str(number).unwrap_or_else(|_| Value::String(number.to_string()))
            }
            Scalar::Text(text) => Value::String(text.into_owned()),
            Scalar::Nested(value) => value,
        }
    }
}

/// A reader of one line's record.
struct Record<'a> {
    line: &'a str,
    at: usize,
}

impl<'a> Record<'a> {
    fn new(line: &'a str) -> Self {
        Record { line, at: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.line.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// The record's keys and values, in order; `None` when the line is not one JSON object (and only
    /// whitespace after it).
    fn entries(
        mut self,
        rows: &FlatJsonRows,
        previous_order: &[usize],
        entries: &mut Vec<(Key<'a>, Scalar<'a>)>,
    ) -> Option<()> {
        self.skip_whitespace();
        self.expect(b'{')?;
        self.skip_whitespace();
        if self.peek()? == b'}' {
            self.at += 1;
        } else {
            loop {
                // Records of a file mostly list their keys alike: the key is first matched, by its bytes, with
                // the column the previous record had at this place.
                let predicted = previous_order.get(entries.len()).copied();
                let key = match predicted.filter(|&column| self.skip_key(rows.quoted_names[column].as_deref())) {
                    Some(column) => Key::Column(column),
                    None => {
                        let name = self.string()?;
                        match rows.by_name.get(name.as_ref()) {
                            Some(&column) if !matches!(rows.columns[column], ColumnKind::Rescued) => {
                                Key::Column(column)
                            }
                            _ => Key::Unknown(name),
                        }
                    }
                };
                self.skip_whitespace();
                self.expect(b':')?;
                self.skip_whitespace();
                let value = self.value()?;
                entries.push((key, value));
                self.skip_whitespace();
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        self.skip_whitespace();
                    }
                    b'}' => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.skip_whitespace();
        (self.at == self.line.len()).then_some(())
    }

    /// Moves past `quoted` (a key with its quotes, written without escapes) if the record has it here.
    fn skip_key(&mut self, quoted: Option<&[u8]>) -> bool {
        let Some(quoted) = quoted else { return false };
        // Compared byte by byte: keys are short, and a call to `memcmp` per key cost more than the comparison.
        let found = self
            .bytes()
            .get(self.at..self.at + quoted.len())
            .is_some_and(|here| here.iter().zip(quoted).all(|(a, b)| a == b));
        if found {
            self.at += quoted.len();
        }
        found
    }

    fn value(&mut self) -> Option<Scalar<'a>> {
        Some(match self.peek()? {
            b'"' => Scalar::Text(self.string()?),
            b'{' | b'[' => {
                let start = self.at;
                self.skip_nested()?;
                Scalar::Nested(serde_json::from_str(&self.line[start..self.at]).ok()?)
            }
            b't' => self.literal("true", Scalar::Bool(true))?,
            b'f' => self.literal("false", Scalar::Bool(false))?,
            b'n' => self.literal("null", Scalar::Null)?,
            _ => Scalar::Number(self.number()?),
        })
    }

    fn literal(&mut self, word: &str, value: Scalar<'a>) -> Option<Scalar<'a>> {
        self.line[self.at..].starts_with(word).then(|| {
            self.at += word.len();
            value
        })
    }

    /// A string, at its opening quote; borrowed unless it has escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.at;
        self.expect(b'"')?;
        let mut escaped = false;
        loop {
            let found = memchr::memchr2(b'"', b'\\', self.bytes().get(self.at..)?)?;
            self.at += found;
            if self.bytes()[self.at] == b'\\' {
                escaped = true;
                self.at += 2;
                continue;
            }
            self.at += 1;
            break;
        }
        if escaped {
            // serde_json reads the escapes (and refuses raw control characters).
            return serde_json::from_str::<String>(&self.line[start..self.at]).ok().map(Cow::Owned);
        }
        let text = &self.line[start + 1..self.at - 1];
        // JSON strings hold no raw control characters.
        if text.bytes().any(|byte| byte < 0x20) {
            return None;
        }
        Some(Cow::Borrowed(text))
    }

    /// Past an object or array (checked afterwards by serde_json), at its opening bracket.
    fn skip_nested(&mut self) -> Option<()> {
        let mut depth = 0_usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
    }

    /// A number as JSON writes it: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Some(&self.line[start..self.at])
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use connector_core::arrow::array::{Array, AsArray};
    use connector_core::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
    use connector_core::arrow::datatypes::{Date32Type, Decimal128Type, Float64Type, Int8Type, Int64Type};

    use crate::rescued_data::RESCUED_DATA;

    use super::*;

    fn table() -> Vec<Field> {
        vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("amount", DataType::Decimal128(5, 2), true),
            Field::new("day", DataType::Date32, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("small", DataType::Int8, true),
            Field::new(RESCUED_DATA, DataType::Utf8, true),
        ]
    }

    fn origin() -> RowOrigin<'static> {
        RowOrigin { file_path: "f.jsonl", first_row: 0, strict: false }
    }

    fn decode(lines: &str) -> RecordBatch {
        let rows = FlatJsonRows::new(&table(), &TimeFormats::default()).expect("scalar table");
        rows.decode(lines.as_bytes(), origin()).expect("taken").expect("decoded")
    }

    fn rescued(batch: &RecordBatch, row: usize) -> Option<Value> {
        let column = batch.column_by_name(RESCUED_DATA).expect("rescued column").as_string::<i32>();
        column.is_valid(row).then(|| serde_json::from_str(column.value(row)).expect("json"))
    }

    #[test]
    fn values_land_in_their_typed_columns_whatever_the_key_order() {
        let batch = decode(concat!(
            r#"{"id": 1, "name": "a\"b\u00e9", "score": 2.5e1, "ok": true, "amount": 12.5, "day": "2026-12-05", "at": "2026-12-05T10:00:00Z", "small": -128}"#,
            "\n\n",
            r#"{"small":127,"at":"2026-12-05 10:00:00.5+02:00","day":null,"amount":"-0.01","ok":false,"score":-0,"name":42.0,"id":-9223372036854775808}"#,
            "\r\n",
            r#"{ }"#,
        ));
        assert_eq!(batch.num_rows(), 3);
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!((ids.value(0), ids.value(1), ids.is_null(2)), (1, i64::MIN, true));
        let names = batch.column(1).as_string::<i32>();
        assert_eq!((names.value(0), names.value(1)), ("a\"bé", "42.0"), "a number into text keeps its literal");
        let scores = batch.column(2).as_primitive::<Float64Type>();
        assert_eq!((scores.value(0), scores.value(1)), (25.0, 0.0));
        let flags = batch.column(3).as_boolean();
        assert_eq!((flags.value(0), flags.value(1)), (true, false));
        let amounts = batch.column(4).as_primitive::<Decimal128Type>();
        assert_eq!((amounts.value(0), amounts.value(1)), (1250, -1));
        let days = batch.column(5).as_primitive::<Date32Type>();
        assert_eq!((days.value(0), days.is_null(1)), (20792, true));
        let times = batch.column(6).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(times.value(0) - times.value(1), 2 * 3_600_000_000 - 500_000);
        let small = batch.column(7).as_primitive::<Int8Type>();
        assert_eq!((small.value(0), small.value(1)), (-128, 127));
        assert!((0..3).all(|row| rescued(&batch, row).is_none()));
    }

    #[test]
    fn values_that_do_not_fit_and_unknown_keys_are_rescued_not_nulled_or_rounded() {
        let batch = decode(concat!(
            r#"{"id": 1.5, "amount": 1.239, "small": 128, "name": {"first": "a"}, "extra": [1, {"x": null}]}"#,
            "\n",
            r#"{"id": "7", "ok": "yes", "day": "05/12/2026", "score": true, "nothing": null}"#,
        ));
        assert_eq!(
            rescued(&batch, 0),
            Some(serde_json::json!({
                "id": 1.5, "amount": "1.239", "small": 128, "name": {"first": "a"}, "extra": [1, {"x": null}],
                "_file_path": "f.jsonl"
            }))
        );
        assert_eq!(
            rescued(&batch, 1),
            Some(serde_json::json!({
                "id": "7", "ok": "yes", "day": "05/12/2026", "score": true, "nothing": null, "_file_path": "f.jsonl"
            }))
        );
        for column in ["id", "amount", "small", "name", "ok", "day", "score"] {
            assert_eq!(batch.column_by_name(column).expect(column).null_count(), 2, "{column}");
        }
    }

    #[test]
    fn a_key_written_with_escapes_or_beside_a_longer_one_finds_its_column() {
        let batch = decode(concat!(
            r#"{"id": 1, "name": "a"}"#,
            "\n",
            r#"{"\u0069d": 2, "name": "b"}"#,
            "\n",
            r#"{"idx": 3, "id": 4, "name": "c"}"#,
            "\n",
            r#"{"id": 5, "names": "d"}"#,
        ));
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.iter().collect::<Vec<_>>(), [Some(1), Some(2), Some(4), Some(5)]);
        let names = batch.column(1).as_string::<i32>();
        assert_eq!(names.iter().collect::<Vec<_>>(), [Some("a"), Some("b"), Some("c"), None]);
        assert_eq!(rescued(&batch, 2), Some(serde_json::json!({"idx": 3, "_file_path": "f.jsonl"})));
        assert_eq!(rescued(&batch, 3), Some(serde_json::json!({"names": "d", "_file_path": "f.jsonl"})));
    }

    #[test]
    fn lines_that_are_not_objects_are_rescued_whole() {
        let batch = decode("[1, 2]\n{\"id\": 3}\n{\"id\": 4\n{\"id\": 01}\n\"text\"\n{\"id\": 5} x\n");
        assert_eq!(batch.num_rows(), 6);
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!((ids.value(1), ids.null_count()), (3, 5));
        for (row, line) in
            [(0, "[1, 2]"), (2, "{\"id\": 4"), (3, "{\"id\": 01}"), (4, "\"text\""), (5, "{\"id\": 5} x")]
        {
            let expected = serde_json::json!({ CORRUPT_RECORD: line, "_file_path": "f.jsonl" });
            assert_eq!(rescued(&batch, row), Some(expected), "{line}");
        }
    }

    #[test]
    fn strict_mode_names_the_row_and_the_value() {
        let rows = FlatJsonRows::new(&table(), &TimeFormats::default()).expect("scalar table");
        let strict = RowOrigin { file_path: "f.jsonl", first_row: 10, strict: true };
        let error = rows.decode(b"{\"id\": 1}\n{\"id\": 2.5}", strict).expect("taken").expect_err("strict");
        assert!(error.starts_with("row 12 of f.jsonl"), "{error}");
        assert!(error.contains("column `id` (bigint) cannot hold 2.5"), "{error}");
    }

    #[test]
    fn chunks_it_does_not_take_are_left_to_the_general_decoder() {
        let rows = FlatJsonRows::new(&table(), &TimeFormats::default()).expect("scalar table");
        assert!(rows.decode(b"{\"id\": 1, \"id\": 2}", origin()).is_none(), "a key twice");
        assert!(rows.decode(b"{\"id\": 1}\n\xff", origin()).is_none(), "not UTF-8");
        let nested = [Field::new("tags", DataType::new_list(DataType::Utf8, true), true)];
        assert!(FlatJsonRows::new(&nested, &TimeFormats::default()).is_none());
    }
}
