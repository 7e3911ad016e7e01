//! Integration tests: the Delta sink on real tables, and (in their modules) connectors against real
//! servers started by `support`. One binary so the heavy dependency set links once.

mod alerts;
mod bad_input;
mod chaos;
mod console;
mod deletion_vectors;
mod delta_sink;
mod event_log;
mod file_bad_input;
mod file_blocks;
mod file_formats;
mod file_stores;
mod files;
mod harness;
mod kafka;
mod load_merge;
mod maintenance;
mod mysql;
mod postgres;
mod saas;
mod secrets;
mod soak;
mod support;
