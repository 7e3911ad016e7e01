//! A throwaway Azure Blob endpoint: Azurite (npm `azurite`, Microsoft's emulator; `scripts/test.sh` installs
//! it) on a free loopback port, in memory, with one container, stopped on drop.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};

use super::loopback::{free_port, wait_until_listening};

pub struct AzuriteServer {
    child: Child,
    port: u16,
    /// The blob service of the emulator's one account, `devstoreaccount1`, as Azure's clients address it.
    pub endpoint: String,
}

impl AzuriteServer {
    /// Starts the emulator and creates `container`.
    pub fn start(container: &str) -> AzuriteServer {
        let port = free_port();
        let child = Command::new("azurite-blob")
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--inMemoryPersistence", "--silent"])
            .arg("--skipApiVersionCheck")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("azurite-blob runs (scripts/test.sh installs it; or `npm install -g azurite`)");
        let server = AzuriteServer { child, port, endpoint: format!("http://127.0.0.1:{port}/devstoreaccount1") };
        wait_until_listening(port, "azurite-blob");
        let created = Command::new("python3")
            .args(["-c", &format!("{WITH_CONTAINER_CLIENT}container.create_container()"), &server.endpoint, container])
            .status()
            .expect("python3 with azure-storage-blob");
        assert!(created.success(), "cannot create container {container}");
        server
    }

    /// The environment the connector's Azure store reads for this endpoint.
    pub fn environment(&self) -> HashMap<String, String> {
        HashMap::from([
            ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
            ("AZURITE_BLOB_STORAGE_URL".into(), format!("http://127.0.0.1:{}", self.port)),
        ])
    }
}

/// A Python prelude (azure-storage-blob, Microsoft's client) binding `container` to container argv[2] of the
/// endpoint argv[1], with the emulator's well-known account key (published by Microsoft; not a secret).
pub const WITH_CONTAINER_CLIENT: &str = r#"
import sys
from azure.storage.blob import ContainerClient
container = ContainerClient(sys.argv[1], sys.argv[2], credential={"account_name": "devstoreaccount1",
    "account_key": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="})
"#;

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
