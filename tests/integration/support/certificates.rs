//! Certificates the TLS tests present to the connector besides the servers' own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A throwaway CA's certificate (its key beside it) in `dir`, named `common_name`: an authority the test servers'
/// certificates do not come from.
pub fn certificate_of_another_authority(dir: &Path, common_name: &str) -> PathBuf {
    let status = Command::new("openssl")
        .args(["req", "-new", "-x509", "-days", "1", "-nodes", "-subj", &format!("/CN={common_name}"), "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl could not make a CA certificate");
    dir.join("cert.pem")
}
