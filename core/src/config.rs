//! `pipelines.toml`: source profiles (connection and credentials) apart from pipelines (tables,
//! destination, schedule, per-table options). `${VAR}` in any string value reads the environment, so
//! secrets and per-environment settings stay out of the file.
//!
//! ```toml
//! [profiles.shop_db]
//! kind = "postgres"
//! url = "postgres://connector:${SHOP_DB_PASSWORD}@db.internal:5432/shop"
//!
//! [[pipelines]]
//! name = "shop"
//! profile = "shop_db"
//! tables = ["public.orders", "public.items"]
//! dest = "s3://lake/raw"
//! schedule = "15m"
//! options = { delete_mode = "soft" }
//! tables_options."public.orders" = { delete_mode = "history" }
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::options::TableOptions;
use crate::schedule::Schedule;
use crate::schema::TableId;

/// A parsed and validated pipelines file.
#[derive(Debug, Clone)]
pub struct PipelinesFile {
    pub profiles: BTreeMap<String, Profile>,
    pub pipelines: Vec<Pipeline>,
}

/// How to reach one source: its kind and the connector's own settings (validated by that connector).
#[derive(Clone, Deserialize)]
pub struct Profile {
    pub kind: String,
    #[serde(flatten)]
    pub settings: toml::Table,
}

impl fmt::Debug for Profile {
    /// Setting names only: values may be credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("kind", &self.kind)
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One pipeline: which tables of which profile land where, and when.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub profile: String,
    pub tables: Vec<String>,
    pub dest: String,
    pub schedule: Schedule,
    /// Options for each table in `tables`, pipeline defaults merged with the table's own.
    pub table_options: BTreeMap<String, TableOptions>,
    /// The pipeline's default options, for tables found at run time (a PostgreSQL profile's `schemas`).
    pub default_options: TableOptions,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
    #[serde(default)]
    pipelines: Vec<RawPipeline>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    name: String,
    profile: String,
    #[serde(alias = "streams")]
    tables: Vec<String>,
    dest: String,
    schedule: String,
    #[serde(default)]
    options: toml::Table,
    #[serde(default)]
    tables_options: BTreeMap<String, toml::Table>,
}

impl PipelinesFile {
    /// The pipeline called `name`, or an error naming the file (`origin`) and the pipelines it defines.
    pub fn pipeline(&self, name: &str, origin: &Path) -> Result<&Pipeline> {
        self.pipelines.iter().find(|pipeline| pipeline.name == name).ok_or_else(|| {
            let known: Vec<_> = self.pipelines.iter().map(|pipeline| pipeline.name.as_str()).collect();
            Error::config(format!(
                "--pipeline {name}: no such pipeline in {} (defined: {})",
                origin.display(),
                known.join(", ")
            ))
        })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|cause| {
            Error::config(format!("cannot read the config file {}", path.display())).caused_by(cause)
        })?;
        Self::parse(&text, &path.display().to_string(), &|name| std::env::var(name).ok())
    }

    /// Parses `text` (named `origin` in errors), reading `${VAR}` from `environment`.
    pub fn parse(text: &str, origin: &str, environment: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let raw: RawFile = toml::from_str(text)
            .map_err(|cause| Error::config(format!("{origin} is not a valid pipelines file:\n{cause}")))?;
        let mut profiles = BTreeMap::new();
        for (name, mut profile) in raw.profiles {
            interpolate_table(&mut profile.settings, &format!("profiles.{name}"), environment)?;
            profiles.insert(name, profile);
        }
        let mut seen = HashSet::new();
        let mut pipelines = Vec::with_capacity(raw.pipelines.len());
        for (index, pipeline) in raw.pipelines.into_iter().enumerate() {
            let at = format!("{origin}: pipelines[{index}] (`{}`)", pipeline.name);
            check_pipeline_name(&pipeline.name).map_err(|reason| Error::config(format!("{at}.name: {reason}")))?;
            if !seen.insert(pipeline.name.clone()) {
                return Err(Error::config(format!("{at}.name: another pipeline has this name; names must be unique")));
            }
            if !profiles.contains_key(&pipeline.profile) {
                let known: Vec<_> = profiles.keys().map(String::as_str).collect();
                return Err(Error::config(format!(
                    "{at}.profile: no profile `{}` (defined: {}); add a [profiles.{}] section",
                    pipeline.profile,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") },
                    pipeline.profile
                )));
            }
            // A Kafka profile may name its topics by a pattern instead (they are found when it runs).
            let discovers_tables = profiles[&pipeline.profile].settings.contains_key("topic_pattern");
            if pipeline.tables.is_empty() && !discovers_tables {
                return Err(Error::config(format!("{at}.tables: list at least one table")));
            }
            let schedule =
                pipeline.schedule.parse().map_err(|reason| Error::config(format!("{at}.schedule: {reason}")))?;
            let dest = interpolate(&pipeline.dest, &format!("{at}.dest"), environment)?;
            for table in pipeline.tables_options.keys() {
                if !pipeline.tables.contains(table) {
                    return Err(Error::config(format!(
                        "{at}.tables_options.\"{table}\": `{table}` is not in this pipeline's `tables`"
                    )));
                }
            }
            let default_options: TableOptions = toml::Value::Table(pipeline.options.clone())
                .try_into()
                .map_err(|cause| Error::config(format!("{at}.options: invalid: {cause}")))?;
            let mut table_options = BTreeMap::new();
            for table in &pipeline.tables {
                let mut merged = pipeline.options.clone();
                merged.extend(pipeline.tables_options.get(table).cloned().unwrap_or_default());
                let options: TableOptions = toml::Value::Table(merged)
                    .try_into()
                    .map_err(|cause| Error::config(format!("{at}: options of table `{table}` are invalid: {cause}")))?;
                table_options.insert(table.clone(), options);
            }
            pipelines.push(Pipeline {
                name: pipeline.name,
                profile: pipeline.profile,
                tables: pipeline.tables,
                dest,
                schedule,
                table_options,
                default_options,
            });
        }
        Ok(PipelinesFile { profiles, pipelines })
    }
}

