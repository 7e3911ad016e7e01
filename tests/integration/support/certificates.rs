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

/// A client certificate for `common_name` signed by the CA whose `ca.crt` and `ca.key` are in `dir` (as
/// `servers::write_test_certificates` writes them): `client.crt` and `client.key` in `dir`.
pub fn client_certificate(dir: &Path, common_name: &str) -> (PathBuf, PathBuf) {
    let steps: [Vec<String>; 2] = [
        ["req", "-new", "-nodes", "-subj", &format!("/CN={common_name}"), "-addext", "extendedKeyUsage=clientAuth"]
            .into_iter()
            .chain(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout", "client.key", "-out", "client.csr"])
            .map(String::from)
            .collect(),
        ["x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1"]
            .into_iter()
            .chain(["-copy_extensions", "copyall", "-out", "client.crt"])
            .map(String::from)
            .collect(),
    ];
    for step in steps {
        let status = Command::new("openssl")
            .current_dir(dir)
            .args(&step)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {step:?} failed");
    }
    (dir.join("client.crt"), dir.join("client.key"))
}
