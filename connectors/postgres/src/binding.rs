//! What a replication slot serves, recorded where the slot's consumer finds it: in a comment on the pipeline's
//! publication, per slot, the pipeline and destination that read the slot and the tables they stream.
//!
//! A slot remembers one position: what its consumer confirmed. Two consumers of one slot (two destinations under
//! one pipeline name, or two pipelines whose names map to the same slot) would each miss what the other
//! confirmed; a table streamed by some syncs and left out of others misses what was confirmed while it was out.
//! The record lets a sync refuse the first two and copy such a table again, before anything is confirmed.

use std::collections::BTreeMap;

use connector_core::error::{Error, Result};
use connector_core::schema::TableId;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;
use tracing::{info, warn};

use crate::catalog::source_error;
use crate::setup::quote_identifier;

/// The format of the record, marking a publication comment as the connector's own.
const RECORD_FORMAT: u32 = 1;

/// Who reads a slot, and for which tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotBinding {
    pub pipeline: String,
    /// The destination's URL (a local path resolved to `file:///…`), without a trailing `/`.
    pub destination: String,
    /// The tables every sync has streamed since this set was recorded: the slot's confirmed position covers
    /// them, and only them.
    pub tables: Vec<TableId>,
}

/// The comment the connector keeps on a publication: one binding per slot (a publication named in a profile
/// may serve several pipelines' slots).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct PublicationRecord {
    connector: u32,
    slots: BTreeMap<String, SlotBinding>,
}

/// What a publication's comment says about a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The publication does not exist yet, or says nothing about the slot: a new pipeline, or one synced by an
    /// earlier version of the connector, which recorded nothing.
    Nothing,
    /// The publication carries a comment that is not the connector's, which is left alone.
    ForeignComment,
    Binding(SlotBinding),
}

impl Recorded {
    /// Whether the record shows `table` out of the stream since the slot's position was last confirmed: its
    /// changes in between were confirmed to the server without reaching its Delta table. Unknown (nothing
    /// recorded) counts as streamed, as before records existed.
    pub fn left_out(&self, table: &TableId) -> bool {
        matches!(self, Recorded::Binding(binding) if !binding.tables.contains(table))
    }
}

/// Reads what `publication` records about `slot`.
pub async fn read(client: &Client, publication: &str, slot: &str) -> Result<Recorded> {
    Ok(match read_record(client, publication).await? {
        Comment::Missing => Recorded::Nothing,
        Comment::Foreign => Recorded::ForeignComment,
        Comment::Ours(mut record) => match record.slots.remove(slot) {
            Some(binding) => Recorded::Binding(binding),
            None => Recorded::Nothing,
        },
    })
}

/// Refuses a sync whose slot is recorded as another pipeline's or as feeding another destination.
pub fn check(recorded: &Recorded, slot: &str, publication: &str, pipeline: &str, destination: &str) -> Result<()> {
    let Recorded::Binding(binding) = recorded else { return Ok(()) };
    if binding.pipeline != pipeline {
        return Err(Error::config(format!(
            "replication slot {slot} belongs to pipeline `{}`, and pipeline `{pipeline}` maps to the same slot name \
             (a `-` in a pipeline name becomes `_`); sharing it, each would miss the changes the other confirms. \
             Rename pipeline `{pipeline}`, or give it a slot and publication of its own (profile keys `slot` and \
             `publication`)",
            binding.pipeline
        )));
    }
    if binding.destination != destination {
        return Err(Error::config(format!(
            "pipeline `{pipeline}` streams replication slot {slot} into {}; a second destination ({destination}) \
             reading the same slot would miss every change the first one confirms. Sync {destination} under \
             another pipeline name (--pipeline NAME, which gets a slot of its own); or, if the tables moved there \
             from {}, clear the record with `COMMENT ON PUBLICATION {} IS NULL` and sync again",
            binding.destination,
            binding.destination,
            quote_identifier(publication)
        )));
    }
    Ok(())
}

