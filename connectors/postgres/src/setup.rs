//! Checks the server before anything is created, then creates or reuses the publication and the
//! replication slot. Every failed check says exactly what to change.

use std::time::{Duration, Instant};

use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::metrics::metrics;
use connector_core::position::Lsn;
use connector_core::schema::TableId;
use tokio_postgres::Client;
use tracing::{info, warn};

use crate::binding::Recorded;
use crate::catalog::{SourceTable, source_error};

/// How long past the server's `wal_sender_timeout` a sync waits for a slot an earlier connection still holds:
/// the server notices a silent client at the next check after the timeout.
pub const SLOT_RELEASE_MARGIN: Duration = Duration::from_secs(10);
/// How long a sync waits for a held slot when the server never ends silent replication connections
/// (`wal_sender_timeout = 0`): long enough for a connection being closed to go, short enough to say so soon.
pub const SLOT_RELEASE_WAIT_WITHOUT_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a sync waiting for its slot looks again.
const SLOT_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Quotes an identifier for SQL text (`"order ""items"""`).
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn qualified(table: &TableId) -> String {
    format!("{}.{}", quote_identifier(&table.namespace), quote_identifier(&table.name))
}

/// Server settings and the user's privileges that logical replication needs.
pub async fn check_server(client: &Client) -> Result<()> {
    let row = client
        .query_one(
            "SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int, \
             current_setting('max_wal_senders')::int, \
             (SELECT count(*) FROM pg_replication_slots)::int, \
             (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), current_user::text, \
             current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(|cause| source_error("cannot read the server settings", cause))?;
    let wal_level: String = row.get(0);
    let max_slots: i32 = row.get(1);
    let max_senders: i32 = row.get(2);
    let slots_in_use: i32 = row.get(3);
    let can_replicate: Option<bool> = row.get(4);
    let user: String = row.get(5);
    let version: i32 = row.get(6);
    let mut problems = Vec::new();
    if version < 140_000 {
        problems.push(format!(
            "the server runs PostgreSQL {}.{}; binary logical replication needs 14 or later",
            version / 10000,
            version % 10000
        ));
    }
    if wal_level != "logical" {
        problems.push(format!(
            "wal_level is `{wal_level}`; run `ALTER SYSTEM SET wal_level = logical` and restart the server"
        ));
    }
    if max_slots <= slots_in_use {
        problems.push(format!(
            "max_replication_slots is {max_slots} and {slots_in_use} are in use; raise it \
             (`ALTER SYSTEM SET max_replication_slots = {}`) and restart the server",
            slots_in_use + 4
        ));
    }
    if max_senders < 2 {
        problems.push(format!(
            "max_wal_senders is {max_senders}; the connector needs 2 (stream and snapshot): \
             `ALTER SYSTEM SET max_wal_senders = 10` and restart the server"
        ));
    }
    if can_replicate != Some(true) {
        problems.push(format!(
            "user `{user}` may not use replication; run `ALTER ROLE {} WITH REPLICATION` as a superuser \
             (on managed services, grant the provider's replication role, e.g. rds_replication)",
            quote_identifier(&user)
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::config(format!("PostgreSQL is not ready for logical replication: {}", problems.join("; "))))
    }
}

/// A table's privileges and replica identity: updates and deletes must identify their row.
pub async fn check_table(client: &Client, table: &SourceTable) -> Result<()> {
    let id = &table.schema.id;
    let can_select: bool = client
        .query_one("SELECT has_table_privilege($1::oid, 'SELECT')", &[&table.oid])
        .await
        .map_err(|cause| source_error(format!("cannot check privileges on {id}"), cause))?
        .get(0);
    if !can_select {
        return Err(Error::config(format!(
            "the connector's user cannot read {id}; run `GRANT SELECT ON {} TO <user>`",
            qualified(id)
        ))
        .for_table(id));
    }
    let identifies_rows = match table.replica_identity {
        b'f' | b'i' => true,
        b'd' => !table.schema.primary_key.is_empty() || table.partitioned,
        _ => false,
    };
    if !identifies_rows {
        return Err(Error::config(format!(
            "{id} has no primary key and REPLICA IDENTITY {}: once published, PostgreSQL would reject its UPDATEs \
             and DELETEs; run `ALTER TABLE {} REPLICA IDENTITY FULL` (or add a primary key)",
            if table.replica_identity == b'n' { "NOTHING" } else { "DEFAULT" },
            qualified(id)
        ))
        .for_table(id));
    }
    Ok(())
}

/// Creates the publication for `tables`, or adds the ones it lacks. Partitions publish through their root.
pub async fn ensure_publication(client: &Client, publication: &str, tables: &[TableId]) -> Result<()> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&publication])
        .await
        .map_err(|cause| source_error("cannot read publications", cause))?
        .is_some();
    let list = tables.iter().map(qualified).collect::<Vec<_>>().join(", ");
    let statement = if !exists {
        format!(
            "CREATE PUBLICATION {} FOR TABLE {list} WITH (publish_via_partition_root = true)",
            quote_identifier(publication)
        )
    } else {
        let published: Vec<(String, String)> = client
            .query(
                "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1",
                &[&publication],
            )
            .await
            .map_err(|cause| source_error(format!("cannot read publication {publication}"), cause))?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let missing: Vec<String> = tables
            .iter()
            .filter(|table| !published.iter().any(|(schema, name)| *schema == table.namespace && *name == table.name))
            .map(qualified)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        format!("ALTER PUBLICATION {} ADD TABLE {}", quote_identifier(publication), missing.join(", "))
    };
    client.batch_execute(&statement).await.map_err(|cause| {
        let fix = format!("run as the tables' owner or a superuser: `{statement}`");
        let mut error = source_error(format!("cannot set up publication {publication}; {fix}"), cause);
        if error.retry() == connector_core::error::Retry::No {
            error = Error::config(error.report());
        }
        error
    })?;
    info!(publication, tables = %list, "publication ready");
    Ok(())
}

