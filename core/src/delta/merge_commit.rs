//! The Delta commit of a merge: the files it replaced and added and the batch's cursor (in the commit
//! properties), in one transaction. A merge that changed no file still commits, so the cursor moves on.

use deltalake::datafusion::common::Column;
use deltalake::datafusion::prelude::Expr;
use deltalake::delta_datafusion::expr::fmt_expr_to_sql;
use deltalake::kernel::Action;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::DeltaOperation;
use deltalake::{DeltaTable, DeltaTableError};

use super::key_ranges::key_range_predicate;
use deltalake::arrow::array::ArrayRef;

/// Commits `actions` on top of the table's loaded version. `matched_keys` (one array per key column, `None`
/// when every row was concerned) tell the conflict checker which key ranges were read: a concurrent commit
/// that removed a file holding them fails this one rather than losing a change.
pub(crate) async fn commit_merge(
    table: &DeltaTable,
    actions: Vec<Action>,
    commit: CommitProperties,
    key_columns: &[String],
    matched_keys: Option<&[ArrayRef]>,
) -> Result<DeltaTable, DeltaTableError> {
    let predicate = match (key_columns, matched_keys) {
        ([key], Some([keys])) => key_range_predicate(keys, Expr::Column(Column::new_unqualified(key)))
            .map(|predicate| fmt_expr_to_sql(&predicate))
            .transpose()?,
        _ => None,
    };
    let merge_predicate = key_columns.iter().map(|key| format!("target.{key} = source.{key}")).collect::<Vec<_>>();
    let operation = DeltaOperation::Merge {
        predicate,
        merge_predicate: Some(merge_predicate.join(" AND ")),
        matched_predicates: Vec::new(),
        not_matched_predicates: Vec::new(),
        not_matched_by_source_predicates: Vec::new(),
    };
    let state = table.snapshot()?;
    let finalized =
        CommitBuilder::from(commit).with_actions(actions).build(Some(state), table.log_store(), operation).await?;
    let mut committed = table.clone();
    committed.state = Some(finalized.snapshot());
    Ok(committed)
}
