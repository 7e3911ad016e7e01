//! A Delta destination in a temporary directory, for the engine's scripted tests.

use crate::delta::{DeltaSink, Destination};

/// A sink writing `pipeline`'s tables below a new temporary directory, removed when the directory is dropped.
pub(super) fn temporary_lake(pipeline: &str) -> (tempfile::TempDir, DeltaSink) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let destination = Destination::parse(&directory.path().display().to_string()).expect("a destination");
    (directory, DeltaSink::new(destination, pipeline, Default::default()))
}