/// Where an existing slot stands.
#[derive(Debug, Clone, Copy)]
pub struct SlotState {
    pub confirmed_flush: Lsn,
    /// The slot did not exist: tables synced through an earlier slot missed the changes in between.
    pub created: bool,
}

/// Creates the pipeline's slot, which [`existing_slot`] found missing.
pub async fn create_slot(client: &Client, slot: &str) -> Result<SlotState> {
    let created = client
        .query_one("SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')", &[&slot])
        .await
        .map_err(|cause| source_error(format!("cannot create replication slot {slot}"), cause))?;
    let lsn = parse_lsn(created.get(0))?;
    info!(slot, lsn = %lsn, "created replication slot");
    Ok(SlotState { confirmed_flush: lsn, created: true })
}

/// Reads the pipeline's slot without changing anything on the server: `None` when there is none, an error when
/// it cannot serve the pipeline (another plugin, another database, its WAL removed: a slot whose WAL was
/// removed cannot resume).
pub async fn existing_slot(
    client: &Client,
    slot: &str,
    pipeline: &str,
    tables: &[TableId],
) -> Result<Option<SlotState>> {
    let row = client
        .query_opt(
            "SELECT plugin::text, confirmed_flush_lsn::text, wal_status, database::text = current_database() \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|cause| source_error("cannot read replication slots", cause))?;
    let Some(row) = row else { return Ok(None) };
    let plugin: Option<String> = row.get(0);
    if plugin.as_deref() != Some("pgoutput") {
        return Err(Error::config(format!(
            "replication slot {slot} exists but is not a pgoutput logical slot; drop it \
             (`SELECT pg_drop_replication_slot('{slot}')`) or name another slot for the pipeline"
        )));
    }
    if row.get::<_, Option<bool>>(3) != Some(true) {
        return Err(Error::config(format!(
            "replication slot {slot} belongs to another database; use another pipeline name"
        )));
    }
    let wal_status: Option<String> = row.get(2);
    if wal_status.as_deref() == Some("lost") {
        return Err(Error::history_lost(
            tables.iter().cloned(),
            format!(
                "replication slot {slot} was invalidated: the server removed WAL it still needed \
             (max_slot_wal_keep_size), so changes were lost; drop the slot and resync every table: \
             `connector drop --pipeline {pipeline}` then sync again"
            ),
        ));
    }
    let confirmed: Option<String> = row.get(1);
    Ok(Some(SlotState { confirmed_flush: parse_lsn(confirmed.as_deref().unwrap_or("0/0"))?, created: false }))
}

/// Waits until no connection holds `slot`. A connection that vanished without closing (a killed pod, a network
/// partition) keeps its slot active on the server until `wal_sender_timeout` ends it, so a restarted pipeline
/// waits that long (and [`SLOT_RELEASE_MARGIN`] more) before it gives up.
pub async fn wait_for_slot(client: &Client, slot: &str, pipeline: &str) -> Result<()> {
    let mut deadline = None;
    loop {
        let row = client
            .query_opt(
                "SELECT active_pid, (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_sender_timeout') \
                 FROM pg_replication_slots WHERE slot_name = $1 AND active",
                &[&slot],
            )
            .await
            .map_err(|cause| source_error("cannot read replication slots", cause))?;
        let Some(row) = row else { return Ok(()) };
        let pid: Option<i32> = row.get(0);
        let timeout_ms: Option<i64> = row.get(1);
        let deadline = *deadline.get_or_insert_with(|| {
            let wait = match timeout_ms {
                Some(ms) if ms > 0 => Duration::from_millis(ms as u64) + SLOT_RELEASE_MARGIN,
                _ => SLOT_RELEASE_WAIT_WITHOUT_TIMEOUT,
            };
            warn!(
                slot,
                pid = ?pid,
                wait_seconds = wait.as_secs(),
                "the replication slot is still held by an earlier connection (a connector that stopped without \
                 closing it, or a lost network path); waiting for the server to release it (wal_sender_timeout)"
            );
            Instant::now() + wait
        });
        if Instant::now() >= deadline {
            let pid = pid.map_or_else(|| "?".to_string(), |pid| pid.to_string());
            return Err(Error::new(
                ErrorKind::Source,
                Retry::WithBackoff,
                format!(
                    "replication slot {slot} is still in use by server process {pid}; stop the other connector of \
                     pipeline `{pipeline}`, or, if none runs, end that connection: `SELECT pg_terminate_backend({pid})`"
                ),
            ));
        }
        tokio::time::sleep(SLOT_POLL_INTERVAL).await;
    }
}

pub fn parse_lsn(text: &str) -> Result<Lsn> {
    text.parse().map_err(Error::state)
}

/// Drops the pipeline's slot and publication (`connector drop`); returns what was removed, one line each.
pub async fn drop_pipeline(
    profile: &connector_core::config::Profile,
    pipeline: &connector_core::config::Pipeline,
) -> Result<Vec<String>> {
    let config = crate::config::PostgresConfig::connection_only(profile, pipeline)?;
    let client = crate::connection::connect(&config).await?;
    // `a-b` and `a_b` name the same slot: only the pipeline recorded on it may drop it.
    if let Recorded::Binding(binding) = crate::binding::read(&client, &config.publication, &config.slot).await?
        && binding.pipeline != config.capture.pipeline
    {
        return Err(Error::config(format!(
            "replication slot {} belongs to pipeline `{}`, not `{}` (a `-` in a pipeline name becomes `_`); \
             to retire `{}`, run `connector drop --pipeline {}`",
            config.slot, binding.pipeline, config.capture.pipeline, binding.pipeline, binding.pipeline
        )));
    }
    let mut removed = Vec::new();
    let slot = client
        .query_opt("SELECT active FROM pg_replication_slots WHERE slot_name = $1", &[&config.slot])
        .await
        .map_err(|cause| source_error("cannot read replication slots", cause))?;
    match slot {
        Some(row) if row.get::<_, bool>(0) => {
            return Err(Error::config(format!(
                "replication slot {} is in use; stop the running connector of pipeline `{}` first",
                config.slot, config.capture.pipeline
            )));
        }
        Some(_) => {
            client
                .execute("SELECT pg_drop_replication_slot($1)", &[&config.slot])
                .await
                .map_err(|cause| source_error(format!("cannot drop replication slot {}", config.slot), cause))?;
            removed.push(format!("dropped replication slot {}", config.slot));
        }
        None => removed.push(format!("no replication slot {}", config.slot)),
    }
    let statement = format!("DROP PUBLICATION IF EXISTS {}", quote_identifier(&config.publication));
    client.batch_execute(&statement).await.map_err(|cause| {
        source_error(format!("cannot drop publication {}; run `{statement}`", config.publication), cause)
    })?;
    removed.push(format!("dropped publication {} (if it existed)", config.publication));
    Ok(removed)
}

/// Where a pipeline's replication slot stands on the server (`connector status`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SlotStatus {
    pub pipeline: String,
    pub slot: String,
    pub exists: bool,
    pub active: bool,
    /// `reserved`, `extended`, `unreserved` or `lost` (pg_replication_slots.wal_status).
    pub wal_status: Option<String>,
    pub confirmed_flush: Option<String>,
    /// WAL the server keeps for the slot (from its restart LSN to the current WAL end).
    pub retained_bytes: Option<i64>,
    /// WAL written since the position the connector last confirmed: how far Delta is behind the server.
    pub lag_bytes: Option<i64>,
}

