//! The model store: model versions (each a `model.onnx` + `manifest.json`), which one is
//! current, and the history of current versions (for rollback).
//!
//! Two stores, one interface: the local directory (`<dir>/<version>/…`, `<dir>/CURRENT`,
//! `<dir>/HISTORY`; every write lands under a temporary name and is renamed into place) and an
//! S3 bucket ([`s3::S3Store`]: a version becomes visible only when its completion marker,
//! written after its files, exists). A reader never sees half a model or half a pointer.

pub mod s3;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::ModelStoreSettings;
use crate::error::{Error, Result};

pub const MODEL_FILE: &str = "model.onnx";
pub const MANIFEST_FILE: &str = "manifest.json";
const CURRENT_FILE: &str = "CURRENT";
/// The versions that were current, oldest first, one per line; its last line is current.
const HISTORY_FILE: &str = "HISTORY";

/// Where model versions live: the local directory store or an S3 bucket.
pub trait ModelStore: Send + Sync {
    /// Stores the files of a new version; fails if the version exists. The version is not
    /// listed, and cannot be made current, before all its files are stored.
    fn put(&self, version: &str, files: &[(&str, &[u8])]) -> Result<()>;
    /// One file of a version.
    fn get(&self, version: &str, file: &str) -> Result<Vec<u8>>;
    /// All complete versions, oldest first (version ids sort by creation time).
    fn versions(&self) -> Result<Vec<String>>;
    /// A pointer object of the store (`CURRENT`, `HISTORY`); None when it does not exist.
    fn read_pointer(&self, name: &str) -> Result<Option<String>>;
    /// Replaces a pointer object whole.
    fn write_pointer(&self, name: &str, text: &str) -> Result<()>;
    /// A pointer object with a tag that changes whenever it is written (S3: its ETag; a local
    /// store: its text, compared under an exclusive lock).
    fn read_pointer_tagged(&self, name: &str) -> Result<Option<(String, String)>>;
    /// Replaces a pointer only if its tag is still `expected` (None: only if it does not
    /// exist): a compare-and-swap. False when another writer got there first.
    fn write_pointer_if(&self, name: &str, text: &str, expected: Option<&str>) -> Result<bool>;
    /// Where the store is, for messages.
    fn describe(&self) -> String;
    /// The names of the pointer objects under the folder `prefix` (`monitoring/`), sorted.
    fn list_pointers(&self, prefix: &str) -> Result<Vec<String>>;

    /// The current version, if any. A `CURRENT` that is empty, unreadable or names no stored
    /// version (a crash mid-write on a filesystem that lost it) falls back, with a warning,
    /// to the newest version in `HISTORY` that is stored.
    fn current(&self) -> Result<Option<String>> {
        // HISTORY is the one object promotions swap (see `promote`); CURRENT, written after
        // it, is a copy for readers that predate that, and for a store without a HISTORY.
        let pointer = match self.read_pointer(HISTORY_FILE) {
            Ok(Some(h)) => match h.lines().map(str::trim).rev().find(|l| !l.is_empty()) {
                Some(last) => Ok(Some(last.to_string())),
                None => self.read_pointer(CURRENT_FILE),
            },
            Ok(None) => self.read_pointer(CURRENT_FILE),
            Err(e) => Err(e),
        };
        let named = match &pointer {
            Ok(Some(text)) => {
                let v = text.trim().to_string();
                match check_version(&v) {
                    Ok(()) => Some(v),
                    Err(_) => None,
                }
            }
            _ => None,
        };
        if named.is_some() && !self.lists_versions() {
            return Ok(named);
        }
        if matches!(pointer, Ok(None)) {
            return Ok(None);
        }
        // One listing serves both the check of the named version and the fallback.
        let stored = self.versions()?;
        if let Some(v) = &named
            && stored.contains(v)
        {
            return Ok(named);
        }
        let fallback = self
            .read_pointer(HISTORY_FILE)
            .ok()
            .flatten()
            .unwrap_or_default()
            .lines()
            .rev()
            .map(str::trim)
            .find(|v| stored.iter().any(|s| s == v))
            .map(String::from);
        match &fallback {
            Some(v) => tracing::warn!(
                "{}: {CURRENT_FILE} is empty, unreadable or names no stored version; \
                 serving {v}, the newest in {HISTORY_FILE}",
                self.describe()
            ),
            None => {
                // Nothing named is stored and there is no CURRENT: an empty store, as a
                // store without any pointer is.
                if matches!(self.read_pointer(CURRENT_FILE), Ok(None)) {
                    return Ok(None);
                }
                return match pointer {
                    Err(e) => Err(e),
                    _ => Err(Error::Store(format!(
                        "{}: {CURRENT_FILE} names no stored version and {HISTORY_FILE} has none",
                        self.describe()
                    ))),
                };
            }
        }
        Ok(fallback)
    }

