//! Avro writer schemas from a Confluent Schema Registry, by the id each message carries, fetched once each.
//!
//! A message in the registry's wire format is a zero byte, the schema's id (4 bytes, big-endian) and the value
//! in Avro's binary encoding. Ids are never reused for another schema (the registry's promise), so a schema
//! fetched once is kept for the life of the sync.
//!
//! A registry that asks for credentials (Confluent Cloud's API key and secret, a self-managed registry behind
//! HTTP basic authentication) gets them with every request: from the URL's user info
//! (`https://key:secret@registry`) or the profile's `schema_registry_user` and `schema_registry_password`. The
//! URL kept for messages has no user info, so no error or log line shows the secret.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::Schema;
use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::secret::Secret;
use serde::Deserialize;

use crate::protobuf_messages::ProtobufSchema;

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
    /// Without user info.
    url: url::Url,
    credentials: Option<RegistryCredentials>,
    client: reqwest::Client,
    schemas: Mutex<HashMap<u32, Arc<RegisteredSchema>>>,
}

/// HTTP basic authentication for the registry.
#[derive(Debug, Clone)]
pub struct RegistryCredentials {
    pub user: String,
    pub password: Secret,
}

/// A schema as the registry holds it.
#[derive(Debug)]
pub enum RegisteredSchema {
    Avro {
        schema: Schema,
        /// The schema's JSON, for attributes Avro's parser does not keep (Kafka Connect's `connect.name` beside a
        /// field's type, which names Debezium's logical types).
        json: serde_json::Value,
    },
    Protobuf(ProtobufSchema),
}

impl RegisteredSchema {
    /// An Avro schema from its JSON text.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let schema = Schema::parse_str(text).map_err(|cause| cause.to_string())?;
        let json = serde_json::from_str(text).map_err(|cause| cause.to_string())?;
        Ok(RegisteredSchema::Avro { schema, json })
    }

    pub fn avro(&self) -> Option<&Schema> {
        match self {
            RegisteredSchema::Avro { schema, .. } => Some(schema),
            RegisteredSchema::Protobuf(_) => None,
        }
    }

    pub fn avro_json(&self) -> Option<&serde_json::Value> {
        match self {
            RegisteredSchema::Avro { json, .. } => Some(json),
            RegisteredSchema::Protobuf(_) => None,
        }
    }

    pub fn protobuf(&self) -> Option<&ProtobufSchema> {
        match self {
            RegisteredSchema::Protobuf(schema) => Some(schema),
            RegisteredSchema::Avro { .. } => None,
        }
    }
}

/// A registered schema, as `GET /schemas/ids/{id}` and `GET /subjects/{subject}/versions/{version}` give it.
#[derive(Deserialize)]
struct Registered {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    /// Other registered schemas this one imports.
    #[serde(default)]
    references: Vec<SchemaReference>,
}

/// An import of a registered schema: the name it is imported by (`import "shop/money.proto";`) and the subject
/// version that holds it.
#[derive(Debug, Clone, Deserialize)]
struct SchemaReference {
    name: String,
    subject: String,
    version: i64,
}

/// How many schemas one schema may import, its imports' imports included: a bound on a registry's cycle.
const MAX_IMPORTED_SCHEMAS: usize = 256;

