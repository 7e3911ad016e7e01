//! One writer per pipeline and destination: before a sync writes anything, it takes the pipeline's lease in
//! the destination (`<dest>/_connector/leases/<pipeline>.json`), and a second `connector sync` or `connector
//! run` of the same pipeline is refused with the holder's identity instead of committing beside it.
//!
//! - On a local destination the lease is an OS lock on that file (`flock`), which the kernel releases when the
//!   process ends, however it ends: a supervisor's restart after `kill -9` takes it at once.
//! - On an object store it is the file itself, created with a conditional write (`If-None-Match`), renewed
//!   every [`RENEW_EVERY`] with a conditional update (`If-Match` on its ETag) and valid for [`LEASE_TTL`]
//!   after each renewal. An expired lease, or one whose holder was a process of this host that no longer
//!   runs, is taken over with a conditional update, so two takers cannot both win. A holder that fails to
//!   renew (it was taken over, or the store is unreachable for a whole TTL) stops its sync.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deltalake::{DeltaTableBuilder, ObjectStore, Path as StorePath};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::delta::Destination;
use crate::error::{Error, ErrorKind, Result, Retry};
use crate::event_log::{Event, EventKind, EventLog};
use crate::pipeline::{Pipeline, Shutdown, SyncFuture, SyncMode};

/// How long an object-store lease stays valid after its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How often the holder renews: a third of the TTL, so two renewals may fail before it expires.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

/// Who holds a lease, as the refused writer is told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub since: DateTime<Utc>,
    /// Object stores only: when the lease lapses unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
}

impl Holder {
    fn this_process() -> Self {
        Holder {
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            command: std::env::args().take(2).collect::<Vec<_>>().join(" "),
            since: Utc::now(),
            expires: None,
        }
    }

    fn describe(&self) -> String {
        format!("`{}` (process {} on host {}, since {})", self.command, self.pid, self.host, self.since.to_rfc3339())
    }

    /// Whether this lease no longer protects anyone: it lapsed, or its holder was a process of this host that
    /// has ended (checked through /proc, so only on Linux).
    fn is_stale(&self, now: DateTime<Utc>) -> bool {
        let lapsed = self.expires.is_some_and(|expires| expires < now);
        let this_host = self.host == gethostname::gethostname().to_string_lossy();
        let ended =
            this_host && cfg!(target_os = "linux") && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists();
        lapsed || ended
    }
}

/// A held lease; dropping it releases a local one, [`PipelineLease::release`] an object-store one.
#[derive(Debug)]
pub struct PipelineLease {
    held: Held,
}

#[derive(Debug)]
enum Held {
    /// The locked file: the lock lasts as long as the handle, which is kept for that alone.
    Local { _locked: File },
    Remote {
        store: Arc<dyn ObjectStore>,
        path: StorePath,
        renewal: tokio::task::JoinHandle<()>,
        lost: watch::Receiver<Option<String>>,
    },
}

impl PipelineLease {
    /// Takes `pipeline`'s lease in `destination`, or fails naming who holds it. `storage_options` reach an
    /// object store as the sink's do (empty: the environment's `AWS_*` variables).
    pub async fn acquire(
        destination: &Destination,
        pipeline: &str,
        storage_options: &HashMap<String, String>,
    ) -> Result<Self> {
        let url = destination.url();
        if url.scheme() == "file" {
            let root =
                url.to_file_path().map_err(|()| Error::config(format!("destination {url} is not a local path")))?;
            return acquire_local(&root.join("_connector").join("leases"), pipeline)
                .map(|file| PipelineLease { held: Held::Local { _locked: file } });
        }
        acquire_remote(destination, pipeline, storage_options).await
    }

    /// Completes when the lease is lost (taken over, or not renewed within its TTL), with the reason; never on
    /// a local lease, which cannot be lost while the process lives.
    pub async fn lost(&mut self) -> String {
        match &mut self.held {
            Held::Local { .. } => std::future::pending().await,
            Held::Remote { lost, .. } => match lost.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone().unwrap_or_default(),
                Err(_) => "the lease renewal stopped".to_string(),
            },
        }
    }

    /// Gives the lease up so the next writer need not wait for it to lapse.
    pub async fn release(self) {
        if let Held::Remote { store, path, renewal, .. } = self.held {
            renewal.abort();
            if let Err(cause) = store.delete(&path).await {
                warn!(lease = %path, %cause, "could not remove the pipeline's lease; it lapses on its own");
            }
        }
    }
}

