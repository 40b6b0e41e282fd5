//! Records in object storage: `s3://bucket/prefix/` (every Parquet or CSV object under the
//! prefix, in key order, read as one dataset) or `s3://bucket/key.parquet` (one object).
//!
//! The endpoint, region, path style, timeouts and credentials are the model store's
//! (`models.s3`, the standard AWS credential chain). Listing and heads take at most
//! `timeout_ms` each; a download may take as long as it needs but fails when no byte arrives
//! for `timeout_ms`. Each object is streamed to a temporary file, read from there batch by
//! batch, and deleted: memory holds a batch, the disk one object.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;

use super::dataset::is_data_file as is_data;
use crate::config::{S3Settings, parse_s3_uri};
use crate::error::{Error, Result};

/// The objects of an `s3://` source.
pub struct S3Data {
    client: Client,
    bucket: String,
    prefix: String,
    endpoint: String,
    timeout: Duration,
}

impl S3Data {
    /// A client for `uri` (no request is made).
    pub fn connect(uri: &str, s: &S3Settings) -> Result<Self> {
        let (bucket, prefix) = parse_s3_uri(uri)?;
        // parse_s3_uri makes a prefix end in '/': a key keeps its own name.
        let named = uri.trim_start_matches("s3://").split_once('/').map(|x| x.1);
        let prefix = match named {
            Some(k) if is_data(k) => k.to_string(),
            _ => prefix,
        };
        let client = crate::s3::client(s, false);
        Ok(Self {
            client,
            bucket,
            prefix,
            endpoint: s
                .endpoint
                .clone()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| format!("AWS S3 ({})", s.region)),
            timeout: Duration::from_millis(s.timeout_ms.max(1)),
        })
    }

    /// `s3://bucket/key`.
    pub fn uri(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Source(format!(
            "{} at {}: {what}: {e}",
            self.uri(&self.prefix),
            self.endpoint
        ))
    }

    /// Runs one request within the timeout.
    fn call<T: Send + 'static>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = std::result::Result<T, String>> + Send + 'static,
    ) -> Result<T> {
        let timeout = self.timeout;
        match crate::rt::block_on(async move { tokio::time::timeout(timeout, fut).await }) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.fail(what, e)),
            Err(_) => Err(self.fail(what, format!("no answer within {} ms", timeout.as_millis()))),
        }
    }

    /// The data objects, in key order, with their sizes: the one named, or every Parquet or
    /// CSV object under the prefix. None at all is an error naming the prefix.
    pub fn objects(&self) -> Result<Vec<(String, u64)>> {
        if is_data(&self.prefix) {
            let req = self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(&self.prefix);
            let size = self.call("head", async move {
                req.send()
                    .await
                    .map(|o| o.content_length().unwrap_or(0).max(0) as u64)
                    .map_err(|e| DisplayErrorContext(e).to_string())
            })?;
            return Ok(vec![(self.prefix.clone(), size)]);
        }
        let mut objects =
            crate::s3::list_objects(&self.client, &self.bucket, &self.prefix, |req| {
                self.call("list", async move {
                    req.send()
                        .await
                        .map_err(|e| DisplayErrorContext(e).to_string())
                })
            })?;
        objects.retain(|(key, _)| is_data(key));
        objects.sort();
        if objects.is_empty() {
            return Err(Error::Source(format!(
                "{}: no Parquet or CSV objects (.parquet, .pq, .csv, .tsv, .txt)",
                self.uri(&self.prefix)
            )));
        }
        Ok(objects)
    }

    /// Streams object `key` into the file `dest` (created or truncated).
    pub fn download(&self, key: &str, dest: &Path) -> Result<()> {
        let req = self.client.get_object().bucket(&self.bucket).key(key);
        let path = dest.to_path_buf();
        let what = format!("get {}", self.uri(key));
        let done = crate::rt::block_on(async move {
            let out = req
                .send()
                .await
                .map_err(|e| DisplayErrorContext(e).to_string())?;
            let mut body = out.body;
            let mut file = std::io::BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?,
            );
            while let Some(bytes) = body
                .try_next()
                .await
                .map_err(|e| DisplayErrorContext(e).to_string())?
            {
                file.write_all(&bytes)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            file.flush().map_err(|e| format!("{}: {e}", path.display()))
        });
        done.map_err(|e| Error::Source(format!("{what} at {}: {e}", self.endpoint)))
    }
}