    /// Whether [`ModelStore::versions`] lists every stored version cheaply (a directory);
    /// a remote store answers `false` and its `CURRENT` is trusted as written.
    fn lists_versions(&self) -> bool {
        true
    }

    /// The versions that have been current, oldest first; the last one is current.
    fn history(&self) -> Result<Vec<String>> {
        let mut h: Vec<String> = self
            .read_pointer(HISTORY_FILE)?
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| check_version(l).is_ok())
            .map(String::from)
            .collect();
        // A store written before the history existed: its current version is all it knows.
        if let Some(current) = self.current()?
            && h.last() != Some(&current)
        {
            h.push(current);
        }
        Ok(h)
    }

    /// Marks `version` (which must be a complete version) current, whatever is current now;
    /// a concurrent promotion is never lost (both are in `HISTORY`, the later current).
    fn set_current(&self, version: &str) -> Result<()> {
        self.promote(version, None).map(|_| ())
    }

    /// Marks `version` current if the current version is still `expected` (with `Some`),
    /// by a compare-and-swap of `HISTORY`, the one object that decides: its last line is the
    /// current version. `Ok(Err(actual))` when another promotion made `actual` current first
    /// (the caller decides again against it). A swap lost to a writer that did not change
    /// the current version is retried.
    fn promote(
        &self,
        version: &str,
        expected: Option<Option<&str>>,
    ) -> Result<std::result::Result<(), Option<String>>> {
        check_version(version)?;
        if !self.versions()?.iter().any(|v| v == version) {
            return Err(Error::Store(format!(
                "version {version} is not in {}",
                self.describe()
            )));
        }
        for _ in 0..CAS_ATTEMPTS {
            let (mut history, tag) = self.history_tagged()?;
            let current = history.last().cloned();
            if let Some(want) = expected
                && current.as_deref() != want
            {
                return Ok(Err(current));
            }
            if current.as_deref() == Some(version) {
                self.write_pointer(CURRENT_FILE, &format!("{version}\n"))?;
                return Ok(Ok(()));
            }
            history.push(version.to_string());
            if self.write_pointer_if(HISTORY_FILE, &(history.join("\n") + "\n"), tag.as_deref())? {
                self.write_pointer(CURRENT_FILE, &format!("{version}\n"))?;
                return Ok(Ok(()));
            }
            tracing::info!(
                "{}: another promotion came first; trying again",
                self.describe()
            );
        }
        Err(Error::Store(format!(
            "{}: {CAS_ATTEMPTS} promotions of {version} in a row lost to other writers",
            self.describe()
        )))
    }

    /// `HISTORY` as versions with its tag (None: it does not exist), seeded from `CURRENT`
    /// for a store written before the history existed.
    fn history_tagged(&self) -> Result<(Vec<String>, Option<String>)> {
        let (text, tag) = match self.read_pointer_tagged(HISTORY_FILE)? {
            Some((text, tag)) => (text, Some(tag)),
            None => (String::new(), None),
        };
        let mut h: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| check_version(l).is_ok())
            .map(String::from)
            .collect();
        if h.is_empty()
            && let Some(c) = self.read_pointer(CURRENT_FILE)?
            && check_version(c.trim()).is_ok()
        {
            h.push(c.trim().to_string());
        }
        Ok((h, tag))
    }

    /// Makes the version that was current before the current one current again; returns it.
    /// The same compare-and-swap as a promotion: a promotion that lands meanwhile makes the
    /// rollback try again from the new history.
    fn rollback(&self) -> Result<String> {
        let versions = self.versions()?;
        for _ in 0..CAS_ATTEMPTS {
            let (mut history, tag) = self.history_tagged()?;
            let Some(current) = history.pop() else {
                return Err(Error::Store(format!(
                    "{} has no current model to roll back from",
                    self.describe()
                )));
            };
            // Skip versions deleted since they were current.
            while let Some(previous) = history.last() {
                if previous != &current && versions.contains(previous) {
                    break;
                }
                history.pop();
            }
            let Some(previous) = history.last().cloned() else {
                return Err(Error::Store(format!(
                    "{}: no version was current before {current}; nothing to roll back to",
                    self.describe()
                )));
            };
            if self.write_pointer_if(HISTORY_FILE, &(history.join("\n") + "\n"), tag.as_deref())? {
                self.write_pointer(CURRENT_FILE, &format!("{previous}\n"))?;
                return Ok(previous);
            }
        }
        Err(Error::Store(format!(
            "{}: the rollback lost {CAS_ATTEMPTS} times in a row to other writers",
            self.describe()
        )))
    }
}

