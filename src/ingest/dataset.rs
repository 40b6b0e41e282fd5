//! A data set of files: every Parquet or CSV file in a directory, or those a glob's last part
//! matches, in name order.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const DATASET_EXTENSIONS: [&str; 5] = ["parquet", "pq", "csv", "tsv", "txt"];

/// Whether a file (or an object) of this name is data a data set holds, by its extension.
pub fn is_data_file(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| DATASET_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The files of a dataset: every Parquet or CSV file in a directory, or those a glob's last
/// part matches (`*` any run of characters, `?` one), in name order.
pub fn dataset_files(spec: &str) -> Result<Vec<PathBuf>> {
    let path = Path::new(spec);
    let (dir, pattern) = if path.is_dir() {
        (path.to_path_buf(), None)
    } else {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Source(format!("{spec}: not a directory or a file pattern")))?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        (dir.unwrap_or(Path::new(".")).to_path_buf(), Some(name))
    };
    if dir.to_str().is_some_and(|d| d.contains(['*', '?'])) {
        return Err(Error::Source(format!(
            "{spec}: only the last part of a pattern may hold '*' or '?'"
        )));
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        let known = is_data_file(&name);
        let wanted = pattern.is_none_or(|p| wildcard(p, &name));
        if known && wanted && !name.starts_with('.') && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::Source(format!(
            "{spec}: no Parquet or CSV files (.parquet, .pq, .csv, .tsv, .txt)"
        )));
    }
    Ok(files)
}

/// Whether `name` matches `pattern` (`*` any run of characters, `?` any one).
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_a_shell_does() {
        assert!(wildcard("part-*.parquet", "part-0001.parquet"));
        assert!(wildcard("*", "x.csv"));
        assert!(wildcard("p?rt*", "part-1.csv"));
        assert!(!wildcard("part-*.parquet", "part-0001.csv"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("*a*b", "xxaxxb"));
    }
}
