//! A TCP forwarder on this machine's network address (not loopback), so that a connection through it is, as
//! far as the connector can tell, to another machine: what the plaintext and unverified-TLS warnings are about.

use std::net::{IpAddr, UdpSocket};

use tokio::net::{TcpListener, TcpStream};

/// Forwards every connection to `upstream` (`host:port`) until the test process ends, on a thread of its own
/// (tests block their runtime while the connector runs). Returns the address and port to connect to instead.
pub fn forward_from_network_address(upstream: String) -> (IpAddr, u16) {
    let address = network_address();
    let listener = std::net::TcpListener::bind((address, 0)).expect("bind the network address");
    let port = listener.local_addr().expect("bound address").port();
    listener.set_nonblocking(true).expect("non-blocking listener");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = TcpListener::from_std(listener).expect("listener");
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = TcpStream::connect(&upstream).await else { continue };
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
    });
    (address, port)
}

/// The address this machine sends from on its default route. Connecting a UDP socket sends nothing; it only
/// picks the route (203.0.113.1 is a documentation address, never a real host).
fn network_address() -> IpAddr {
    let socket = UdpSocket::bind("0.0.0.0:0").expect("bind a UDP socket");
    socket
        .connect("203.0.113.1:9")
        .expect("these tests need a network interface with a default route (not only loopback)");
    let address = socket.local_addr().expect("local address").ip();
    assert!(!address.is_loopback(), "the default route leaves from a loopback address: {address}");
    address
}
