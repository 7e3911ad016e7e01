//! Files in Google Cloud Storage and Azure Blob Storage land once each, through the same `object_store`
//! clients deltalake builds, configured from the stores' usual environment variables. Azure is Microsoft's own
//! emulator (Azurite). For GCS no emulator installs here (fake-gcs-server needs Go; PyPI's gcp-storage-emulator
//! serves only the JSON API): `object_store` speaks GCS's XML API, which Google documents as interoperable with
//! S3's, so moto's S3 server stands in for it, unsigned (`GOOGLE_SKIP_SIGNATURE`, objects readable by anyone).
//! That tests the connector's GCS wiring (URLs, environment, listing, reading), not GCS itself.

use std::process::{Command, Output};

use crate::files::{assert_synced, python, rows_per_file, table_url};
use crate::support::azurite::{AzuriteServer, WITH_CONTAINER_CLIENT};
use crate::support::delta::{TempLake, read_rows};
use crate::support::s3::S3Server;

const CONNECTOR: &str = env!("CARGO_BIN_EXE_connector");

/// `connector` with `args` and the environment `environment`.
fn connector(args: &[&str], lake: &TempLake, environment: &std::collections::HashMap<String, String>) -> Output {
    Command::new(CONNECTOR)
        .args(args)
        .args(["--dest", lake.dir.path().to_str().expect("utf-8")])
        .envs(environment)
        .output()
        .expect("run connector")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_a_gcs_bucket_land_once() {
    let server = S3Server::start("landing");
    let lake = TempLake::new();
    let put = r#"
import boto3, sys
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="test",
                  aws_secret_access_key="test")
for day in sys.argv[2:]:
    body = "id,day\n" + "".join(f"{int(day) * 100 + i},{day}\n" for i in range(100))
    s3.put_object(Bucket="landing", Key=f"orders/day={day}/part-0.csv", Body=body.encode(), ACL="public-read")
s3.put_object(Bucket="landing", Key="other/skip.csv", Body=b"id\n1\n", ACL="public-read")
"#;
    python(put, &[&server.endpoint, "0", "1"]);
    let environment = [
        ("GOOGLE_BASE_URL", server.endpoint.as_str()),
        ("GOOGLE_SKIP_SIGNATURE", "true"),
        ("GOOGLE_ALLOW_HTTP", "true"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect();
    let sync = ["sync", "files", "--path", "gs://landing/orders/", "--table", "raw.orders", "--once"];
    assert_synced(&connector(&sync, &lake, &environment));
    python(put, &[&server.endpoint, "2"]);
    assert_synced(&connector(&sync, &lake, &environment));
    assert_synced(&connector(&sync, &lake, &environment));

    let url = table_url(&lake, "orders");
    let per_file = rows_per_file(&url).await;
    let expected: Vec<String> = (0..3).map(|day| format!("gs://landing/orders/day={day}/part-0.csv")).collect();
    assert_eq!(per_file.keys().cloned().collect::<Vec<_>>(), expected, "{per_file:?}");
    assert!(per_file.values().all(|&rows| rows == 100), "each file once: {per_file:?}");
    assert_eq!(read_rows(&url, &["id"]).await.len(), 300);

    let output =
        connector(&["load", "gs://landing/orders/day=1/part-0.csv", "--table", "raw.loaded"], &lake, &environment);
    assert_synced(&output);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("raw.loaded: 100 rows from 1 files"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_an_azure_container_land_once_and_are_cleaned_after_their_commit() {
    let server = AzuriteServer::start("landing");
    let lake = TempLake::new();
    let upload = format!(
        r#"{WITH_CONTAINER_CLIENT}
for day in sys.argv[3:]:
    lines = "".join(f'{{{{"id": {{int(day) * 100 + i}}, "day": {{day}}}}}}\n' for i in range(100))
    container.upload_blob(f"orders/day={{day}}/part-0.jsonl", lines.encode())
container.upload_blob("other/skip.jsonl", b'{{"id": 1}}\n', overwrite=True)
"#
    );
    python(&upload, &[&server.endpoint, "landing", "0", "1"]);
    let environment = server.environment();
    let sync = ["sync", "files", "--path", "az://landing/orders/", "--table", "raw.orders", "--once"];
    assert_synced(&connector(&sync, &lake, &environment));
    python(&upload, &[&server.endpoint, "landing", "2"]);
    let cleaning = ["--clean-source", "move", "--clean-source-move-to", "az://landing/archive/"];
    let cleaning = [&sync[..], &cleaning[..], &["--clean-source-retention", "0s"]].concat();
    assert_synced(&connector(&cleaning, &lake, &environment));
    assert_synced(&connector(&cleaning, &lake, &environment));

    let url = table_url(&lake, "orders");
    let per_file = rows_per_file(&url).await;
    let expected: Vec<String> = (0..3).map(|day| format!("az://landing/orders/day={day}/part-0.jsonl")).collect();
    assert_eq!(per_file.keys().cloned().collect::<Vec<_>>(), expected, "{per_file:?}");
    assert!(per_file.values().all(|&rows| rows == 100), "each file once: {per_file:?}");
    assert_eq!(read_rows(&url, &["id"]).await.len(), 300);

    let listed = python(
        &format!("{WITH_CONTAINER_CLIENT}\nfor blob in container.list_blobs(): print(blob.name)"),
        &[&server.endpoint, "landing"],
    );
    let mut names: Vec<&str> = listed.lines().collect();
    names.sort_unstable();
    let archived = ["archive/day=0/part-0.jsonl", "archive/day=1/part-0.jsonl", "archive/day=2/part-0.jsonl"];
    assert_eq!(names, [&archived[..], &["other/skip.jsonl"]].concat(), "moved only once committed");

    // Azure's Hadoop-style URL names the account and container.
    let abfss = "abfss://landing@devstoreaccount1.dfs.core.windows.net/archive/day=2/part-0.jsonl";
    let output = connector(&["load", abfss, "--table", "raw.loaded"], &lake, &environment);
    assert_synced(&output);
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("raw.loaded: 100 rows from 1 files"), "{printed}");
    let per_file = rows_per_file(&table_url(&lake, "loaded")).await;
    assert_eq!(per_file.keys().cloned().collect::<Vec<_>>(), [abfss.to_string()], "{per_file:?}");
}
