//! Finds the files of a location: every file under its prefix that the glob takes, modified after the
//! `modified_after` bound, in path order.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use glob::{MatchOptions, Pattern};
use object_store::ObjectMeta;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::ingested_file::SourceFile;

use crate::location::FileLocation;

/// Which listed files are the table's.
#[derive(Debug, Clone, Default)]
pub struct FileFilter {
    /// Matched against the path below the location's prefix (`*.csv.gz`, `2026/*/orders-*.json`); `*` does
    /// not cross a `/`, `**` does.
    pub glob: Option<Pattern>,
    pub modified_after: Option<DateTime<Utc>>,
}

impl FileFilter {
    pub fn new(glob: Option<&str>, modified_after: Option<DateTime<Utc>>) -> Result<Self> {
        let glob = glob
            .map(|text| {
                Pattern::new(text).map_err(|cause| {
                    Error::config(format!("glob `{text}` is not a valid pattern: {cause}; fix --glob (`glob`)"))
                })
            })
            .transpose()?;
        Ok(FileFilter { glob, modified_after })
    }

    fn takes(&self, relative: &str, meta: &ObjectMeta) -> bool {
        // Hidden files and those of writers' bookkeeping (`_SUCCESS`, `.part-0.crc`, `_delta_log/`) are not data.
        if relative.split('/').any(|part| part.starts_with('.') || part.starts_with('_')) {
            return false;
        }
        let options = MatchOptions { case_sensitive: true, require_literal_separator: true, ..MatchOptions::new() };
        self.glob.as_ref().is_none_or(|glob| glob.matches_with(relative, options))
            && self.modified_after.is_none_or(|after| meta.last_modified > after)
    }
}

/// Every file of `location` that `filter` takes, in path order.
pub async fn list_files(location: &FileLocation, filter: &FileFilter) -> Result<Vec<SourceFile>> {
    list_files_after(location, filter, None).await
}

/// The files of `location` that `filter` takes and whose store path sorts after `after` (all when `None`), in
/// path order. Object stores list from a key on (S3's `start-after`), so an incremental listing costs what it
/// returns.
pub async fn list_files_after(
    location: &FileLocation,
    filter: &FileFilter,
    after: Option<&Path>,
) -> Result<Vec<SourceFile>> {
    let listing_error = |cause: object_store::Error| {
        let message = format!("cannot list the files under {}", location.url_of(&location.prefix));
        Error::new(ErrorKind::Source, Retry::WithBackoff, message).caused_by(cause)
    };
    let metas: Vec<ObjectMeta> = match (location.single_file(), after) {
        (Some(file), _) => vec![location.store.head(file).await.map_err(listing_error)?],
        (None, None) => location.store.list(Some(&location.prefix)).try_collect().await.map_err(listing_error)?,
        (None, Some(after)) => {
            location.store.list_with_offset(Some(&location.prefix), after).try_collect().await.map_err(listing_error)?
        }
    };
    let prefix = location.prefix.as_ref();
    let mut files: Vec<SourceFile> = metas
        .into_iter()
        .filter(|meta| {
            let full = meta.location.as_ref();
            let relative = full.strip_prefix(prefix).unwrap_or(full).trim_start_matches('/');
            location.single_file().is_some() || filter.takes(relative, meta)
        })
        .map(|meta| SourceFile {
            path: location.url_of(&meta.location),
            size: meta.size,
            modified: meta.last_modified,
            etag: meta.e_tag,
        })
        .collect();
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}
