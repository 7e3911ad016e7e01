//! SQL connections to the source (catalog reads, setup, snapshot copies), from the profile's URL, with TLS as
//! libpq's `sslmode` asks: `disable`, `prefer` (the default: TLS if the server offers it, else plaintext),
//! `require` (encrypted, certificate not checked, unless `sslrootcert` is given: then the chain is checked, as
//! libpq does), `verify-ca` (certificate chain checked) and `verify-full` (chain and host name checked);
//! `sslrootcert` names the CA file, else the Mozilla roots are trusted. The replication connection
//! ([`crate::config::PostgresConfig::replication`]) makes the same checks.

use std::sync::Arc;

use connector_core::error::{Error, Result};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::{Client, NoTls};
use tracing::debug;

use crate::catalog::source_error;
use crate::config::PostgresConfig;
use connector_core::tls::{Checks, TlsMode, TlsSettings, rustls_failure};

/// What to check when a connection fails, by the server's SQLSTATE; without one the server was not reached.
fn connection_fix(cause: &tokio_postgres::Error) -> &'static str {
    use tokio_postgres::error::SqlState;
    match cause.code() {
        Some(code) if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            "check the user and password in the URL, and the server's pg_hba.conf"
        }
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => "check the database named in the URL's path",
        Some(_) => "see the server's reason",
        None => "check the host and port in the URL, and that the server is running and accepts connections from here",
    }
}

/// Opens a SQL connection whose I/O runs on its own task; it closes when the client is dropped.
pub async fn connect(config: &PostgresConfig) -> Result<Client> {
    if config.connection.get_password().is_some() {
        let (host, port) = config.server();
        config.tls.warn_if_exposed(&host, port, None).await;
    }
    let failed = |cause: tokio_postgres::Error| match rustls_failure(&cause) {
        Some(detail) => config.tls.handshake_failed(&format!("cannot connect to {}", config.url.redacted()), detail),
        None => {
            let fix = connection_fix(&cause);
            source_error(format!("cannot connect to {} ({fix})", config.url.redacted()), cause)
        }
    };
    if config.tls.mode == TlsMode::Disabled {
        let (client, connection) = config.connection.connect(NoTls).await.map_err(failed)?;
        tokio::spawn(drive(connection));
        return Ok(client);
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(&config.tls)?);
    let (client, connection) = config.connection.connect(tls).await.map_err(failed)?;
    tokio::spawn(drive(connection));
    Ok(client)
}

/// Runs a connection's I/O until its client is dropped or the server goes away.
async fn drive(connection: impl Future<Output = std::result::Result<(), tokio_postgres::Error>>) {
    if let Err(error) = connection.await {
        debug!(%error, "source connection closed");
    }
}

fn client_config(settings: &TlsSettings) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &settings.ca {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|cause| {
                    Error::config(format!("sslrootcert {}: cannot read PEM certificates: {cause}", path.display()))
                })?;
            for certificate in certificates {
                roots
                    .add(certificate)
                    .map_err(|cause| Error::config(format!("sslrootcert {}: {cause}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|cause| Error::config(format!("cannot set up TLS certificate checks: {cause}")))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|cause| Error::config(format!("cannot set up TLS: {cause}")))?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CertificateChecks { checks: settings.checks(), verifier }))
        .with_no_client_auth())
}

#[derive(Debug)]
struct CertificateChecks {
    checks: Checks,
    verifier: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for CertificateChecks {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.checks {
            Checks::None => Ok(ServerCertVerified::assertion()),
            Checks::ChainAndName => {
                self.verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            Checks::Chain => {
                match self.verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
                    Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
                    | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
                        ..
                    })) => Ok(ServerCertVerified::assertion()),
                    other => other,
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier.supported_verify_schemes()
    }
}