/// Records `binding` for `slot` on `publication`, keeping other slots' bindings. Must happen before the slot's
/// position is confirmed for the tables it names. Without the right to comment on the publication (it belongs to
/// another user), or when its comment is not the connector's, the binding is not recorded and the sync goes on
/// unprotected, with a warning.
pub async fn record(client: &Client, publication: &str, slot: &str, binding: &SlotBinding) -> Result<()> {
    let mut record = match read_record(client, publication).await? {
        Comment::Ours(record) => record,
        Comment::Missing => PublicationRecord { connector: RECORD_FORMAT, slots: BTreeMap::new() },
        Comment::Foreign => {
            warn!(
                publication,
                slot,
                "the publication has a comment of its own, so the connector cannot record which destination and \
                 tables the slot serves: a second destination would not be refused, nor a table left out and \
                 added back copied again"
            );
            return Ok(());
        }
    };
    if record.slots.get(slot) == Some(binding) {
        return Ok(());
    }
    record.slots.insert(slot.to_string(), binding.clone());
    let text = serde_json::to_string(&record).map_err(|cause| {
        Error::state(format!("cannot record slot {slot} on publication {publication}")).caused_by(cause)
    })?;
    // COMMENT takes no parameters: the server quotes the identifier and the text.
    let statement: String = client
        .query_one("SELECT format('COMMENT ON PUBLICATION %I IS %L', $1::text, $2::text)", &[&publication, &text])
        .await
        .map_err(|cause| source_error("cannot build a COMMENT statement", cause))?
        .get(0);
    match client.batch_execute(&statement).await {
        Ok(()) => {
            info!(publication, slot, destination = %binding.destination, "recorded the slot's destination and tables");
            Ok(())
        }
        Err(cause) if cause.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            warn!(
                publication,
                slot,
                "the connector's user does not own the publication, so it cannot record which destination and \
                 tables the slot serves: a second destination would not be refused, nor a table left out and added \
                 back copied again"
            );
            Ok(())
        }
        Err(cause) => Err(source_error(format!("cannot record slot {slot} on publication {publication}"), cause)),
    }
}

enum Comment {
    Missing,
    Foreign,
    Ours(PublicationRecord),
}

async fn read_record(client: &Client, publication: &str) -> Result<Comment> {
    let row = client
        .query_opt(
            "SELECT obj_description(oid, 'pg_publication') FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|cause| source_error(format!("cannot read publication {publication}"), cause))?;
    let Some(text) = row.and_then(|row| row.get::<_, Option<String>>(0)) else { return Ok(Comment::Missing) };
    Ok(match serde_json::from_str::<PublicationRecord>(&text) {
        Ok(record) if record.connector == RECORD_FORMAT => Comment::Ours(record),
        _ => Comment::Foreign,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(pipeline: &str, destination: &str) -> Recorded {
        Recorded::Binding(SlotBinding {
            pipeline: pipeline.into(),
            destination: destination.into(),
            tables: vec![TableId::new("public", "orders")],
        })
    }

    #[test]
    fn another_pipeline_or_destination_is_refused_with_the_fix() {
        let recorded = binding("a-b", "file:///lake");
        assert!(check(&recorded, "connector_a_b", "connector_a_b", "a-b", "file:///lake").is_ok());
        let other_pipeline = check(&recorded, "connector_a_b", "connector_a_b", "a_b", "file:///lake")
            .expect_err("another pipeline")
            .report();
        assert!(
            other_pipeline.contains("`a-b`") && other_pipeline.contains("Rename pipeline `a_b`"),
            "{other_pipeline}"
        );
        let other_destination = check(&recorded, "connector_a_b", "connector_a_b", "a-b", "s3://bucket/lake")
            .expect_err("another destination")
            .report();
        assert!(other_destination.contains("file:///lake") && other_destination.contains("another pipeline name"));
        assert!(check(&Recorded::Nothing, "s", "p", "a_b", "s3://x").is_ok());
        assert!(check(&Recorded::ForeignComment, "s", "p", "a_b", "s3://x").is_ok());
    }

    #[test]
    fn only_tables_missing_from_a_record_were_left_out() {
        let recorded = binding("p", "file:///lake");
        assert!(!recorded.left_out(&TableId::new("public", "orders")));
        assert!(recorded.left_out(&TableId::new("public", "items")));
        assert!(!Recorded::Nothing.left_out(&TableId::new("public", "items")));
    }
}