impl SchemaRegistry {
    /// The registry at `url`, with `credentials` if given, else those of the URL's user info if any.
    pub fn new(url: &str, credentials: Option<RegistryCredentials>) -> Result<Self> {
        // The text may hold a password: it is not repeated in the message.
        let mut url = url::Url::parse(url).map_err(|cause| {
            Error::config("schema_registry is not a URL (write http://registry:8081)").caused_by(cause)
        })?;
        let in_url = (!url.username().is_empty()).then(|| {
            let decoded = |text: &str| percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned();
            RegistryCredentials {
                user: decoded(url.username()),
                password: Secret::new(decoded(url.password().unwrap_or_default())),
            }
        });
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let credentials = credentials.or(in_url);
        // Paths are joined below the registry's own path.
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|cause| Error::config("cannot build the schema registry's HTTP client").caused_by(cause))?;
        Ok(SchemaRegistry { url, credentials, client, schemas: Mutex::new(HashMap::new()) })
    }

    /// The schemas of `ids`, fetching those not fetched before.
    pub async fn schemas(&self, ids: impl IntoIterator<Item = u32>) -> Result<HashMap<u32, Arc<RegisteredSchema>>> {
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

    async fn fetch(&self, id: u32) -> Result<RegisteredSchema> {
        let found: Registered = self.get(&format!("schemas/ids/{id}"), &format!("schema {id}")).await?;
        match found.schema_type.as_deref().unwrap_or("AVRO") {
            "AVRO" => RegisteredSchema::parse(&found.schema).map_err(|cause| {
                Error::config(format!(
                    "kafka: schema {id} from the schema registry is not a valid Avro schema: {cause}"
                ))
            }),
            "PROTOBUF" => {
                let imports = self.imports(id, found.references).await?;
                ProtobufSchema::compile(&found.schema, imports).map(RegisteredSchema::Protobuf).map_err(|cause| {
                    Error::config(format!(
                        "kafka: Protobuf schema {id} from the schema registry does not compile: {cause}"
                    ))
                })
            }
            other => Err(Error::config(format!(
                "kafka: schema {id} is a {other} schema; the connector reads Avro (--format avro, debezium) and \
                 Protobuf (--format protobuf) schemas"
            ))),
        }
    }

    /// The sources of the schemas `references` name, and of those they import in turn, by the names they are
    /// imported by.
    async fn imports(&self, id: u32, references: Vec<SchemaReference>) -> Result<BTreeMap<String, String>> {
        let mut sources = BTreeMap::new();
        let mut wanted = references;
        while let Some(reference) = wanted.pop() {
            if sources.contains_key(&reference.name) {
                continue;
            }
            if sources.len() == MAX_IMPORTED_SCHEMAS {
                return Err(Error::config(format!(
                    "kafka: schema {id} imports more than {MAX_IMPORTED_SCHEMAS} registered schemas (a cycle of \
                     references?)"
                )));
            }
            let path = format!(
                "subjects/{}/versions/{}",
                percent_encoding::utf8_percent_encode(&reference.subject, percent_encoding::NON_ALPHANUMERIC),
                reference.version
            );
            let what = format!(
                "`{}` (subject `{}` version {}, imported by schema {id})",
                reference.name, reference.subject, reference.version
            );
            let imported: Registered = self.get(&path, &what).await?;
            wanted.extend(imported.references);
            sources.insert(reference.name, imported.schema);
        }
        Ok(sources)
    }

    /// `GET` of `path` below the registry's URL; `what` names the schema asked for in errors.
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str, what: &str) -> Result<T> {
        let url = self.url.join(path).map_err(|cause| Error::state(format!("internal: schema URL: {cause}")))?;
        let unreachable = |cause: reqwest::Error| {
            Error::new(
                ErrorKind::Source,
                Retry::WithBackoff,
                format!("kafka: cannot fetch {what} from the schema registry at {}: {cause}", self.url),
            )
        };
        let mut request = self.client.get(url);
        if let Some(credentials) = &self.credentials {
            request = request.basic_auth(&credentials.user, Some(credentials.password.expose()));
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            let given = match &self.credentials {
                Some(credentials) => format!("the credentials of user `{}` are refused", credentials.user),
                None => "it asks for credentials and none were given".to_string(),
            };
            return Err(Error::config(format!(
                "kafka: the schema registry at {} answers {status} for {what}: {given}; set \
                 schema_registry_user and schema_registry_password (or https://USER:PASSWORD@host in \
                 --schema-registry) to credentials it accepts",
                self.url
            )));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let retry = if status.is_server_error() { Retry::WithBackoff } else { Retry::No };
            return Err(Error::new(
                ErrorKind::Source,
                retry,
                format!(
                    "kafka: the schema registry at {} answers {status} for {what}: {}; check --schema-registry \
                     (the registry the producers use)",
                    self.url,
                    body.trim()
                ),
            ));
        }
        response.json().await.map_err(unreachable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_the_url_are_taken_out_of_it() {
        let registry = SchemaRegistry::new("https://key:s%40cret@registry.example:8081/base", None).expect("registry");
        assert_eq!(registry.url.as_str(), "https://registry.example:8081/base/", "no user info left to show");
        let credentials = registry.credentials.expect("credentials");
        assert_eq!((credentials.user.as_str(), credentials.password.expose()), ("key", "s@cret"));
        let given = RegistryCredentials { user: "other".into(), password: Secret::new("p") };
        let registry = SchemaRegistry::new("http://key:x@registry:8081", Some(given)).expect("registry");
        assert_eq!(registry.credentials.expect("credentials").user, "other", "the profile's keys win");
        let error = SchemaRegistry::new("not a url:secret", None).expect_err("not a URL").to_string();
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn the_wire_format_is_a_zero_byte_a_big_endian_id_and_the_value() {
        assert_eq!(wire_format(&[0, 0, 0, 1, 2, 9, 8]), Some((258, &[9u8, 8][..])));
        assert_eq!(wire_format(&[0, 0, 0, 0, 7]), Some((7, &[][..])));
        assert_eq!(wire_format(&[1, 0, 0, 0, 7, 1]), None, "another magic byte");
        assert_eq!(wire_format(&[0, 0, 0]), None, "too short");
    }
}