pub async fn slot_status(
    profile: &connector_core::config::Profile,
    pipeline: &connector_core::config::Pipeline,
) -> Result<SlotStatus> {
    let config = crate::config::PostgresConfig::connection_only(profile, pipeline)?;
    let client = crate::connection::connect(&config).await?;
    read_slot_status(&client, &config).await
}

/// Sets the slot's retained WAL and lag as metrics; a streaming sync's errand, whose failure is only logged.
pub(crate) async fn report_slot_wal(client: &Client, config: &crate::config::PostgresConfig) {
    match read_slot_status(client, config).await {
        Ok(status) => {
            if let (Some(retained), Some(lag)) = (status.retained_bytes, status.lag_bytes) {
                metrics().set_postgres_slot_wal(&status.pipeline, &status.slot, retained, lag);
            }
        }
        Err(error) => {
            warn!(slot = %config.slot, error = %error.report(), "could not read the slot's WAL for the metrics")
        }
    }
}

async fn read_slot_status(client: &Client, config: &crate::config::PostgresConfig) -> Result<SlotStatus> {
    let row = client
        .query_opt(
            "SELECT active, wal_status, confirmed_flush_lsn::text, \
             pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8, \
             pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&config.slot],
        )
        .await
        .map_err(|cause| source_error("cannot read replication slots", cause))?;
    let mut status = SlotStatus {
        pipeline: config.capture.pipeline.clone(),
        slot: config.slot.clone(),
        exists: row.is_some(),
        active: false,
        wal_status: None,
        confirmed_flush: None,
        retained_bytes: None,
        lag_bytes: None,
    };
    if let Some(row) = row {
        status.active = row.get(0);
        status.wal_status = row.get(1);
        status.confirmed_flush = row.get(2);
        status.retained_bytes = row.get(3);
        status.lag_bytes = row.get(4);
    }
    Ok(status)
}
