//! The binlog's events, read apart from their decoding (the engine reads while the tables merge), and read so
//! that a malformed one stops the sync with an error instead of the process:
//! mysql_common 0.35 panics on an event whose header claims more bytes than its packet holds (`Event::read`
//! unwraps the read) and on one too short for its checksum (found by the `mysql_binlog` fuzz target). A server,
//! a proxy or a damaged binlog file can send either, and a server's bytes must never panic the process. Caught
//! here, around the one call that parses events, because the panics are inside mysql_async's stream.

use connector_core::caught_panic::catching;
use connector_core::engine::EventReader;
use connector_core::error::{Error, ErrorKind, Retry};
use connector_core::position::BinlogPosition;
use futures::StreamExt;
use mysql_async::BinlogStream;
use mysql_async::binlog::events::Event;

/// An event the parser could not read: the panic's message.
#[derive(Debug)]
pub struct MalformedEvent(String);

/// The binlog stream, once opened.
#[derive(Default)]
pub struct BinlogEvents {
    pub stream: Option<BinlogStream>,
}

/// Why the binlog could not be read.
#[derive(Debug)]
pub enum BinlogReadFailure {
    NotOpen,
    Malformed(MalformedEvent),
    Server(mysql_async::Error),
    /// The server ended the stream.
    Ended,
}

impl std::fmt::Debug for BinlogEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogEvents").field("open", &self.stream.is_some()).finish()
    }
}

impl EventReader for BinlogEvents {
    type Event = Event;
    type Failure = BinlogReadFailure;

    /// Cancel-safe: the stream keeps its state between polls.
    async fn next_event(&mut self) -> Result<Event, BinlogReadFailure> {
        let Some(stream) = self.stream.as_mut() else { return Err(BinlogReadFailure::NotOpen) };
        match catching(stream.next()).await {
            Ok(Some(Ok(event))) => Ok(event),
            Ok(Some(Err(cause))) => Err(BinlogReadFailure::Server(cause)),
            Ok(None) => Err(BinlogReadFailure::Ended),
            Err(panic) => Err(BinlogReadFailure::Malformed(MalformedEvent(panic))),
        }
    }

    fn event_bytes(event: &Event) -> usize {
        size_of::<Event>() + event.data().len()
    }
}

impl MalformedEvent {
    /// The sync's error: where the event was, that nothing is lost, and what to check if it recurs. Retried
    /// with backoff: a packet damaged in transit reads whole the next time.
    pub fn into_error(self, after: &BinlogPosition) -> Error {
        Error::new(
            ErrorKind::Source,
            Retry::WithBackoff,
            format!(
                "the server sent a malformed binlog event after {}:{} (the binlog parser failed: {}); nothing \
                 after the last commit was acknowledged, so the next attempt resumes from its last commit. If it fails \
                 at the same place again, the binlog file may be damaged: read it with `mysqlbinlog --start-position={} {}` \
                 on the server, and resync the pipeline's tables if it is",
                after.file, after.offset, self.0, after.offset, after.file
            ),
        )
    }
}
