//! Schema evolution: reconciles a table's incoming source columns with its Delta schema.
//!
//! Added columns are added; dropped columns stay and are filled with null; widened types are widened by
//! rewriting the table once; anything else stops the table with an actionable error.

use deltalake::arrow::datatypes::{DataType as ArrowType, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::{DataType, PrimitiveType, StructField, StructType};

use deltalake::arrow::datatypes::Field;
use deltalake::datafusion::prelude::{SessionContext, cast, col, lit};
use deltalake::datafusion::scalar::ScalarValue;
use deltalake::kernel::engine::arrow_conversion::TryIntoArrow;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use deltalake::protocol::SaveMode;
use tracing::{info, warn};

use super::commit_state;
use super::table_writer::DeltaTableWriter;
use crate::cursor::TableCursor;
use crate::error::{Error, ErrorKind, Result, Retry};
use crate::event_log::{Event, EventKind};
use crate::metadata_column::filled_by_connector;
use crate::schema::{EarlierRows, TableId, TableSchema};

/// What must change in the Delta schema before rows of the incoming shape can be written.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct EvolutionPlan {
    pub added: Vec<StructField>,
    /// Existing columns whose type must widen, with the wider type.
    pub widened: Vec<StructField>,
}

impl EvolutionPlan {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.widened.is_empty()
    }

    /// "added note (string), widened id (bigint)": what the event log says of the change.
    pub fn describe(&self) -> String {
        let list = |fields: &[StructField]| {
            fields
                .iter()
                .map(|field| format!("{} ({})", field.name(), field.data_type()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (self.added.is_empty(), self.widened.is_empty()) {
            (false, true) => format!("added {}", list(&self.added)),
            (true, false) => format!("widened {}", list(&self.widened)),
            _ => format!("added {}; widened {}", list(&self.added), list(&self.widened)),
        }
    }
}

/// Compares the Delta schema with the incoming columns; errors name the column, both types and the fix.
pub(crate) fn plan_evolution(
    table: &TableId,
    pipeline: &str,
    delta: &StructType,
    incoming: &SchemaRef,
) -> Result<EvolutionPlan> {
    let mut plan = EvolutionPlan::default();
    for field in incoming.fields() {
        let incoming_type = delta_type_of(table, field.name(), field.data_type())?;
        match delta.field(field.name()) {
            None => plan.added.push(StructField::new(field.name(), incoming_type, true)),
            Some(existing) if *existing.data_type() == incoming_type => {}
            Some(existing) if widens(&incoming_type, existing.data_type()) => {}
            Some(existing) if widens(existing.data_type(), &incoming_type) => {
                plan.widened.push(StructField::new(field.name(), incoming_type, true));
            }
            Some(existing) => {
                return Err(Error::schema(
                    table,
                    format!(
                        "column `{}` of {table} changed type from {} to {}, which Delta cannot hold without \
                         rewriting its values; stop the pipeline and resync the table \
                         (connector resync --pipeline {pipeline} --table {table})",
                        field.name(),
                        existing.data_type(),
                        incoming_type
                    ),
                ));
            }
        }
    }
    Ok(plan)
}

/// The Delta type of an Arrow column, or an error naming the column when Delta has no such type.
pub(crate) fn delta_type_of(table: &TableId, column: &str, data_type: &ArrowType) -> Result<DataType> {
    data_type.try_into_kernel().map_err(|cause| {
        Error::schema(
            table,
            format!("column `{column}` of {table} has Arrow type {data_type}, which Delta cannot store"),
        )
        .caused_by(cause)
    })
}

/// Whether every value of `narrow` is exactly representable in `wide` (the Delta type-widening rules).
pub(crate) fn widens(narrow: &DataType, wide: &DataType) -> bool {
    use PrimitiveType::{Byte, Date, Decimal, Double, Float, Integer, Long, Short, TimestampNtz};
    let (DataType::Primitive(narrow), DataType::Primitive(wide)) = (narrow, wide) else {
        return false;
    };
    let rank = |integer: &PrimitiveType| match integer {
        Byte => Some(1),
        Short => Some(2),
        Integer => Some(3),
        Long => Some(4),
        _ => None,
    };
    match (narrow, wide) {
        (a, b) if rank(a).is_some() && rank(b).is_some() => rank(a) < rank(b),
        (Byte | Short | Integer, Double) | (Float, Double) | (Date, TimestampNtz) => true,
        (Decimal(from), Decimal(to)) => {
            to.scale() >= from.scale()
                && i16::from(to.precision()) - i16::from(to.scale())
                    >= i16::from(from.precision()) - i16::from(from.scale())
                && (to.precision(), to.scale()) != (from.precision(), from.scale())
        }
        (Byte | Short | Integer | Long, Decimal(to)) => {
            let digits = match narrow {
                Byte => 3,
                Short => 5,
                Integer => 10,
                _ => 20,
            };
            i16::from(to.precision()) - i16::from(to.scale()) >= digits
        }
        _ => false,
    }
}

/// Whether a column of Arrow type `narrow` may become `wide` by [`widens`]' rules: what a table's rewrite
/// (`DeltaTableWriter::evolve`) widens, every value kept exactly. False for types Delta cannot store.
pub fn widens_exactly(narrow: &ArrowType, wide: &ArrowType) -> bool {
    let kernel = |data_type: &ArrowType| -> Option<DataType> { data_type.try_into_kernel().ok() };
    kernel(narrow).zip(kernel(wide)).is_some_and(|(narrow, wide)| widens(&narrow, &wide))
}

/// Source columns of the Delta schema (metadata columns the connector fills excluded, those a source fills kept),
/// in Delta order.
pub(crate) fn source_fields(delta: &StructType) -> impl Iterator<Item = &StructField> {
    delta.fields().filter(|field| !filled_by_connector(field.name()))
}

impl DeltaTableWriter {
    /// Brings the Delta schema in line with `schema`: adds new columns, widens widened ones (rewriting the
    /// table once), keeps dropped ones. A column added to the source after rows the table holds gets those rows'
    /// value in the same commit ([`EarlierRows`]). Incompatible changes stop the table with an actionable error.
    pub async fn evolve(&mut self, schema: &TableSchema) -> Result<()> {
        let delta_schema = self.delta_schema()?;
        let plan = plan_evolution(&self.table_id, self.pipeline(), &delta_schema, &schema.arrow_schema())?;
        if plan.is_empty() {
            return Ok(());
        }
        let described = plan.describe();
        let evolved = self.evolve_by(&plan, schema).await;
        if evolved.is_ok() {
            let event = Event::new(self.pipeline(), EventKind::SchemaChange).table(&self.table_id).message(described);
            self.events.record(event);
        }
        evolved
    }

    async fn evolve_by(&mut self, plan: &EvolutionPlan, schema: &TableSchema) -> Result<()> {
        let mut filled = Vec::new();
        for field in &plan.added {
            let earlier_rows = schema
                .column_index(field.name())
                .map(|index| &schema.columns[index].earlier_rows)
                .unwrap_or(&EarlierRows::Null);
            match earlier_rows {
                EarlierRows::Null => {}
                EarlierRows::Value(value) => filled.push((field.name().to_string(), value.clone())),
                EarlierRows::Unknown(_) if !self.holds_rows()? => {}
                EarlierRows::Unknown(reason) => return Err(self.copy_again(field.name(), reason).await),
            }
        }
        if plan.widened.is_empty() && filled.is_empty() {
            info!(table = %self.table_id, columns = ?plan.added.iter().map(|f| f.name()).collect::<Vec<_>>(), "adding columns");
            self.table = self
                .table
                .clone()
                .add_columns()
                .with_fields(plan.added.clone())
                .await
                .map_err(|cause| self.destination_error("cannot add columns", cause))?;
            return Ok(());
        }
        self.rewrite(plan, &filled).await
    }

    /// A column was added after rows the table holds and only the source holds what those rows hold in it
    /// (`reason`): the rows are read back from the source. The table is emptied and marked for a new copy from
    /// its cursor, which the next sync makes (in chunks, by key, where the key allows, while the other tables
    /// stream); this sync stops, so that no change lands in the emptied table before its copy. Returns the
    /// error that stops it, retried at once by `connector run` and `--continuous`.
    async fn copy_again(&mut self, column: &str, reason: &str) -> Error {
        let Some(position) = self.cursor().map(|cursor| cursor.position.clone()) else {
            return Error::state(format!("internal: {} holds rows but no cursor", self.table_id));
        };
        if let Err(error) = self.restart_snapshot(TableCursor::restarting(position)).await {
            return error;
        }
        warn!(table = %self.table_id, column, reason, "a column's earlier values are only in the source: copying the table again");
        Error::new(
            ErrorKind::Schema,
            Retry::WithBackoff,
            format!(
                "column `{column}` was added to {} after rows the Delta table holds, and {reason}, which the \
                 source's log does not show: the table was emptied and the next sync copies it again from the \
                 source (connector run retries within seconds; after connector sync, run it again)",
                self.table_id
            ),
        )
        .for_table(&self.table_id)
    }

    /// Whether the table holds any data file (rows the source's log may not describe).
    fn holds_rows(&self) -> Result<bool> {
        let state = self.table.snapshot().map_err(|cause| self.destination_error("cannot read the table", cause))?;
        Ok(state.log_data().num_files() > 0)
    }

    /// Rewrites the table in one commit (Delta readers see old or new, never both) with wider column types and
    /// added columns, those in `filled` holding the given value in every row.
    async fn rewrite(&mut self, plan: &EvolutionPlan, filled: &[(String, ScalarValue)]) -> Result<()> {
        info!(
            table = %self.table_id,
            widened = ?plan.widened.iter().map(|f| f.name()).collect::<Vec<_>>(),
            added = ?plan.added.iter().map(|f| f.name()).collect::<Vec<_>>(),
            "rewriting the table for its new columns"
        );
        let context = SessionContext::new();
        let provider =
            self.table.table_provider().await.map_err(|cause| {
                Error::state(format!("cannot read {} to rewrite it", self.table_id)).caused_by(cause)
            })?;
        let delta_schema = self.delta_schema()?;
        let arrow_type = |field: &StructField| -> Result<ArrowType> {
            let arrow: Field = field.try_into_arrow().map_err(|cause| {
                Error::schema(&self.table_id, format!("column `{}` has no Arrow type", field.name())).caused_by(cause)
            })?;
            Ok(arrow.data_type().clone())
        };
        let mut projection = Vec::new();
        for field in delta_schema.fields() {
            let target = plan.widened.iter().find(|wide| wide.name() == field.name()).unwrap_or(field);
            projection.push(cast(col(quoted_column(field.name())), arrow_type(target)?).alias(field.name()));
        }
        for field in &plan.added {
            let value = filled
                .iter()
                .find(|(name, _)| name == field.name())
                .map_or(ScalarValue::Null, |(_, value)| value.clone());
            projection.push(cast(lit(value), arrow_type(field)?).alias(field.name()));
        }
        let plan = context
            .read_table(provider)
            .and_then(|frame| frame.select(projection))
            .map_err(|cause| Error::state(format!("cannot plan the rewrite of {}", self.table_id)).caused_by(cause))?
            .into_unoptimized_plan();
        let properties = match &self.committed {
            // Keep the cursor on top of the log so it is found without walking far back.
            Some(state) => commit_state::commit_properties(&self.app_id, state.txn_version, &state.cursor)?,
            None => CommitProperties::default(),
        };
        self.table = self
            .table
            .clone()
            .write(vec![])
            .with_input_plan(plan)
            .with_save_mode(SaveMode::Overwrite)
            .with_schema_mode(SchemaMode::Overwrite)
            .with_commit_properties(properties)
            .await
            .map_err(|cause| self.destination_error("cannot rewrite the table with its new columns", cause))?;
        Ok(())
    }
}

/// A column name as a DataFusion expression reads it: quoted, so case and punctuation are kept.
fn quoted_column(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::datatypes::{Field, Schema};
    use deltalake::kernel::DecimalType;

    use super::*;

    fn delta_schema(fields: Vec<StructField>) -> StructType {
        StructType::try_new(fields).expect("valid schema")
    }

    fn incoming(fields: Vec<Field>) -> SchemaRef {
        Arc::new(Schema::new(fields))
    }

    #[test]
    fn added_and_widened_columns_are_planned() {
        let table = TableId::new("public", "t");
        let delta = delta_schema(vec![
            StructField::new("id", DataType::INTEGER, true),
            StructField::new("gone", DataType::STRING, true),
        ]);
        let plan = plan_evolution(
            &table,
            "shop",
            &delta,
            &incoming(vec![Field::new("id", ArrowType::Int64, true), Field::new("new", ArrowType::Utf8, true)]),
        )
        .expect("compatible");
        assert_eq!(plan.added, vec![StructField::new("new", DataType::STRING, true)]);
        assert_eq!(plan.widened, vec![StructField::new("id", DataType::LONG, true)]);
    }

    #[test]
    fn narrowing_is_not_a_change_but_incompatible_types_stop() {
        let table = TableId::new("public", "t");
        let delta = delta_schema(vec![StructField::new("id", DataType::LONG, true)]);
        let plan = plan_evolution(&table, "shop", &delta, &incoming(vec![Field::new("id", ArrowType::Int16, true)]))
            .expect("narrower fits");
        assert!(plan.is_empty());
        let error = plan_evolution(&table, "shop", &delta, &incoming(vec![Field::new("id", ArrowType::Utf8, true)]))
            .expect_err("long to string is not widening");
        let text = error.to_string();
        assert!(text.contains("`id`") && text.contains("resync"), "{text}");
    }

    #[test]
    fn decimal_widening_keeps_integer_digits_and_scale() {
        let decimal = |p, s| DataType::Primitive(PrimitiveType::Decimal(DecimalType::try_new(p, s).expect("valid")));
        assert!(widens(&decimal(10, 2), &decimal(12, 2)));
        assert!(widens(&decimal(10, 2), &decimal(12, 4)));
        assert!(!widens(&decimal(10, 2), &decimal(10, 4)));
        assert!(widens(&DataType::INTEGER, &decimal(12, 2)));
        assert!(!widens(&DataType::LONG, &decimal(12, 2)));
    }
}
