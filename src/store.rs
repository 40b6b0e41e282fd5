//! The model store: model versions (each a `model.onnx` + `manifest.json`) and which one is
//! current. The local store is a directory: `<dir>/<version>/…` and `<dir>/CURRENT` holding
//! the current version's id. Every write lands under a temporary name and is renamed into
//! place, so a reader never sees half a model or half a pointer.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const MODEL_FILE: &str = "model.onnx";
pub const MANIFEST_FILE: &str = "manifest.json";
const CURRENT_FILE: &str = "CURRENT";

/// Where model versions live. Implemented by the local directory store (and an S3 bucket).
pub trait ModelStore: Send + Sync {
    /// Stores the files of a new version; fails if the version exists.
    fn put(&self, version: &str, files: &[(&str, &[u8])]) -> Result<()>;
    /// One file of a version.
    fn get(&self, version: &str, file: &str) -> Result<Vec<u8>>;
    /// The current version, if any.
    fn current(&self) -> Result<Option<String>>;
    /// Marks `version` (which must exist) current.
    fn set_current(&self, version: &str) -> Result<()>;
    /// All versions, oldest first (version ids sort by creation time).
    fn versions(&self) -> Result<Vec<String>>;
    /// Where the store is, for messages.
    fn describe(&self) -> String;
}

/// A version id must be a plain name: no separators, nothing hidden.
pub fn check_version(version: &str) -> Result<()> {
    let ok = !version.is_empty()
        && version.len() <= 128
        && !version.starts_with('.')
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Store(format!(
            "'{version}' is not a valid model version id"
        )))
    }
}

#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of one version.
    pub fn version_dir(&self, version: &str) -> PathBuf {
        self.dir.join(version)
    }
}

impl ModelStore for LocalStore {
    fn put(&self, version: &str, files: &[(&str, &[u8])]) -> Result<()> {
        check_version(version)?;
        let target = self.version_dir(version);
        if target.exists() {
            return Err(Error::Store(format!("{} already exists", target.display())));
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let tmp = self
            .dir
            .join(format!(".tmp-{version}-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        for (name, bytes) in files {
            let path = tmp.join(name);
            std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        }
        std::fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))
    }

    fn get(&self, version: &str, file: &str) -> Result<Vec<u8>> {
        check_version(version)?;
        let path = self.version_dir(version).join(file);
        std::fs::read(&path).map_err(|e| Error::io(&path, e))
    }

    fn current(&self) -> Result<Option<String>> {
        let path = self.dir.join(CURRENT_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let v = text.trim().to_string();
                check_version(&v)?;
                Ok(Some(v))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn set_current(&self, version: &str) -> Result<()> {
        check_version(version)?;
        if !self.version_dir(version).join(MODEL_FILE).is_file() {
            return Err(Error::Store(format!(
                "version {version} is not in {}",
                self.dir.display()
            )));
        }
        let tmp = self.dir.join(format!(".CURRENT-{}", std::process::id()));
        std::fs::write(&tmp, format!("{version}\n")).map_err(|e| Error::io(&tmp, e))?;
        let path = self.dir.join(CURRENT_FILE);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(path, e))
    }

    fn versions(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut out: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().join(MODEL_FILE).is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|v| check_version(v).is_ok())
            .collect();
        out.sort();
        Ok(out)
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_then_current_then_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("models"));
        assert_eq!(store.current().unwrap(), None);
        assert!(store.versions().unwrap().is_empty());
        store
            .put("v1", &[(MODEL_FILE, b"onnx"), (MANIFEST_FILE, b"{}")])
            .unwrap();
        assert!(
            store.set_current("v2").is_err(),
            "an unknown version cannot be current"
        );
        store.set_current("v1").unwrap();
        assert_eq!(store.current().unwrap().as_deref(), Some("v1"));
        assert_eq!(store.get("v1", MODEL_FILE).unwrap(), b"onnx");
        assert!(
            store.put("v1", &[(MODEL_FILE, b"x")]).is_err(),
            "versions are immutable"
        );
        store.put("v2", &[(MODEL_FILE, b"onnx2")]).unwrap();
        assert_eq!(store.versions().unwrap(), ["v1", "v2"]);
    }

    #[test]
    fn version_ids_cannot_escape_the_store() {
        for bad in ["", "../x", "a/b", ".hidden", "x y"] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
        check_version("20261124T101500Z-1a2b3c4d").unwrap();
    }
}
