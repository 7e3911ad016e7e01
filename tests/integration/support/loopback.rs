//! Servers the tests start on loopback: a free port for one, and the wait until it listens.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|socket| socket.local_addr()).expect("free port").port()
}

/// Waits until `server` listens on `port`, failing the test after 30 s.
pub fn wait_until_listening(port: u16, server: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{server} did not listen on {port} within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}
