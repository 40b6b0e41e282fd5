//! The S3 model store (any S3-compatible API: AWS, MinIO, moto …), behind the same
//! [`ModelStore`] interface as the local directory.
//!
//! Layout under `s3://BUCKET/PREFIX/`:
//! - `versions/<version>/model.onnx`, `versions/<version>/manifest.json`, then
//!   `versions/<version>/COMPLETE`, written last: a version is listed (and can be made
//!   current) only once its marker exists, so an upload cut off half way is never visible;
//! - `CURRENT` (the current version id) and `HISTORY` (the versions that were current).
//!
//! Credentials come from the standard AWS chain (`AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` in the environment or a `.env` file, a profile, an instance role),
//! never from the settings files. Every call has a connect timeout and an overall timeout,
//! so an unreachable endpoint is an error naming it within seconds.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;

use super::{ModelStore, check_version};
use crate::config::{S3Settings, parse_s3_uri};
use crate::error::{Error, Result};
pub use crate::s3::client;
use crate::s3::list_objects;

const MARKER: &str = "COMPLETE";

pub struct S3Store {
    client: Client,
    bucket: String,
    /// "" or "some/prefix/".
    prefix: String,
    endpoint: String,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl S3Store {
    /// A client for `uri` with the endpoint, region and path style of `settings`. Makes no
    /// request: an unreachable store shows at the first call.
    pub fn connect(uri: &str, settings: &S3Settings) -> Result<Self> {
        let (bucket, prefix) = parse_s3_uri(uri)?;
        let client = client(settings, true);
        Ok(Self {
            client,
            bucket,
            prefix,
            endpoint: settings
                .endpoint
                .clone()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| format!("AWS S3 ({})", settings.region)),
        })
    }

    /// Creates the bucket unless it exists (for a fresh S3-compatible store).
    pub fn ensure_bucket(&self) -> Result<()> {
        let head = self.client.head_bucket().bucket(&self.bucket);
        if crate::rt::block_on(async move { head.send().await }).is_ok() {
            return Ok(());
        }
        let create = self.client.create_bucket().bucket(&self.bucket);
        crate::rt::block_on(async move { create.send().await })
            .map(|_| ())
            .map_err(|e| self.fail("create the bucket", e))
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn version_key(&self, version: &str, file: &str) -> String {
        self.key(&format!("versions/{version}/{file}"))
    }

    fn fail(&self, what: &str, e: impl std::error::Error) -> Error {
        Error::Store(format!(
            "{} at {}: {what}: {}",
            self.describe(),
            self.endpoint,
            DisplayErrorContext(e)
        ))
    }

    /// The object's bytes; None when there is no such key.
    fn fetch(&self, key: String) -> Result<Option<Vec<u8>>> {
        Ok(self.fetch_tagged(key)?.map(|(bytes, _)| bytes))
    }

    /// An object and its ETag.
    fn fetch_tagged(&self, key: String) -> Result<Option<(Vec<u8>, String)>> {
        let req = self.client.get_object().bucket(&self.bucket).key(&key);
        let out = crate::rt::block_on(async move {
            match req.send().await {
                Ok(o) => {
                    let tag = o.e_tag().unwrap_or_default().to_string();
                    match o.body.collect().await {
                        Ok(b) => Ok(Some((b.into_bytes().to_vec(), tag))),
                        Err(e) => Err(Err(e)),
                    }
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                Err(e) => Err(Ok(e)),
            }
        });
        match out {
            Ok(found) => Ok(found),
            Err(Ok(e)) => Err(self.fail(&format!("get {key}"), e)),
            Err(Err(e)) => Err(self.fail(&format!("read {key}"), e)),
        }
    }

    /// A conditional put: `If-Match: <expected>`, or `If-None-Match: *` when the object is
    /// expected not to exist. False when the condition failed (412, or 409 for a concurrent
    /// conditional write).
    fn store_if(&self, key: String, bytes: Vec<u8>, expected: Option<&str>) -> Result<bool> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(bytes));
        req = match expected {
            Some(tag) => req.if_match(tag),
            None => req.if_none_match("*"),
        };
        match crate::rt::block_on(async move { req.send().await }) {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.raw_response().map(|r| r.status().as_u16()),
                    Some(412 | 409)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.fail(&format!("conditional put {key}"), e)),
        }
    }

    fn store(&self, key: String, bytes: Vec<u8>) -> Result<()> {
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(bytes));
        crate::rt::block_on(async move { req.send().await })
            .map(|_| ())
            .map_err(|e| self.fail(&format!("put {key}"), e))
    }

    fn exists(&self, key: String) -> Result<bool> {
        let req = self.client.head_object().bucket(&self.bucket).key(&key);
        match crate::rt::block_on(async move { req.send().await }) {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(self.fail(&format!("head {key}"), e)),
        }
    }

    /// Every key under `prefix`.
    fn list(&self, prefix: String) -> Result<Vec<String>> {
        let objects = list_objects(&self.client, &self.bucket, &prefix, |req| {
            crate::rt::block_on(async move { req.send().await })
                .map_err(|e| self.fail(&format!("list {prefix}"), e))
        })?;
        Ok(objects.into_iter().map(|(key, _)| key).collect())
    }
}

