//! Avro writer schemas from a Confluent Schema Registry, by the id each message carries, fetched once each.
//!
//! A message in the registry's wire format is a zero byte, the schema's id (4 bytes, big-endian) and the value
//! in Avro's binary encoding. Ids are never reused for another schema (the registry's promise), so a schema
//! fetched once is kept for the life of the sync.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::Schema;
use connector_core::error::{Error, ErrorKind, Result, Retry};
use serde::Deserialize;

/// How long a registry request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A message value's schema id, and its Avro bytes; `None` when the value is not in the wire format.
pub fn wire_format(value: &[u8]) -> Option<(u32, &[u8])> {
    match value {
        [0, a, b, c, d, rest @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        _ => None,
    }
}

/// The registry and the schemas fetched from it so far.
#[derive(Debug)]
pub struct SchemaRegistry {
    url: url::Url,
    client: reqwest::Client,
    schemas: Mutex<HashMap<u32, Arc<Schema>>>,
}

#[derive(Deserialize)]
struct SchemaById {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

impl SchemaRegistry {
    pub fn new(url: &str) -> Result<Self> {
        let mut url = url::Url::parse(url).map_err(|cause| {
            Error::config(format!("schema_registry = \"{url}\" is not a URL (write http://registry:8081)"))
                .caused_by(cause)
        })?;
        // Paths are joined below the registry's own path.
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|cause| Error::config("cannot build the schema registry's HTTP client").caused_by(cause))?;
        Ok(SchemaRegistry { url, client, schemas: Mutex::new(HashMap::new()) })
    }

    /// The schemas of `ids`, fetching those not fetched before.
    pub async fn schemas(&self, ids: impl IntoIterator<Item = u32>) -> Result<HashMap<u32, Arc<Schema>>> {
        let mut found = HashMap::new();
        for id in ids {
            if found.contains_key(&id) {
                continue;
            }
            let known =
                self.schemas.lock().map_err(|_| Error::state("internal: schema cache poisoned"))?.get(&id).cloned();
            let schema = match known {
                Some(schema) => schema,
                None => {
                    let schema = Arc::new(self.fetch(id).await?);
                    self.schemas
                        .lock()
                        .map_err(|_| Error::state("internal: schema cache poisoned"))?
                        .insert(id, schema.clone());
                    schema
                }
            };
            found.insert(id, schema);
        }
        Ok(found)
    }

    async fn fetch(&self, id: u32) -> Result<Schema> {
        let url = self
            .url
            .join(&format!("schemas/ids/{id}"))
            .map_err(|cause| Error::state(format!("internal: schema URL: {cause}")))?;
        let unreachable = |cause: reqwest::Error| {
            Error::new(
                ErrorKind::Source,
                Retry::WithBackoff,
                format!("kafka: cannot fetch schema {id} from the schema registry at {}: {cause}", self.url),
            )
        };
        let response = self.client.get(url).send().await.map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let retry = if status.is_server_error() { Retry::WithBackoff } else { Retry::No };
            return Err(Error::new(
                ErrorKind::Source,
                retry,
                format!(
                    "kafka: the schema registry at {} answers {status} for schema {id}: {}; check --schema-registry \
                     (the registry the producers use)",
                    self.url,
                    body.trim()
                ),
            ));
        }
        let found: SchemaById = response.json().await.map_err(unreachable)?;
        if let Some(other) = found.schema_type.filter(|kind| kind != "AVRO") {
            return Err(Error::config(format!(
                "kafka: schema {id} is a {other} schema; --format avro reads Avro schemas only"
            )));
        }
        Schema::parse_str(&found.schema).map_err(|cause| {
            Error::config(format!("kafka: schema {id} from the schema registry is not a valid Avro schema: {cause}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_is_a_zero_byte_a_big_endian_id_and_the_value() {
        assert_eq!(wire_format(&[0, 0, 0, 1, 2, 9, 8]), Some((258, &[9u8, 8][..])));
        assert_eq!(wire_format(&[0, 0, 0, 0, 7]), Some((7, &[][..])));
        assert_eq!(wire_format(&[1, 0, 0, 0, 7, 1]), None, "another magic byte");
        assert_eq!(wire_format(&[0, 0, 0]), None, "too short");
    }
}
