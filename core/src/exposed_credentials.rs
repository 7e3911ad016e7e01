//! One warning per server when a password travels where someone on the network path could read it (plaintext)
//! or intercept it (TLS without certificate checks, which anyone in the middle can terminate). Loopback
//! servers are left alone: nothing on the wire between.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;

use tracing::warn;

/// How a connection's credentials could be read by someone between the connector and the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// No TLS at all.
    Plaintext,
    /// TLS whose certificate is not checked: encrypted, but to whoever answers.
    Unverified,
    /// TLS if the server offers it, without checks, else plaintext (libpq's `prefer`, the outcome unknown).
    UnverifiedOrPlaintext,
}

impl fmt::Display for Exposure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Exposure::Plaintext => "in plaintext",
            Exposure::Unverified => "over TLS without checking the server's certificate",
            Exposure::UnverifiedOrPlaintext => {
                "over TLS without checking the server's certificate, or in plaintext if the server offers no TLS"
            }
        })
    }
}

/// Servers already warned about, so a pipeline opening many connections (copies, reconnects) warns once.
static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Warns once per `host:port` that credentials go there `exposure`, naming `fix` (the setting to change),
/// unless the host is this machine. `host` is the URL's host: a name, an address or a Unix socket path.
pub async fn warn_once(host: &str, port: u16, exposure: Exposure, fix: &str) {
    let target = format!("{host}:{port}");
    if already_warned(&target) || is_loopback(host, port).await {
        return;
    }
    let mut warned = WARNED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if warned.insert(target.clone()) {
        warn!(server = %target, "credentials go to {target} {exposure}; {fix}");
    }
}

fn already_warned(target: &str) -> bool {
    WARNED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).contains(target)
}

/// Whether every address `host` names is a loopback address (or a Unix socket), so no network is crossed.
/// A name that does not resolve counts as remote: its connection fails anyway, with its own error.
async fn is_loopback(host: &str, port: u16) -> bool {
    if host.starts_with('/') || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(address) = bare.parse::<IpAddr>() {
        return address.is_loopback();
    }
    match tokio::net::lookup_host((bare, port)).await {
        Ok(addresses) => {
            let addresses: Vec<_> = addresses.collect();
            !addresses.is_empty() && addresses.iter().all(|address| address.ip().is_loopback())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_hosts_are_this_machine_and_others_are_not() {
        for host in ["localhost", "127.0.0.1", "127.0.0.2", "::1", "[::1]", "/var/run/postgresql"] {
            assert!(is_loopback(host, 5432).await, "{host}");
        }
        for host in ["192.0.2.10", "10.1.2.3", "2001:db8::1", "db.invalid"] {
            assert!(!is_loopback(host, 5432).await, "{host}");
        }
    }
}
