//! `clean_source` (Auto Loader's `cleanSource`): files whose rows are committed are deleted, or moved to an
//! archive, once their retention has passed, so that a landing area does not grow forever. Only files the
//! ledger holds, as listed now (same size, time and entity tag), are touched: a file is never cleaned before
//! its rows are durably in the table.

use std::time::Duration;

use chrono::Utc;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::Deserialize;
use tracing::info;

use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::ingested_file::IngestedFile;

use crate::location::FileLocation;

/// What happens to ingested files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanSource {
    /// They stay where they are.
    #[default]
    Off,
    Delete,
    /// Moved below `clean_source_move_to`, keeping their path below the source's.
    Move,
}

/// How ingested files are cleaned, and when.
#[derive(Debug, Clone)]
pub struct SourceCleaning {
    /// `None` to delete.
    move_to: Option<FileLocation>,
    /// Files are cleaned once ingested this long ago.
    retention: Duration,
}

impl SourceCleaning {
    /// The cleaning of files at `source`; `None` when `mode` is off. A move's destination must be in the same
    /// store, outside the source (moved files would be listed again as new).
    pub fn new(
        mode: CleanSource,
        move_to: Option<&str>,
        retention: Duration,
        source: &FileLocation,
    ) -> Result<Option<Self>> {
        let move_to = match (mode, move_to) {
            (CleanSource::Off, None) => return Ok(None),
            (CleanSource::Delete, None) => None,
            (CleanSource::Move, Some(to)) => {
                if !to.contains("://") {
                    std::fs::create_dir_all(to).map_err(|cause| {
                        Error::config(format!("cannot create clean_source_move_to `{to}`")).caused_by(cause)
                    })?;
                }
                let destination = FileLocation::parse(to)?;
                if !destination.same_store(source) {
                    return Err(Error::config(format!(
                        "clean_source_move_to `{to}` is not in the store of the files it archives; give a \
                         directory of the same bucket (or, for local files, a local directory)"
                    )));
                }
                if destination.prefix.prefix_matches(&source.prefix) {
                    return Err(Error::config(format!(
                        "clean_source_move_to `{to}` is inside the path whose files it archives: moved files would \
                         be ingested again; give a directory outside it"
                    )));
                }
                Some(destination)
            }
            (CleanSource::Move, None) => {
                return Err(Error::config(
                    "clean_source = \"move\" needs clean_source_move_to (--clean-source-move-to), the directory \
                     ingested files are moved to",
                ));
            }
            (CleanSource::Off | CleanSource::Delete, Some(_)) => {
                return Err(Error::config(
                    "clean_source_move_to applies to clean_source = \"move\" (--clean-source move); set it, or \
                     remove clean_source_move_to",
                ));
            }
        };
        Ok(Some(SourceCleaning { move_to, retention }))
    }

    /// Deletes or moves the files of `location` among `ingested` whose retention has passed.
    pub async fn clean(&self, location: &FileLocation, ingested: &[&IngestedFile]) -> Result<()> {
        let due = Utc::now() - self.retention;
        for file in ingested.iter().filter(|file| file.ingested_at.is_some_and(|at| at <= due)) {
            let path = location.path_of(&file.file.path)?;
            let outcome = match &self.move_to {
                None => location.store.delete(&path).await,
                Some(destination) => location.store.rename(&path, &archived_path(location, destination, &path)).await,
            };
            match outcome {
                Ok(()) => info!(file = %file.file.path, archived = self.move_to.is_some(), "ingested file cleaned"),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(cause) => {
                    let what = if self.move_to.is_some() { "move" } else { "delete" };
                    let message = format!(
                        "cannot {what} {}, ingested (clean_source): check that the credentials may {what} it, or set \
                         clean_source = \"off\"",
                        file.file.path
                    );
                    return Err(Error::new(ErrorKind::Source, Retry::WithBackoff, message).caused_by(cause));
                }
            }
        }
        Ok(())
    }
}

/// Where a file moves: its path below the source's prefix, below the destination's.
fn archived_path(source: &FileLocation, destination: &FileLocation, path: &Path) -> Path {
    let below: Vec<_> = path.prefix_match(&source.prefix).map(|parts| parts.collect()).unwrap_or_default();
    let mut archived: Vec<_> = destination.prefix.parts().collect();
    archived.extend(below);
    Path::from_iter(archived)
}
