//! Shared test support: real servers and emulators, building change batches, reading Delta tables back and
//! driving the connector binary.

pub mod azurite;
pub mod binlog_tamperer;
pub mod certificates;
pub mod connector_process;
pub mod delta;
pub mod eventually;
pub mod faulty_store;
pub mod forwarder;
pub mod kafka;
pub mod load;
pub mod loopback;
pub mod s3;
pub mod saas;
pub mod scraped_metrics;
pub mod servers;
pub mod tcp_proxy;
pub mod tls_terminator;
