//! Where a table's files are: a local directory or file, or an object-store prefix (`s3://bucket/prefix/`),
//! opened through `object_store` with the store's usual environment credentials.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

use connector_core::error::{Error, Result};

/// The error of a store that cannot be opened, naming where its credentials come from.
fn cannot_open(text: &str, credentials: &str, cause: object_store::Error) -> Error {
    Error::config(format!("cannot open `{text}`; check {credentials}")).caused_by(cause)
}

/// The root URL of an Azure location and the key prefix below it. The container is in the host (`az://c/…`,
/// `abfss://c@account.dfs.core.windows.net/…` keeps the account in the root) or, for `https://account.blob…/c/…`,
/// the first segment of the path.
fn azure_root(url: &Url) -> (String, &str) {
    let host = url.host_str().unwrap_or_default();
    let user = url.username();
    if url.scheme() == "https" {
        let path = url.path().trim_start_matches('/');
        let (container, below) = path.split_once('/').unwrap_or((path, ""));
        (format!("https://{host}/{container}/"), below)
    } else if user.is_empty() {
        (format!("{}://{host}/", url.scheme()), url.path())
    } else {
        (format!("{}://{user}@{host}/", url.scheme()), url.path())
    }
}

/// The files' store, and the prefix under which they are listed.
#[derive(Debug, Clone)]
pub struct FileLocation {
    pub store: Arc<dyn ObjectStore>,
    /// Listed recursively.
    pub prefix: Path,
    /// The URL of the store's root, which a file's path is appended to: `file:///`, `s3://bucket/`,
    /// `az://container/`.
    root: String,
    /// The one file to take, when the location names a file rather than a directory.
    single_file: Option<Path>,
}