/// A pipeline that holds its lease while it syncs, and stops if it loses it.
#[derive(Debug)]
pub struct LeasedPipeline {
    inner: Arc<dyn Pipeline>,
    destination: Destination,
}

impl LeasedPipeline {
    pub fn new(inner: Arc<dyn Pipeline>, destination: Destination) -> Self {
        LeasedPipeline { inner, destination }
    }
}

impl Pipeline for LeasedPipeline {
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Runs the sync under the pipeline's lease, writing the run and the lease to the destination's event log.
    fn sync(&self, mode: SyncMode, shutdown: Shutdown) -> SyncFuture<'_> {
        Box::pin(async move {
            let name = self.inner.name();
            let events = EventLog::for_destination(&self.destination, &HashMap::new());
            let started = std::time::Instant::now();
            let mut lease = match PipelineLease::acquire(&self.destination, name, &HashMap::new()).await {
                Ok(lease) => lease,
                Err(error) => {
                    events.record(Event::new(name, EventKind::RunFailed).error(&error));
                    return Err(error);
                }
            };
            events.record(Event::new(name, EventKind::LeaseTaken));
            events.record(Event::new(name, EventKind::RunStarted).message(format!("{mode:?}").to_lowercase()));
            let outcome = tokio::select! {
                outcome = self.inner.sync(mode, shutdown) => outcome,
                reason = lease.lost() => {
                    events.record(Event::new(name, EventKind::LeaseLost).message(reason.to_string()));
                    Err(Error::new(
                        ErrorKind::State,
                        Retry::WithBackoff,
                        format!("pipeline `{name}` stopped writing: {reason}"),
                    ))
                }
            };
            lease.release().await;
            let finished = match &outcome {
                Ok(report) => {
                    Event::new(name, EventKind::RunFinished).message(report.to_string().trim_end().to_string())
                }
                Err(error) => Event::new(name, EventKind::RunFailed).error(error),
            };
            events.record(finished.duration(started.elapsed()));
            // A sync's events are in the log when it returns (a `once` run exits right after).
            events.flush().await;
            outcome
        })
    }
}

fn lease_file_name(pipeline: &str) -> String {
    format!("{pipeline}.json")
}

/// Retried under `connector run`: the other writer may stop.
fn holder_taken_error(pipeline: &str, holder: &Holder) -> Error {
    Error::new(
        ErrorKind::State,
        Retry::WithBackoff,
        format!(
            "pipeline `{pipeline}` is already writing to this destination: {} holds its lease. Two writers of one \
         pipeline would commit the same changes side by side; stop the other one first (or give this one another \
         --pipeline name or --dest)",
            holder.describe()
        ),
    )
}

fn acquire_local(directory: &std::path::Path, pipeline: &str) -> Result<File> {
    std::fs::create_dir_all(directory).map_err(|cause| {
        Error::config(format!("cannot create {} for the pipeline's lease", directory.display())).caused_by(cause)
    })?;
    let path = directory.join(lease_file_name(pipeline));
    let mut file =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|cause| {
            Error::config(format!("cannot open the lease file {}", path.display())).caused_by(cause)
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = serde_json::from_str::<Holder>(&text).unwrap_or_else(|_| Holder {
                host: "?".into(),
                pid: 0,
                command: "another connector".into(),
                since: Utc::now(),
                expires: None,
            });
            return Err(holder_taken_error(pipeline, &holder));
        }
        Err(TryLockError::Error(cause)) => {
            return Err(Error::config(format!("cannot lock the lease file {}", path.display())).caused_by(cause));
        }
    }
    // Who holds it, for the next one refused.
    let holder = serde_json::to_vec(&Holder::this_process()).unwrap_or_default();
    let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(&holder));
    written
        .map_err(|cause| Error::config(format!("cannot write the lease file {}", path.display())).caused_by(cause))?;
    Ok(file)
}

