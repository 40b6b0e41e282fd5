//! Where a training job may read its data from: the sources a client may name, confined to
//! the service's `jobs` settings.

use crate::ingest::DataSource;

/// A job source as the job may read it, or why not: a file only under `jobs.data_dir` (a
/// relative path is taken from there; links are resolved before the check), MongoDB only on
/// `jobs.mongodb_hosts`, synthetic data up to `jobs.max_synthetic_rows` rows. A refused file
/// is not told apart from a missing one.
pub(super) fn confine(spec: &str, limits: &crate::config::JobsSettings) -> Result<String, String> {
    if !spec.contains("://") && !spec.starts_with("synthetic:") {
        if let Some(resolved) = confine_dataset(spec, limits)? {
            return Ok(resolved);
        }
    }
    let source = DataSource::parse(spec).map_err(|e| e.to_string())?;
    match source {
        DataSource::Synthetic { rows, .. } => {
            if rows > limits.max_synthetic_rows {
                return Err(format!(
                    "synthetic sources have at most {} rows (jobs.max_synthetic_rows)",
                    limits.max_synthetic_rows
                ));
            }
            Ok(spec.to_string())
        }
        DataSource::Mongo(m) => {
            let allowed = m.hosts.split(',').all(|h| {
                let host = h.rsplit_once(':').map_or(h, |(host, _)| host);
                limits
                    .mongodb_hosts
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(h) || a.eq_ignore_ascii_case(host))
            });
            if !allowed {
                return Err(format!(
                    "MongoDB host {} is not in jobs.mongodb_hosts",
                    m.hosts
                ));
            }
            Ok(spec.to_string())
        }
        DataSource::S3 { uri, .. } => {
            let (bucket, _) = crate::config::parse_s3_uri(&uri).map_err(|e| e.to_string())?;
            if limits.s3_buckets.iter().any(|b| *b == bucket) {
                Ok(uri)
            } else {
                Err(format!("S3 bucket {bucket} is not in jobs.s3_buckets"))
            }
        }
        // A dataset under the data directory was taken by `confine_dataset`.
        DataSource::Dataset { .. } => Err(format!(
            "no such data file under the jobs' data directory ({})",
            limits.data_dir.display()
        )),
        DataSource::Csv(path) | DataSource::Parquet(path) | DataSource::Arrow(path) => {
            let not_found = || {
                format!(
                    "no such data file under the jobs' data directory ({})",
                    limits.data_dir.display()
                )
            };
            let root = std::fs::canonicalize(&limits.data_dir).map_err(|_| not_found())?;
            let wanted = if path.is_absolute() {
                path
            } else {
                root.join(path)
            };
            let resolved = std::fs::canonicalize(&wanted).map_err(|_| not_found())?;
            if !resolved.starts_with(&root) || !resolved.is_file() {
                return Err(not_found());
            }
            Ok(resolved.display().to_string())
        }
    }
}

/// A dataset (a directory, or a glob in one) as a job may read it: the directory and every
/// file of it under `jobs.data_dir`, links resolved; None when `spec` is not a dataset.
fn confine_dataset(
    spec: &str,
    limits: &crate::config::JobsSettings,
) -> Result<Option<String>, String> {
    let not_found = || {
        format!(
            "no such data file under the jobs' data directory ({})",
            limits.data_dir.display()
        )
    };
    let root = std::fs::canonicalize(&limits.data_dir).map_err(|_| not_found())?;
    let path = std::path::Path::new(spec);
    let wanted = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    let (dir, pattern) = if spec.contains(['*', '?']) {
        let name = wanted
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string);
        (wanted.parent().map(|p| p.to_path_buf()), name)
    } else if wanted.is_dir() {
        (Some(wanted.clone()), None)
    } else {
        return Ok(None);
    };
    let dir = dir
        .and_then(|d| std::fs::canonicalize(d).ok())
        .filter(|d| d.starts_with(&root) && d.is_dir())
        .ok_or_else(not_found)?;
    let resolved = match pattern {
        Some(p) => dir.join(p).display().to_string(),
        None => dir.display().to_string(),
    };
    let files = crate::ingest::dataset::dataset_files(&resolved).map_err(|e| {
        // The error names the resolved path; the client is told only what it asked for.
        e.to_string().replace(&resolved, spec)
    })?;
    for f in &files {
        let inside = std::fs::canonicalize(f).is_ok_and(|f| f.starts_with(&root));
        if !inside {
            return Err(not_found());
        }
    }
    Ok(Some(resolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_sources_are_confined_to_the_data_dir_the_allowed_hosts_and_the_row_cap() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("ok.csv"), "a\n1\n").unwrap();
        std::fs::write(dir.path().join("secret.csv"), "secret\n").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.path().join("secret.csv"), data.join("link.csv")).unwrap();
        let limits = crate::config::JobsSettings {
            data_dir: data.clone(),
            mongodb_hosts: vec!["db.internal".into()],
            max_synthetic_rows: 1000,
            s3_buckets: vec!["customers".into()],
        };
        let inside = data.canonicalize().unwrap().join("ok.csv");
        assert_eq!(
            confine("ok.csv", &limits).unwrap(),
            inside.display().to_string()
        );
        assert_eq!(
            confine(&inside.display().to_string(), &limits).unwrap(),
            inside.display().to_string()
        );
        for outside in [
            dir.path().join("secret.csv").display().to_string(),
            "../secret.csv".into(),
            "link.csv".into(),
            "missing.csv".into(),
        ] {
            let e = confine(&outside, &limits).unwrap_err();
            assert!(e.contains("no such data file"), "{outside}: {e}");
        }
        assert!(confine("synthetic:rows=1000,seed=1", &limits).is_ok());
        assert!(confine("synthetic:rows=1001", &limits).is_err());
        assert!(confine("mongodb://db.internal:27017/shop?collection=c", &limits).is_ok());
        let e = confine("mongodb://u:pw@elsewhere:27017/shop?collection=c", &limits).unwrap_err();
        assert!(
            e.contains("not in jobs.mongodb_hosts") && !e.contains("pw"),
            "{e}"
        );
        // Datasets: a directory or a glob under the data directory, every file of it too.
        let parts = data.join("parts");
        std::fs::create_dir(&parts).unwrap();
        std::fs::write(parts.join("a.csv"), "a\n1\n").unwrap();
        let resolved = parts.canonicalize().unwrap().display().to_string();
        assert_eq!(confine("parts", &limits).unwrap(), resolved);
        assert_eq!(
            confine("parts/*.csv", &limits).unwrap(),
            format!("{resolved}/*.csv")
        );
        for outside in [dir.path().display().to_string(), "../*.csv".into()] {
            let e = confine(&outside, &limits).unwrap_err();
            assert!(e.contains("no such data file"), "{outside}: {e}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret.csv"), parts.join("b.csv")).unwrap();
            let e = confine("parts", &limits).unwrap_err();
            assert!(
                e.contains("no such data file"),
                "a link out of the directory: {e}"
            );
        }
        // S3: only the buckets listed.
        assert!(confine("s3://customers/2026/", &limits).is_ok());
        let e = confine("s3://elsewhere/2026/", &limits).unwrap_err();
        assert!(e.contains("not in jobs.s3_buckets"), "{e}");
    }
}