impl ModelStore for S3Store {
    /// Listing a bucket costs requests: `CURRENT` is trusted as written unless it is unusable.
    fn lists_versions(&self) -> bool {
        false
    }

    fn put(&self, version: &str, files: &[(&str, &[u8])]) -> Result<()> {
        check_version(version)?;
        let marker = self.version_key(version, MARKER);
        if self.exists(marker.clone())? {
            return Err(Error::Store(format!(
                "{}/{version} already exists",
                self.describe()
            )));
        }
        for (name, bytes) in files {
            self.store(self.version_key(version, name), bytes.to_vec())?;
        }
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        self.store(marker, (names.join("\n") + "\n").into_bytes())
    }

    fn get(&self, version: &str, file: &str) -> Result<Vec<u8>> {
        check_version(version)?;
        let key = self.version_key(version, file);
        self.fetch(key.clone())?
            .ok_or_else(|| Error::Store(format!("{}: no object {key}", self.describe())))
    }

    fn versions(&self) -> Result<Vec<String>> {
        let root = self.key("versions/");
        let mut out: Vec<String> = self
            .list(root.clone())?
            .into_iter()
            .filter_map(|k| {
                let rest = k.strip_prefix(&root)?;
                let (version, file) = rest.split_once('/')?;
                (file == MARKER && check_version(version).is_ok()).then(|| version.to_string())
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn read_pointer(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .fetch(self.key(name))?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    fn write_pointer(&self, name: &str, text: &str) -> Result<()> {
        // One PUT replaces the object whole: readers see the old pointer or the new one.
        self.store(self.key(name), text.as_bytes().to_vec())
    }

    fn read_pointer_tagged(&self, name: &str) -> Result<Option<(String, String)>> {
        Ok(self
            .fetch_tagged(self.key(name))?
            .map(|(b, tag)| (String::from_utf8_lossy(&b).into_owned(), tag)))
    }

    fn write_pointer_if(&self, name: &str, text: &str, expected: Option<&str>) -> Result<bool> {
        self.store_if(self.key(name), text.as_bytes().to_vec(), expected)
    }

    fn list_pointers(&self, prefix: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .list(self.key(prefix))?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.prefix).map(String::from))
            .collect();
        names.sort();
        Ok(names)
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_s3_uri("s3://models-bucket").unwrap(),
            ("models-bucket".into(), String::new())
        );
        assert_eq!(
            parse_s3_uri("s3://models-bucket/team/cc/").unwrap(),
            ("models-bucket".into(), "team/cc/".into())
        );
        for bad in ["models", "s3://", "s3://A_B/x", "s3://ab"] {
            assert!(parse_s3_uri(bad).is_err(), "{bad}");
        }
    }
}