impl FileLocation {
    /// Parses a local path (`./landing`, `/data/orders.csv`, `file:///data/`) or an object-store prefix:
    /// `s3://bucket/prefix/`, `gs://bucket/prefix/`, `az://container/prefix/` (and Azure's other URL forms).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        match Url::parse(text) {
            Ok(url) if url.scheme() == "file" => {
                let path = url.to_file_path().map_err(|()| Error::config(format!("`{text}` is not a local path")))?;
                Self::local(&path, text)
            }
            Ok(url) if url.scheme().len() > 1 => Self::remote(&url, text),
            // No scheme, or a Windows drive letter: a local path.
            _ => Self::local(std::path::Path::new(text), text),
        }
    }

    fn local(path: &std::path::Path, text: &str) -> Result<Self> {
        let absolute = std::fs::canonicalize(path).map_err(|cause| {
            Error::config(format!(
                "cannot read the files at `{text}`; give --path (`path`) an existing directory or file"
            ))
            .caused_by(cause)
        })?;
        let (directory, single_file) = if absolute.is_dir() {
            (absolute, None)
        } else {
            let parent = absolute.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
            let file = Path::from_absolute_path(&absolute)
                .map_err(|cause| Error::config(format!("`{text}` is not a usable path")).caused_by(cause))?;
            (parent, Some(file))
        };
        let prefix = Path::from_absolute_path(&directory)
            .map_err(|cause| Error::config(format!("`{text}` is not a usable path")).caused_by(cause))?;
        Ok(FileLocation { store: Arc::new(LocalFileSystem::new()), prefix, root: "file:///".into(), single_file })
    }

    fn remote(url: &Url, text: &str) -> Result<Self> {
        let (store, root, key_prefix): (Arc<dyn ObjectStore>, String, &str) = match url.scheme() {
            "s3" | "s3a" => {
                let bucket = url.host_str().unwrap_or_default();
                let store = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|cause| cannot_open(text, "the AWS_* environment variables", cause))?;
                (Arc::new(store), format!("{}://{bucket}/", url.scheme()), url.path())
            }
            "gs" => {
                let bucket = url.host_str().unwrap_or_default();
                let store = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|cause| cannot_open(text, "GOOGLE_APPLICATION_CREDENTIALS", cause))?;
                (Arc::new(store), format!("gs://{bucket}/"), url.path())
            }
            "az" | "azure" | "abfs" | "abfss" | "https" => {
                let store = MicrosoftAzureBuilder::from_env().with_url(url.as_str()).build().map_err(|cause| {
                    cannot_open(
                        text,
                        "the AZURE_* environment variables (az:// takes its account from AZURE_STORAGE_ACCOUNT_NAME)",
                        cause,
                    )
                })?;
                let (root, key_prefix) = azure_root(url);
                (Arc::new(store), root, key_prefix)
            }
            other => {
                return Err(Error::config(format!(
                    "files at `{other}://` are not supported; use a local path, s3://bucket/prefix/, \
                     gs://bucket/prefix/ or az://container/prefix/ (abfss://container@account.dfs.core.windows.net/…)"
                )));
            }
        };
        let prefix = Path::from_url_path(key_prefix)
            .map_err(|cause| Error::config(format!("`{text}` is not a usable object key prefix")).caused_by(cause))?;
        Ok(FileLocation { store, prefix, root, single_file: None })
    }

    /// Whether the file named `url` is in this location's store.
    pub fn holds(&self, url: &str) -> bool {
        url.starts_with(&self.root)
    }

    /// The URL a file at `location` is named by.
    pub fn url_of(&self, location: &Path) -> String {
        format!("{}{}", self.root, location)
    }

    /// The store's path of a file named by [`url_of`](Self::url_of).
    pub fn path_of(&self, url: &str) -> Result<Path> {
        let relative = url
            .strip_prefix(&self.root)
            .ok_or_else(|| Error::state(format!("internal: {url} is not under {}", self.root)))?;
        Path::parse(relative)
            .map_err(|cause| Error::state(format!("internal: {url} is not a store path")).caused_by(cause))
    }

    /// The store path of object `key` of S3 bucket `bucket` (as an S3 event names it), when the object is in
    /// this location: in its bucket, below its prefix.
    pub fn object_in_bucket(&self, bucket: &str, key: &str) -> Option<Path> {
        let path = Path::parse(key).ok()?;
        (self.s3_bucket() == Some(bucket) && path.prefix_matches(&self.prefix)).then_some(path)
    }

    /// The bucket of an S3 location; `None` for local files and other stores.
    pub fn s3_bucket(&self) -> Option<&str> {
        let (scheme, rest) = self.root.split_once("://")?;
        matches!(scheme, "s3" | "s3a").then(|| rest.trim_end_matches('/'))
    }

    /// Whether `other` is in the same store (the same bucket, container or local file system).
    pub fn same_store(&self, other: &FileLocation) -> bool {
        self.root == other.root
    }

    /// The file this location names, if it names one file.
    pub fn single_file(&self) -> Option<&Path> {
        self.single_file.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The root a location names its files by, and the prefix listed, of each URL form.
    #[test]
    fn each_stores_url_forms_give_the_root_files_are_named_by_and_the_prefix_listed() {
        let cases = [
            ("s3://landing/orders/", "s3://landing/orders/a.csv", "orders"),
            ("gs://landing/orders/", "gs://landing/orders/a.csv", "orders"),
            (
                "abfss://landing@account.dfs.core.windows.net/orders/",
                "abfss://landing@account.dfs.core.windows.net/orders/a.csv",
                "orders",
            ),
            (
                "https://account.blob.core.windows.net/landing/orders/",
                "https://account.blob.core.windows.net/landing/orders/a.csv",
                "orders",
            ),
        ];
        for (url, file, prefix) in cases {
            let location = FileLocation::parse(url).unwrap_or_else(|error| panic!("{url}: {error}"));
            assert_eq!(location.prefix.as_ref(), prefix, "{url}");
            let path = location.path_of(file).unwrap_or_else(|error| panic!("{url}: {error}"));
            assert_eq!(path.as_ref(), "orders/a.csv", "{url}: the store's path of {file}");
            assert_eq!(location.url_of(&path), file, "{url}: a file is named as the URL it came from");
            assert!(location.holds(file), "{url}");
        }
    }

    #[test]
    fn stores_are_told_apart_by_root_and_only_s3_has_a_notified_bucket() {
        let s3 = FileLocation::parse("s3://landing/orders/").expect("s3");
        let gcs = FileLocation::parse("gs://landing/orders/").expect("gcs");
        let archive = FileLocation::parse("s3://landing/archive/").expect("s3");
        assert!(s3.same_store(&archive), "one bucket");
        assert!(!s3.same_store(&gcs), "a GCS bucket of the same name is another store");
        assert_eq!(s3.s3_bucket(), Some("landing"));
        assert_eq!(gcs.s3_bucket(), None);
        assert_eq!(
            s3.object_in_bucket("landing", "orders/a.csv").map(|path| path.to_string()),
            Some("orders/a.csv".into())
        );
        assert!(s3.object_in_bucket("landing", "other/a.csv").is_none(), "outside the prefix");
        assert!(gcs.object_in_bucket("landing", "orders/a.csv").is_none(), "S3 events name S3 objects");

        // `az://` names no account: it comes from AZURE_STORAGE_ACCOUNT_NAME (or is the emulator's).
        if std::env::var_os("AZURE_STORAGE_ACCOUNT_NAME").is_none() {
            let error = FileLocation::parse("az://landing/orders/").expect_err("no account");
            assert!(error.to_string().contains("AZURE_*"), "{error}");
        }
        let error = FileLocation::parse("ftp://host/orders/").expect_err("not a store");
        assert!(error.to_string().contains("gs://bucket/prefix/"), "{error}");
    }
}
