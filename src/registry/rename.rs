//! Renaming a segment. Names belong to the user: a rename stores a new version (a new id, the
//! same `model.onnx`, the manifest with the new name) and makes it current when the renamed
//! version was, so a running service switches to it like to any new current version, and
//! later models whose segment is matched to this one keep the name.

use super::manifest::Manifest;
use super::publish::new_version;
use super::store::{MANIFEST_FILE, MODEL_FILE, ModelStore};
use crate::dates::rfc3339;
use crate::error::{Error, Result};

/// The longest segment name, in characters.
pub const MAX_NAME_CHARS: usize = 80;

/// The rule of a segment name as a JSON Schema pattern (with 1 to [`MAX_NAME_CHARS`]
/// characters as sent): no control character (Unicode Cc, as `char::is_control`) and at least
/// one that is not whitespace (Unicode White_Space, as `str::trim`, less the controls).
pub const NAME_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\u0000-\\u001F\\u007F-\\u009F\\u0020\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// A name as it will be stored (trimmed), or why it cannot be one: 1 to [`MAX_NAME_CHARS`]
/// characters as sent, no control character, not only whitespace ([`NAME_PATTERN`]).
pub fn check_name(name: &str) -> std::result::Result<String, String> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "a segment name has at most {MAX_NAME_CHARS} characters, this one {}",
            name.chars().count()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("a segment name cannot hold control characters (tabs, line breaks)".into());
    }
    let name = name.trim();
    if name.is_empty() {
        return Err("a segment name cannot be empty or only spaces".into());
    }
    Ok(name.to_string())
}

/// What [`rename`] stored.
#[derive(Debug, Clone)]
pub struct Renamed {
    pub version: String,
    pub manifest: Manifest,
    /// The new version was made current (the renamed one was).
    pub current: bool,
}

/// Stores a copy of `version` whose segment `segment` is called `name`.
pub fn rename(
    store: &dyn ModelStore,
    version: &str,
    segment: usize,
    name: &str,
) -> Result<Renamed> {
    let name = check_name(name).map_err(Error::Model)?;
    let mut manifest: Manifest = serde_json::from_slice(&store.get(version, MANIFEST_FILE)?)?;
    if segment >= manifest.k {
        return Err(Error::Model(format!(
            "model {version} has segments 0..{}, not {segment}",
            manifest.k - 1
        )));
    }
    let model = store.get(version, MODEL_FILE)?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let new = new_version(store, created, &manifest.onnx.sha256)?;
    manifest.segments[segment].name = name.clone();
    if let Some(p) = manifest.metrics.segments.get_mut(segment) {
        p.name = name;
    }
    manifest.version = new.clone();
    manifest.created_at = rfc3339(created);
    manifest.renamed_from = Some(version.to_string());
    // The SQL names the model version it belongs to: the copy gets its own.
    // A version published before its features were data, by another build, has none.
    let sql = super::publish::with_sql(&mut manifest).unwrap_or_else(|e| {
        tracing::warn!("{new}: no SQL export stored ({e})");
        manifest.sql.clear();
        Vec::new()
    });
    let json = serde_json::to_vec_pretty(&manifest)?;
    let mut files: Vec<(&str, &[u8])> = vec![(MODEL_FILE, &model), (MANIFEST_FILE, &json)];
    files.extend(
        sql.iter()
            .map(|(name, text)| (name.as_str(), text.as_bytes())),
    );
    store.put(&new, &files)?;
    let mut current = store.current()?.as_deref() == Some(version);
    if current {
        // Only if `version` is still current: a promotion that landed meanwhile wins.
        if let Err(now) = store.promote(&new, Some(Some(version)))? {
            tracing::warn!(
                "{new} not made current: {} became current meanwhile",
                now.unwrap_or_default()
            );
            current = false;
        }
    }
    Ok(Renamed {
        version: new,
        manifest,
        current,
    })
}
