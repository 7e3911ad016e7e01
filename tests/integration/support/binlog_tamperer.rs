//! A proxy between the connector and a MySQL/MariaDB server that damages the binlog stream as a faulty server,
//! middlebox or disk would: in each connection that asks for the binlog, the first rows event's header is made to
//! claim more bytes than its packet holds. The rest of the protocol passes untouched, so only the binlog reader
//! sees bad bytes. Plaintext connections only (`ssl-mode=DISABLED`): TLS bytes cannot be read, let alone changed.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::tcp_proxy::mysql_over_tcp;

/// `COM_BINLOG_DUMP` and `COM_BINLOG_DUMP_GTID`: after one of them, the server's packets are binlog events.
const BINLOG_DUMP_COMMANDS: [u8; 2] = [0x12, 0x1e];
/// `WRITE_ROWS_EVENT_V1` (MariaDB) and `WRITE_ROWS_EVENT` (MySQL).
const WRITE_ROWS_EVENTS: [u8; 2] = [23, 30];
/// An event packet: the OK byte, then the event header (timestamp 4, type 1, server id 4, size 4, …).
const EVENT_TYPE_AT: usize = 1 + 4;
const EVENT_SIZE_AT: usize = 1 + 4 + 1 + 4;
/// How many bytes more than it holds the damaged event claims.
const CLAIMED_EXTRA_BYTES: u32 = 1000;

pub struct BinlogTamperer {
    pub port: u16,
}

impl BinlogTamperer {
    /// Listens on a free loopback port and forwards each connection to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let (dumping, dump_requested) = watch::channel(false);
                tokio::spawn(forward_commands(client_read, server_write, dumping));
                tokio::spawn(forward_replies(server_read, client_write, dump_requested));
            }
        });
        BinlogTamperer { port }
    }

    /// `url` (a `mysql://` URL) through the proxy, in plaintext and over TCP.
    pub fn url_through(&self, url: &str) -> String {
        let mut url = url::Url::parse(&mysql_over_tcp(url)).expect("url");
        url.set_port(Some(self.port)).expect("port");
        url.query_pairs_mut().append_pair("ssl-mode", "DISABLED");
        url.to_string()
    }
}

/// Whole MySQL packets (3-byte length, sequence number, payload) from a byte stream.
#[derive(Default)]
struct Packets {
    pending: Vec<u8>,
}

impl Packets {
    /// The next whole packet received so far, header included.
    fn next(&mut self) -> Option<Vec<u8>> {
        let length = self.pending.get(..3).map(|bytes| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], 0]))?;
        let total = 4 + length as usize;
        (self.pending.len() >= total).then(|| self.pending.drain(..total).collect())
    }
}

/// Client to server: forwarded as is, noting when the client asks for the binlog.
async fn forward_commands(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, dumping: watch::Sender<bool>) {
    let mut packets = Packets::default();
    let mut buffer = vec![0; 64 * 1024];
    while let Ok(read @ 1..) = from.read(&mut buffer).await {
        packets.pending.extend_from_slice(&buffer[..read]);
        while let Some(packet) = packets.next() {
            // A command is the first packet of its exchange (sequence number 0).
            if packet[3] == 0 && packet.get(4).is_some_and(|command| BINLOG_DUMP_COMMANDS.contains(command)) {
                dumping.send_replace(true);
            }
            if to.write_all(&packet).await.is_err() {
                return;
            }
        }
    }
    let _ = to.shutdown().await;
}

/// Server to client: forwarded, the first rows event of a binlog dump damaged.
async fn forward_replies(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, dumping: watch::Receiver<bool>) {
    let mut packets = Packets::default();
    let mut buffer = vec![0; 64 * 1024];
    let mut damaged = false;
    while let Ok(read @ 1..) = from.read(&mut buffer).await {
        packets.pending.extend_from_slice(&buffer[..read]);
        while let Some(mut packet) = packets.next() {
            let payload = &mut packet[4..];
            let is_rows_event = payload.len() > EVENT_SIZE_AT + 4
                && payload[0] == 0
                && WRITE_ROWS_EVENTS.contains(&payload[EVENT_TYPE_AT]);
            if !damaged && *dumping.borrow() && is_rows_event {
                let size = &mut payload[EVENT_SIZE_AT..EVENT_SIZE_AT + 4];
                let claimed = u32::from_le_bytes(size.try_into().expect("four bytes")) + CLAIMED_EXTRA_BYTES;
                size.copy_from_slice(&claimed.to_le_bytes());
                damaged = true;
            }
            if to.write_all(&packet).await.is_err() {
                return;
            }
        }
    }
    let _ = to.shutdown().await;
}
