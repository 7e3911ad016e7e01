//! Where a table lives: `<dest>/<namespace>/<table>`, with `<dest>` a local path or an object-store URL.

use std::path::Path;

use url::Url;

use crate::error::{Error, Result};
use crate::schema::TableId;

/// The root every table of a pipeline is written under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    root: Url,
}

impl Destination {
    /// Parses `./lake`, `/data/lake`, `file:///data/lake` or `s3://bucket/prefix`. A local directory is
    /// created if missing so a typo in a parent path fails here, not at the first commit.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::config(
                "the destination is empty: give a local path (./lake) or a URL (s3://bucket/lake)",
            ));
        }
        let root = match Url::parse(text) {
            Ok(url) if url.scheme().len() > 1 => url,
            // No scheme, or a Windows drive letter: a local path.
            _ => {
                let path = Path::new(text);
                std::fs::create_dir_all(path).map_err(|cause| {
                    Error::config(format!(
                        "cannot create the destination directory `{text}`; give --dest (`dest` in pipelines.toml) a \
                         directory, or a path where one can be created"
                    ))
                    .caused_by(cause)
                })?;
                let absolute = std::fs::canonicalize(path).map_err(|cause| {
                    Error::config(format!("cannot resolve the destination directory `{text}`")).caused_by(cause)
                })?;
                Url::from_directory_path(&absolute).map_err(|()| {
                    Error::config(format!("destination `{}` is not an absolute directory", absolute.display()))
                })?
            }
        };
        match root.scheme() {
            "file" | "s3" | "s3a" | "memory" => {}
            other => {
                return Err(Error::config(format!(
                    "destination scheme `{other}://` is not supported; use a local path, file:// or s3://"
                )));
            }
        }
        Ok(Destination { root })
    }

    pub fn url(&self) -> &Url {
        &self.root
    }

    /// The URL of one table's Delta directory.
    pub fn table_url(&self, table: &TableId) -> Result<Url> {
        let mut url = self.root.clone();
        let mut path = url.path().trim_end_matches('/').to_string();
        for segment in [&table.namespace, &table.name] {
            if segment.is_empty() || segment == "." || segment == ".." || segment.contains('/') {
                return Err(Error::config(format!(
                    "`{table}` cannot name a directory: `{segment}` is empty, `.`/`..` or contains `/`"
                )));
            }
            path.push('/');
            path.push_str(&url_path_segment(segment));
        }
        path.push('/');
        url.set_path(&path);
        Ok(url)
    }
}

/// Percent-encodes what a URL path segment cannot hold, keeping readable names readable.
fn url_path_segment(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'$') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_become_file_urls_per_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = dir.path().join("lake");
        let destination = Destination::parse(lake.to_str().expect("utf-8 path")).expect("valid destination");
        let url = destination.table_url(&TableId::new("public", "order items")).expect("valid table");
        assert_eq!(url.scheme(), "file");
        assert!(url.path().ends_with("/lake/public/order%20items/"), "{url}");
        assert!(lake.is_dir());
    }

    #[test]
    fn object_store_urls_keep_their_prefix() {
        let destination = Destination::parse("s3://bucket/warehouse").expect("valid destination");
        let url = destination.table_url(&TableId::new("shop", "orders")).expect("valid table");
        assert_eq!(url.as_str(), "s3://bucket/warehouse/shop/orders/");
    }

    #[test]
    fn unsupported_schemes_are_named() {
        let error = Destination::parse("ftp://host/lake").expect_err("unsupported");
        assert!(error.to_string().contains("ftp://"), "{error}");
    }
}
