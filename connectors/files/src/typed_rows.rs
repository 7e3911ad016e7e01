//! Rows of formats whose columns have types of their own (Parquet, Avro; text's one string) as the table's
//! columns.

use std::sync::Arc;

use connector_core::arrow::array::{Array, ArrayRef, RecordBatch, new_null_array};
use connector_core::arrow::compute::cast;
use connector_core::arrow::compute::kernels::cmp::eq;
use connector_core::arrow::datatypes::{Field, Schema};
use connector_core::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::Value;

use crate::rescued_data::{RescuedValues, RowOrigin};

/// Rows of a file with its own types as the table's source columns: each cast to its column's type, missing ones null, and
/// the values of columns the table lacks kept in `_rescued_data` (as text).
pub fn typed_rows_for_table(rows: &RecordBatch, table: &[Field], origin: RowOrigin<'_>) -> Result<RecordBatch, String> {
    let count = rows.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.len());
    let mut rescued = RescuedValues::new(count);
    for field in table {
        let column = match rows.column_by_name(field.name()) {
            None => new_null_array(field.data_type(), count),
            Some(column) if column.data_type() == field.data_type() => column.clone(),
            Some(column) => {
                let converted = cast(column, field.data_type()).map_err(|cause| {
                    format!(
                        "column `{}` of {} is {}, which does not convert to the table's {}: {cause}",
                        field.name(),
                        origin.file_path,
                        column.data_type(),
                        field.data_type()
                    )
                })?;
                let unfit = unfit_rows(column, &converted)?;
                if !unfit.is_empty() {
                    let formatter = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())
                        .map_err(|cause| format!("internal: {cause}"))?;
                    for row in unfit {
                        rescued.keep(row, field.name(), Value::String(formatter.value(row).to_string()));
                    }
                }
                converted
            }
        };
        columns.push(column);
    }
    for (index, field) in rows.schema().fields().iter().enumerate() {
        if table.iter().any(|column| column.name() == field.name()) {
            continue;
        }
        let options = FormatOptions::default().with_null("");
        let formatter = ArrayFormatter::try_new(rows.column(index).as_ref(), &options)
            .map_err(|cause| format!("internal: {cause}"))?;
        for row in (0..count).filter(|&row| rows.column(index).is_valid(row)) {
            rescued.keep(row, field.name(), Value::String(formatter.value(row).to_string()));
        }
    }
    rescued.place_in(&mut columns, table, origin)?;
    RecordBatch::try_new(Arc::new(Schema::new(table.to_vec())), columns).map_err(|cause| format!("internal: {cause}"))
}

/// The rows whose value `converted` does not hold: arrow's cast gives null for a value it cannot convert (a
/// text that is no number, a number past the type's range), and converts numbers to a narrower number type by
/// truncating or rounding (3.7 to an integer column, 1.234 to two decimals), which converting back shows. Other
/// conversions that lose detail are what the table's type means (nanoseconds to Delta's microseconds).
fn unfit_rows(column: &ArrayRef, converted: &ArrayRef) -> Result<Vec<usize>, String> {
    if !(column.data_type().is_numeric() && converted.data_type().is_numeric()) {
        return Ok((0..column.len()).filter(|&row| column.is_valid(row) && converted.is_null(row)).collect());
    }
    let back = cast(converted, column.data_type()).map_err(|cause| format!("internal: {cause}"))?;
    let same = eq(column, &back).map_err(|cause| format!("internal: {cause}"))?;
    Ok((0..column.len()).filter(|&row| column.is_valid(row) && !(same.is_valid(row) && same.value(row))).collect())
}

#[cfg(test)]
mod tests {
    use connector_core::arrow::array::{AsArray, Decimal128Array, Float64Array, Int64Array, StringArray};
    use connector_core::arrow::datatypes::{DataType, Float64Type, Int64Type};

    use super::*;

    fn origin() -> RowOrigin<'static> {
        RowOrigin { file_path: "file:///orders.parquet", first_row: 10, strict: false }
    }

    fn table(data_type: DataType) -> Vec<Field> {
        vec![Field::new("amount", data_type, true), Field::new("_rescued_data", DataType::Utf8, true)]
    }

    fn rows(column: ArrayRef) -> RecordBatch {
        RecordBatch::try_from_iter([("amount", column)]).expect("batch")
    }

    fn rescued(batch: &RecordBatch) -> Vec<Option<String>> {
        batch.column(1).as_string::<i32>().iter().map(|value| value.map(str::to_string)).collect()
    }

    #[test]
    fn a_value_the_cast_cannot_convert_is_rescued_not_nulled() {
        let file = rows(Arc::new(StringArray::from(vec![Some("1.5"), Some("oops"), None])));
        let batch = typed_rows_for_table(&file, &table(DataType::Float64), origin()).expect("rows");
        let amounts: Vec<Option<f64>> = batch.column(0).as_primitive::<Float64Type>().iter().collect();
        assert_eq!(amounts, [Some(1.5), None, None]);
        assert_eq!(
            rescued(&batch),
            [None, Some(r#"{"_file_path":"file:///orders.parquet","amount":"oops"}"#.into()), None]
        );
        let strict = RowOrigin { strict: true, ..origin() };
        let error = typed_rows_for_table(&file, &table(DataType::Float64), strict).expect_err("strict");
        assert!(error.starts_with("row 12 of file:///orders.parquet"), "{error}");
    }

    #[test]
    fn a_number_a_narrower_type_would_truncate_or_round_is_rescued() {
        let file = rows(Arc::new(Float64Array::from(vec![2.0, 3.7, 1e30])));
        let batch = typed_rows_for_table(&file, &table(DataType::Int64), origin()).expect("rows");
        let ids: Vec<Option<i64>> = batch.column(0).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(ids, [Some(2), Some(3), None]);
        let kept: Vec<bool> = rescued(&batch).iter().map(Option::is_some).collect();
        assert_eq!(kept, [false, true, true], "3.7 and 1e30 kept as they were");
        assert!(rescued(&batch)[1].as_deref().is_some_and(|json| json.contains(r#""amount":"3.7""#)));

        let decimals = Decimal128Array::from(vec![1230, 1234]).with_precision_and_scale(10, 3).expect("decimal");
        let batch = typed_rows_for_table(&rows(Arc::new(decimals)), &table(DataType::Decimal128(10, 2)), origin())
            .expect("rows");
        let kept: Vec<bool> = rescued(&batch).iter().map(Option::is_some).collect();
        assert_eq!(kept, [false, true], "1.230 fits two decimals, 1.234 does not");

        let widened =
            typed_rows_for_table(&rows(Arc::new(Int64Array::from(vec![7]))), &table(DataType::Float64), origin())
                .expect("rows");
        assert_eq!(rescued(&widened), [None]);
    }
}
