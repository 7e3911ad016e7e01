//! A writer maintaining its own table between commits ([`MaintenanceCadence`](crate::maintenance::MaintenanceCadence)):
//! it is the table's one writer (the pipeline's lease), so the pass meets no commit of its own pipeline, and the
//! table it leaves is the one the next commit builds on. The source goes on being read meanwhile; only this
//! table's next commit waits for the pass.

use tracing::{info, warn};

use super::table_writer::DeltaTableWriter;
use crate::event_log::{Event, EventKind};
use crate::maintenance::maintain_or_reload;

impl DeltaTableWriter {
    /// Runs the pass the last commit calls for, if any. A pass that fails is logged and recorded, never the
    /// commit's failure: the rows are in, and the next pass tries again.
    pub(super) async fn maintain_if_due(&mut self) {
        let Some(version) = self.table.version() else { return };
        let Some(mut policy) = self.maintenance.after_commit(version) else { return };
        policy.target_file_bytes = Some(self.options.target_file_size);
        let event = Event::new(self.pipeline(), EventKind::Maintenance).table(&self.table_id);
        let (table, outcome) = maintain_or_reload(self.table.clone(), &self.table_id, &policy).await;
        self.table = table;
        match outcome {
            Ok(report) => {
                info!(table = %self.table_id, report = %report.describe(), duration_ms = report.duration_ms,
                      "maintained the table");
                let duration = std::time::Duration::from_millis(report.duration_ms);
                self.events.record(event.message(report.describe()).duration(duration));
            }
            Err(error) => {
                warn!(table = %self.table_id, error = %error.report(),
                      "table maintenance failed; the next pass tries again (ingestion goes on)");
                self.events.record(event.error(&error));
            }
        }
        self.known.remember(&self.table_id, &self.table, self.committed.as_ref());
    }
}