/// Pipeline names become Delta app ids and replication slot names: keep them portable.
pub fn check_pipeline_name(name: &str) -> std::result::Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 48
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!("`{name}` must be 1 to 48 characters of a-z, 0-9, `_` or `-` (it names replication slots)"))
    }
}

fn interpolate_table(table: &mut toml::Table, at: &str, environment: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    for (key, value) in table.iter_mut() {
        interpolate_value(value, &format!("{at}.{key}"), environment)?;
    }
    Ok(())
}

fn interpolate_value(value: &mut toml::Value, at: &str, environment: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    match value {
        toml::Value::String(text) => *text = interpolate(text, at, environment)?,
        toml::Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{at}[{index}]"), environment)?;
            }
        }
        toml::Value::Table(table) => interpolate_table(table, at, environment)?,
        _ => {}
    }
    Ok(())
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$${` escapes a literal `${`.
fn interpolate(text: &str, at: &str, environment: &dyn Fn(&str) -> Option<String>) -> Result<String> {
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            output.push_str(&rest[..start - 1]);
            output.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        output.push_str(&rest[..start]);
        let Some(length) = rest[start + 2..].find('}') else {
            return Err(Error::config(format!("{at}: `${{` without a closing `}}`")));
        };
        let expression = &rest[start + 2..start + 2 + length];
        let (name, default) = match expression.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (expression, None),
        };
        match (environment(name), default) {
            (Some(value), _) => output.push_str(&value),
            (None, Some(default)) => output.push_str(default),
            (None, None) => {
                return Err(Error::config(format!(
                    "{at}: environment variable `{name}` is not set; export it or write `${{{name}:-default}}`"
                )));
            }
        }
        rest = &rest[start + 2 + length + 1..];
    }
    output.push_str(rest);
    Ok(output)
}

impl Pipeline {
    /// The pipeline's tables as qualified ids, and the options set for each of them; `at` names the pipeline
    /// in errors.
    pub fn table_ids(&self, at: &str) -> Result<(Vec<TableId>, BTreeMap<TableId, TableOptions>)> {
        let mut tables = Vec::with_capacity(self.tables.len());
        let mut table_options = BTreeMap::new();
        for table in &self.tables {
            let id = TableId::parse(table).map_err(|error| Error::config(format!("{at}: {error}")))?;
            if let Some(options) = self.table_options.get(table) {
                table_options.insert(id.clone(), options.clone());
            }
            tables.push(id);
        }
        Ok((tables, table_options))
    }
}

/// The change memory budget in bytes that `batch_mib` (`--batch-mib`) sets, or `default` when unset. Zero is
/// refused rather than raised to a minimum, and so is a budget too large to count in bytes: either is a typo the
/// user should see, not a silent choice.
pub fn batch_bytes(batch_mib: Option<usize>, default: usize, at: &str) -> Result<usize> {
    const MIB: usize = 1024 * 1024;
    match batch_mib {
        None => Ok(default),
        Some(mib) => mib.checked_mul(MIB).filter(|_| mib > 0).ok_or_else(|| {
            Error::config(format!(
                "{at}: batch_mib (--batch-mib) = {mib} is not a memory budget; give a number of MiB from 1 to {} \
                 (default {})",
                usize::MAX / MIB,
                default / MIB
            ))
        }),
    }
}

/// The rows per copied key range or chunk that setting `key` (`copy_range_rows`, `copy_chunk_rows`, or their
/// flags) sets, or `default` when unset; zero is refused (a range or chunk must hold a row).
pub fn row_count(key: &str, rows: Option<u64>, default: u64, at: &str) -> Result<u64> {
    match rows {
        None => Ok(default),
        Some(0) => Err(Error::config(format!(
            "{at}: {key} (--{}) = 0 is not a row count; give 1 or more rows (default {default})",
            key.replace('_', "-")
        ))),
        Some(rows) => Ok(rows),
    }
}

/// The profile and pipeline a command names by a source URL and a pipeline name alone, for commands that reach
/// the source but capture nothing (`drop`, `status`).
pub fn command_line_source(kind: &str, url: &str, pipeline: &str) -> (Profile, Pipeline) {
    let mut settings = toml::Table::new();
    settings.insert("url".into(), url.into());
    let pipeline = Pipeline {
        name: pipeline.to_string(),
        profile: "command line".into(),
        tables: Vec::new(),
        dest: String::new(),
        schedule: crate::schedule::Schedule::Continuous,
        table_options: Default::default(),
        default_options: Default::default(),
    };
    (Profile { kind: kind.into(), settings }, pipeline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::DeleteMode;

    const FILE: &str = r#"
[profiles.shop_db]
kind = "postgres"
url = "postgres://connector:${DB_PASSWORD}@db:5432/shop"

[[pipelines]]
name = "shop"
profile = "shop_db"
tables = ["public.orders", "public.items"]
dest = "${LAKE:-./lake}"
schedule = "15m"
options = { delete_mode = "soft" }
tables_options."public.orders" = { delete_mode = "history", key = ["order_id"] }
"#;

    fn environment(name: &str) -> Option<String> {
        (name == "DB_PASSWORD").then(|| "s3cret".to_string())
    }

    #[test]
    fn pipelines_resolve_environment_and_per_table_options() {
        let file = PipelinesFile::parse(FILE, "pipelines.toml", &environment).expect("valid");
        let pipeline = &file.pipelines[0];
        assert_eq!(pipeline.dest, "./lake");
        assert_eq!(file.profiles["shop_db"].settings["url"].as_str(), Some("postgres://connector:s3cret@db:5432/shop"));
        assert_eq!(pipeline.table_options["public.items"].delete_mode, DeleteMode::Soft);
        assert_eq!(pipeline.table_options["public.orders"].delete_mode, DeleteMode::History);
        assert_eq!(pipeline.table_options["public.orders"].key, Some(vec!["order_id".to_string()]));
        assert!(!format!("{file:?}").contains("s3cret"), "Debug output must not show credentials");
    }

    #[test]
    fn errors_name_the_key_and_the_fix() {
        let missing_variable = PipelinesFile::parse(FILE, "pipelines.toml", &|_| None).expect_err("unset variable");
        assert!(missing_variable.to_string().contains("profiles.shop_db.url: environment variable `DB_PASSWORD`"));

        let bad_schedule = FILE.replace("\"15m\"", "\"sometimes\"");
        let error = PipelinesFile::parse(&bad_schedule, "pipelines.toml", &environment).expect_err("bad schedule");
        assert!(error.to_string().contains("pipelines[0] (`shop`).schedule: `sometimes` is not a schedule"), "{error}");

        let typo = FILE.replace("delete_mode = \"soft\"", "delete_mod = \"soft\"");
        let error = PipelinesFile::parse(&typo, "pipelines.toml", &environment).expect_err("unknown option");
        assert!(error.to_string().contains("delete_mod"), "{error}");

        let unknown_profile = FILE.replace("profile = \"shop_db\"", "profile = \"shop\"");
        let error = PipelinesFile::parse(&unknown_profile, "pipelines.toml", &environment).expect_err("no profile");
        assert!(error.to_string().contains("add a [profiles.shop] section"), "{error}");

        let unknown_key = FILE.replace("schedule = \"15m\"", "schedule = \"15m\"\nschedul = \"1h\"");
        let error = PipelinesFile::parse(&unknown_key, "pipelines.toml", &environment).expect_err("unknown key");
        assert!(error.to_string().contains("schedul"), "{error}");
    }
}
