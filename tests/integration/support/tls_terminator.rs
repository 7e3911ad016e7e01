//! A TLS listener in front of a plain TCP server, as a load balancer or a sidecar ends TLS for a broker: for
//! brokers whose own TLS the tests cannot use (tansu 0.6 reads `--cert` and `--key` but never wraps its
//! listener). Kafka's TLS is transport only, so the client sees what a TLS listener of Apache Kafka shows it.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

pub struct TlsTerminator {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TlsTerminator {
    /// Listens on a free loopback port, presenting `certificate` (PEM, with `key`), and forwards each
    /// connection's plain bytes to `upstream` (`host:port`). With `client_authority` (a PEM CA certificate), only
    /// clients presenting a certificate it signed are let through (mutual TLS).
    pub async fn start(certificate: &Path, key: &Path, client_authority: Option<&Path>, upstream: String) -> Self {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
            .expect("read the certificate")
            .collect::<Result<_, _>>()
            .expect("a PEM certificate");
        let key = PrivateKeyDer::from_pem_file(key).expect("a PEM private key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("TLS versions");
        let builder = match client_authority {
            None => builder.with_no_client_auth(),
            Some(authority) => {
                let mut roots = rustls::RootCertStore::empty();
                for certificate in CertificateDer::pem_file_iter(authority).expect("read the authority") {
                    roots.add(certificate.expect("a PEM certificate")).expect("a CA certificate");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .expect("a client certificate verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(chain, key).expect("the certificate and its key");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    // A client that does not speak TLS, or distrusts the certificate, ends here.
                    let Ok(mut client) = acceptor.accept(client).await else { return };
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        TlsTerminator { port, task }
    }
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        self.task.abort();
    }
}