/// Tries of a compare-and-swap of `HISTORY` before giving up.
const CAS_ATTEMPTS: usize = 50;

/// Opens the store a `--models` argument or setting names: `s3://bucket/prefix` is an S3
/// bucket (endpoint, region and path style from `models.s3`), anything else a directory.
pub fn open(spec: &str, settings: &ModelStoreSettings) -> Result<Arc<dyn ModelStore>> {
    if spec.starts_with("s3://") {
        Ok(Arc::new(s3::S3Store::connect(spec, &settings.s3)?))
    } else {
        Ok(Arc::new(LocalStore::new(spec)))
    }
}

/// The store the settings name: `models.s3.uri` when set, else `models.dir`.
pub fn default_spec(settings: &ModelStoreSettings) -> String {
    match settings.s3.uri.as_deref().filter(|u| !u.is_empty()) {
        Some(uri) => uri.to_string(),
        None => settings.dir.display().to_string(),
    }
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

/// Writes `bytes` to `path` and flushes them to the disk before returning, so a crash after a
/// rename never finds the renamed file empty.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Flushes a directory's entries (a rename into it) to the disk.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))?;
    Ok(())
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
            write_synced(&tmp.join(name), bytes)?;
        }
        sync_dir(&tmp)?;
        std::fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
        sync_dir(&self.dir)
    }

    fn get(&self, version: &str, file: &str) -> Result<Vec<u8>> {
        check_version(version)?;
        let path = self.version_dir(version).join(file);
        std::fs::read(&path).map_err(|e| Error::io(&path, e))
    }

    fn read_pointer(&self, name: &str) -> Result<Option<String>> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn write_pointer(&self, name: &str, text: &str) -> Result<()> {
        // A name may have a folder (`jobs/<id>.json`): the temporary file goes beside it.
        let path = self.dir.join(name);
        let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Unique per write: two threads of one process may write the same pointer at once.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = parent.join(format!(".{file}-{}-{n}", std::process::id()));
        write_synced(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(path, e))?;
        sync_dir(&parent)
    }

    fn read_pointer_tagged(&self, name: &str) -> Result<Option<(String, String)>> {
        // The text is its own tag: `write_pointer_if` compares it under the lock.
        Ok(self.read_pointer(name)?.map(|t| (t.clone(), t)))
    }

    fn write_pointer_if(&self, name: &str, text: &str, expected: Option<&str>) -> Result<bool> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        // An exclusive lock (flock) over the compare and the rename: a check followed by a
        // rename without it races. Every writer of the pointers takes it.
        let lock_path = self.dir.join(".pointers.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        let now = self.read_pointer(name)?;
        if now.as_deref() != expected {
            return Ok(false);
        }
        self.write_pointer(name, text)?;
        Ok(true)
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

    fn list_pointers(&self, prefix: &str) -> Result<Vec<String>> {
        // Names are `/`-separated under the store's directory; temporary files start with `.`.
        fn walk(dir: &Path, name: &str, out: &mut Vec<String>) -> Result<()> {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(Error::io(dir, e)),
            };
            for e in entries.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                if file.starts_with('.') {
                    continue;
                }
                let full = format!("{name}{file}");
                match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path(), &format!("{full}/"), out)?,
                    Ok(t) if t.is_file() => out.push(full),
                    _ => {}
                }
            }
            Ok(())
        }
        let prefix = prefix.trim_start_matches('/');
        if prefix.split('/').any(|p| p == "..") {
            return Err(Error::Store(format!("{prefix}: not a folder of the store")));
        }
        let mut out = Vec::new();
        let folder = prefix.rsplit_once('/').map_or("", |(f, _)| f);
        let start = if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        };
        walk(&self.dir.join(folder), &start, &mut out)?;
        out.retain(|n| n.starts_with(prefix));
        out.sort();
        Ok(out)
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
    fn concurrent_promotions_are_all_in_history_and_the_last_is_current() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let names: Vec<String> = (0..2)
            .flat_map(|t| (0..25).map(move |i| format!("t{t}v{i:02}")))
            .collect();
        for v in &names {
            store.put(v, &[(MODEL_FILE, b"m")]).unwrap();
        }
        std::thread::scope(|s| {
            for t in 0..2 {
                let (store, names) = (&store, &names);
                s.spawn(move || {
                    for v in names.iter().filter(|v| v.starts_with(&format!("t{t}"))) {
                        store.set_current(v).unwrap();
                    }
                });
            }
        });
        let history = store.history().unwrap();
        let mut sorted = history.clone();
        sorted.sort();
        assert_eq!(sorted, names, "every promotion is in HISTORY once");
        assert_eq!(store.current().unwrap().as_ref(), history.last());
        // A promotion decided against a model that is no longer current is refused, naming
        // the one that is.
        let now = history.last().unwrap().clone();
        let stale = history[history.len() - 2].clone();
        assert_eq!(
            store.promote("t0v00", Some(Some(&stale))).unwrap(),
            Err(Some(now.clone()))
        );
        assert_eq!(store.promote("t0v00", Some(Some(&now))).unwrap(), Ok(()));
        assert_eq!(store.current().unwrap().as_deref(), Some("t0v00"));
    }

    #[test]
    fn rollback_returns_to_the_previous_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        assert!(store.rollback().is_err(), "nothing to roll back from");
        for v in ["v1", "v2", "v3"] {
            store.put(v, &[(MODEL_FILE, b"m")]).unwrap();
        }
        store.set_current("v1").unwrap();
        assert!(store.rollback().is_err(), "nothing before the first");
        store.set_current("v3").unwrap();
        store.set_current("v2").unwrap();
        assert_eq!(store.history().unwrap(), ["v1", "v3", "v2"]);
        assert_eq!(store.rollback().unwrap(), "v3");
        assert_eq!(store.current().unwrap().as_deref(), Some("v3"));
        assert_eq!(store.rollback().unwrap(), "v1");
        assert_eq!(store.current().unwrap().as_deref(), Some("v1"));
        assert!(store.rollback().is_err());
        assert_eq!(store.current().unwrap().as_deref(), Some("v1"));
    }

    #[test]
    fn an_empty_or_damaged_current_falls_back_to_the_newest_stored_version_in_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        for v in ["v1", "v2"] {
            store.put(v, &[(MODEL_FILE, b"m")]).unwrap();
            store.set_current(v).unwrap();
        }
        for damaged in ["", "\n", "../x", "v9"] {
            std::fs::write(dir.path().join(CURRENT_FILE), damaged).unwrap();
            assert_eq!(
                store.current().unwrap().as_deref(),
                Some("v2"),
                "{damaged:?}"
            );
        }
        // Nothing in the history is stored any more: a clear error, not a wrong version.
        std::fs::write(dir.path().join(HISTORY_FILE), "gone\n").unwrap();
        std::fs::write(dir.path().join(CURRENT_FILE), "").unwrap();
        let e = store.current().unwrap_err().to_string();
        assert!(e.contains("names no stored version"), "{e}");
        // No CURRENT at all is an empty store, as before.
        std::fs::remove_file(dir.path().join(CURRENT_FILE)).unwrap();
        assert_eq!(store.current().unwrap(), None);
    }

    #[test]
    fn version_ids_cannot_escape_the_store() {
        for bad in ["", "../x", "a/b", ".hidden", "x y"] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
        check_version("20261124T101500Z-1a2b3c4d").unwrap();
    }
}
