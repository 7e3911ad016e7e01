//! Shared test support: building change batches and reading Delta tables back.

pub mod delta;
pub mod faulty_store;
pub mod s3;
pub mod saas;
pub mod servers;
