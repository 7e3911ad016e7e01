//! A throwaway S3-compatible endpoint: the `moto` server (PyPI `moto[server]`) on a free loopback port,
//! with one bucket, stopped on drop.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};

use super::loopback::{free_port, wait_until_listening};

pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl S3Server {
    /// Starts the server and creates `bucket`.
    pub fn start(bucket: &str) -> S3Server {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (install it with `pip install 'moto[server]'`)");
        let server = S3Server { child, endpoint: format!("http://127.0.0.1:{port}") };
        wait_until_listening(port, "moto_server");
        let created = Command::new("python3")
            .args([
                "-c",
                "import sys, boto3; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', \
                 aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket=sys.argv[2])",
                &server.endpoint,
                bucket,
            ])
            .status()
            .expect("python3 with boto3");
        assert!(created.success(), "cannot create bucket {bucket}");
        server
    }

    /// The options the sink and readers need for this endpoint.
    pub fn storage_options(&self) -> HashMap<String, String> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
