//! SQL connections to the source (catalog reads, setup, snapshot copies), from the profile's URL.

use connector_core::error::Result;
use tokio_postgres::{Client, NoTls};
use tracing::debug;

use crate::catalog::source_error;
use crate::config::PostgresConfig;

/// Opens a SQL connection whose I/O runs on its own task; it closes when the client is dropped.
pub async fn connect(config: &PostgresConfig) -> Result<Client> {
    let (client, connection) = config
        .connection
        .connect(NoTls)
        .await
        .map_err(|cause| source_error(format!("cannot connect to {}", config.url.redacted()), cause))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            debug!(%error, "source connection closed");
        }
    });
    Ok(client)
}