async fn acquire_remote(
    destination: &Destination,
    pipeline: &str,
    storage_options: &HashMap<String, String>,
) -> Result<PipelineLease> {
    let root = destination.url().as_str().trim_end_matches('/').to_string() + "/_connector/";
    let root_url =
        url::Url::parse(&root).map_err(|cause| Error::config(format!("bad destination {root}")).caused_by(cause))?;
    let store = DeltaTableBuilder::from_url(root_url)
        .and_then(|builder| builder.with_storage_options(storage_options.clone()).build_storage())
        .map_err(|cause| Error::destination(format!("cannot reach {root} for the pipeline's lease"), cause))?
        .object_store(None);
    let path = StorePath::from(format!("leases/{}", lease_file_name(pipeline)));
    let lease_error = |what: &str, cause: object_store::Error| {
        Error::new(
            ErrorKind::Destination,
            Retry::WithBackoff,
            format!("cannot {what} the pipeline's lease {root}{path}"),
        )
        .caused_by(cause)
    };
    let mut holder = Holder::this_process();
    holder.expires = Some(Utc::now() + LEASE_TTL);
    let created = put(&*store, &path, &holder, PutMode::Create).await;
    let version = match created {
        Ok(version) => version,
        Err(object_store::Error::AlreadyExists { .. }) => {
            let current = store.get(&path).await.map_err(|cause| lease_error("read", cause))?;
            let version = UpdateVersion { e_tag: current.meta.e_tag.clone(), version: current.meta.version.clone() };
            let bytes = current.bytes().await.map_err(|cause| lease_error("read", cause))?;
            match serde_json::from_slice::<Holder>(&bytes) {
                Ok(other) if !other.is_stale(Utc::now()) => return Err(holder_taken_error(pipeline, &other)),
                Ok(other) => info!(previous = %other.describe(), "taking over the pipeline's lapsed lease"),
                Err(_) => info!("taking over a pipeline lease that cannot be read"),
            }
            match put(&*store, &path, &holder, PutMode::Update(version)).await {
                Ok(version) => version,
                Err(object_store::Error::Precondition { .. }) => {
                    return Err(Error::new(
                        ErrorKind::State,
                        Retry::WithBackoff,
                        format!(
                            "pipeline `{pipeline}`: another writer took the lapsed lease at the same moment; stop \
                             it first"
                        ),
                    ));
                }
                Err(cause) => return Err(lease_error("take over", cause)),
            }
        }
        Err(cause) => return Err(lease_error("create", cause)),
    };
    let (report_loss, lost) = watch::channel(None);
    let renewal = tokio::spawn(renew(store.clone(), path.clone(), holder, version, report_loss));
    Ok(PipelineLease { held: Held::Remote { store, path, renewal, lost } })
}

async fn put(
    store: &dyn ObjectStore,
    path: &StorePath,
    holder: &Holder,
    mode: PutMode,
) -> object_store::Result<UpdateVersion> {
    let body = serde_json::to_vec(holder).unwrap_or_default();
    let options = PutOptions { mode, ..PutOptions::default() };
    let result = store.put_opts(path, PutPayload::from(body), options).await?;
    Ok(UpdateVersion { e_tag: result.e_tag, version: result.version })
}

/// Renews the lease until it is lost: taken over (its ETag changed) or not renewed before it lapsed.
async fn renew(
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    mut holder: Holder,
    mut version: UpdateVersion,
    report_loss: watch::Sender<Option<String>>,
) {
    let mut renewed_at = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        holder.expires = Some(Utc::now() + LEASE_TTL);
        match put(&*store, &path, &holder, PutMode::Update(version.clone())).await {
            Ok(next) => {
                version = next;
                renewed_at = tokio::time::Instant::now();
            }
            Err(object_store::Error::Precondition { .. }) => {
                report_loss.send_replace(Some("another writer took over the pipeline's lease".into()));
                return;
            }
            Err(cause) if renewed_at.elapsed() >= LEASE_TTL => {
                report_loss.send_replace(Some(format!(
                    "the pipeline's lease could not be renewed for {LEASE_TTL:?}: {cause}"
                )));
                return;
            }
            Err(cause) => warn!(%cause, "could not renew the pipeline's lease; trying again"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_local_writer_is_refused_with_the_holder_and_a_dead_holder_frees_it() {
        let directory = tempfile::tempdir().expect("temp dir");
        let first = acquire_local(directory.path(), "orders").expect("first writer");
        let refused = acquire_local(directory.path(), "orders").expect_err("second writer");
        let text = refused.to_string();
        assert!(text.contains(&format!("process {}", std::process::id())), "{text}");
        assert!(text.contains("stop the other one first"), "{text}");
        // Another pipeline has a lease of its own.
        let other = acquire_local(directory.path(), "billing").expect("another pipeline");
        drop(first);
        acquire_local(directory.path(), "orders").expect("free once the holder is gone");
        drop(other);
    }

    #[test]
    fn remote_leases_lapse_or_die_with_their_holder() {
        let now = Utc::now();
        let mut holder = Holder::this_process();
        holder.expires = Some(now + LEASE_TTL);
        assert!(!holder.is_stale(now));
        assert!(holder.is_stale(now + LEASE_TTL * 2));
        holder.pid = u32::MAX;
        assert!(holder.is_stale(now), "a process of this host that no longer runs holds nothing");
    }
}
