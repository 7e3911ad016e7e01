//! Finds the files of a location: every file under its prefix that the glob takes, modified after the
//! `modified_after` bound, in path order.

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use glob::{MatchOptions, Pattern};
use object_store::ObjectMeta;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use connector_core::error::{Error, ErrorKind, Result, Retry};
use connector_core::ingested_file::SourceFile;

use crate::location::FileLocation;
use crate::notifications::CreatedObject;

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
    let single_file = location.single_file().is_some();
    let mut files: Vec<SourceFile> =
        metas.into_iter().filter_map(|meta| taken_file(location, filter, meta, single_file)).collect();
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The files of `location` that `filter` takes among `created` (objects a notification named), in path order,
/// as a listing would give them: the store is asked for each (so size, time and entity tag are the listing's;
/// a notification's entity tag is written differently), and those deleted since are left out.
pub async fn notified_files(
    location: &FileLocation,
    filter: &FileFilter,
    created: &[CreatedObject],
) -> Result<Vec<SourceFile>> {
    let mut paths: Vec<Path> =
        created.iter().filter_map(|object| location.object_in_bucket(&object.bucket, &object.key)).collect();
    paths.sort_unstable();
    paths.dedup();
    let heads = futures::stream::iter(paths)
        .map(|path| async move {
            match location.store.head(&path).await {
                Ok(meta) => Ok(Some(meta)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(cause) => {
                    let message = format!("cannot read the details of {}", location.url_of(&path));
                    Err(Error::new(ErrorKind::Source, Retry::WithBackoff, message).caused_by(cause))
                }
            }
        })
        .buffer_unordered(PARALLEL_HEADS);
    let metas: Vec<Option<ObjectMeta>> = heads.try_collect().await?;
    let mut files: Vec<SourceFile> =
        metas.into_iter().flatten().filter_map(|meta| taken_file(location, filter, meta, false)).collect();
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Objects asked about at once after notifications.
const PARALLEL_HEADS: usize = 16;

/// `meta` as a file of the table, if `filter` takes it (a location naming one file takes it).
fn taken_file(location: &FileLocation, filter: &FileFilter, meta: ObjectMeta, single_file: bool) -> Option<SourceFile> {
    let full = meta.location.as_ref();
    let relative = full.strip_prefix(location.prefix.as_ref()).unwrap_or(full).trim_start_matches('/');
    (single_file || filter.takes(relative, &meta)).then(|| SourceFile {
        path: location.url_of(&meta.location),
        size: meta.size,
        modified: meta.last_modified,
        etag: meta.e_tag,
    })
}
