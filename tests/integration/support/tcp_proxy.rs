//! A TCP proxy between the connector and a server (database or object store) that breaks the network on demand:
//! it can cut every open connection with a reset, as a failing link or a restarted load balancer does, or fall
//! silent, forwarding nothing and closing nothing, as a killed pod or a partition leaves connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// `host:port` of a URL, for a proxy in front of it.
pub fn address_of(url: &str) -> String {
    let url = url::Url::parse(url).expect("url");
    format!("{}:{}", url.host_str().expect("host"), url.port_or_known_default().expect("port"))
}

/// A `mysql://` URL that stays on TCP even to this machine: mysql_async otherwise moves a loopback connection
/// to the server's Unix socket (its `prefer_socket`), around any proxy on the way.
pub fn mysql_over_tcp(url: &str) -> String {
    let mut url = url::Url::parse(url).expect("url");
    url.query_pairs_mut().append_pair("prefer_socket", "false");
    url.to_string()
}

pub struct TcpProxy {
    pub port: u16,
    silent: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    connections: Arc<AtomicU64>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards each connection to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let silent = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0);
        let connections = Arc::new(AtomicU64::new(0));
        let proxy = TcpProxy { port, silent: silent.clone(), cuts: cuts.clone(), connections: connections.clone() };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                connections.fetch_add(1, Ordering::SeqCst);
                for stream in [&client, &server] {
                    // A zero linger makes closing send a reset, not an orderly end.
                    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
                }
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(client_read, server_write, silent.clone(), cuts.subscribe()));
                tokio::spawn(forward(server_read, client_write, silent.clone(), cuts.subscribe()));
            }
        });
        proxy
    }

    /// `url` with its port replaced by the proxy's.
    pub fn url_through(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("url");
        url.set_port(Some(self.port)).expect("port");
        url.to_string()
    }

    /// Resets every connection open now; later ones are forwarded again.
    pub fn cut(&self) {
        self.cuts.send_modify(|generation| *generation += 1);
    }

    pub fn fall_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    /// Connections forwarded so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to` until either side ends or the connection is cut (both halves dropped: a reset). Once
/// the proxy falls silent it holds both open, forwarding nothing.
async fn forward(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    silent: Arc<AtomicBool>,
    mut cuts: watch::Receiver<u64>,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read.unwrap_or(0),
            _ = cuts.changed() => return,
        };
        if silent.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if read == 0 || to.write_all(&buffer[..read]).await.is_err() {
            let _ = to.shutdown().await;
            return;
        }
    }
}
