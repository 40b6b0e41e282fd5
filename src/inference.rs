//! Inference through ONNX Runtime (the `ort` crate, loading `libonnxruntime` at run time).
//!
//! The runtime library is found without setup beyond the README's two commands: the
//! `inference.onnxruntime` setting or `CATEGORIZER_ONNXRUNTIME` (or ort's own `ORT_DYLIB_PATH`)
//! first, then the places `scripts/setup.sh` and the Docker images put it (the `onnxruntime`
//! wheel in the project's `.venv`, `/opt/onnxruntime/lib`), then the system library paths and
//! Python installs. When none is there the error says what to install.
//!
//! Session options are chosen for a latency-sensitive CPU server: one intra-op thread by
//! default (concurrency comes from requests and from running several sessions, not from
//! splitting a small batch), no inter-op pool, no spinning of idle threads (which would burn
//! the cores the server and the other sessions need), all graph optimisations, and a memory
//! pattern so repeated batch shapes reuse their buffers.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

use crate::error::{Error, Result};
use crate::onnx::names::{
    INPUT, OUT_DISTANCES, OUT_EMBEDDING, OUT_PREPROCESSED, OUT_PROBABILITIES, OUT_SEGMENT,
};
use crate::schema::N_FEATURES;

/// The environment variable naming the ONNX Runtime library.
pub const LIBRARY_ENV: &str = "CATEGORIZER_ONNXRUNTIME";

/// What to do when no runtime library is found.
pub const INSTALL_HINT: &str = "install it with `scripts/setup.sh run` (puts the onnxruntime \
     1.31 wheel into .venv), or `pip install onnxruntime==1.31.*`, or set CATEGORIZER_ONNXRUNTIME \
     to the path of libonnxruntime.so";

/// The loaded ONNX Runtime: where it came from and its version.
#[derive(Debug)]
pub struct Runtime {
    pub library: PathBuf,
    pub version: String,
    env: ort::environment::Environment,
}

static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// Loads ONNX Runtime once per process (the library cannot be swapped once loaded).
pub fn runtime(configured: Option<&Path>) -> Result<&'static Runtime> {
    RUNTIME
        .get_or_init(|| load(configured).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|m| Error::Runtime(m.clone()))
}

fn load(configured: Option<&Path>) -> Result<Runtime> {
    let library = locate(configured, &search_paths())?;
    let builder = ort::init_from(&library).map_err(|e| {
        Error::Runtime(format!(
            "{} could not be loaded as ONNX Runtime ({e}); {INSTALL_HINT}",
            library.display()
        ))
    })?;
    let env = builder
        .with_name("categorizer")
        .build()
        .map_err(|e| Error::Runtime(format!("starting ONNX Runtime: {e}")))?;
    let version = version_of(&library);
    tracing::debug!("ONNX Runtime {version} from {}", library.display());
    Ok(Runtime {
        library,
        version,
        env,
    })
}

/// "1.31.1" from `libonnxruntime.so.1.31.1`, else from ONNX Runtime's build string.
fn version_of(library: &Path) -> String {
    let name = library
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(v) = name.split(".so.").nth(1) {
        return v.to_string();
    }
    let info = ort::info();
    info.split("git-branch=rel-")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("unknown")
        .to_string()
}

/// Directories that may hold `libonnxruntime.so*`, most specific first.
pub fn search_paths() -> Vec<PathBuf> {
    let mut venvs: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        venvs.push(v.into());
    }
    if let Ok(cwd) = std::env::current_dir() {
        venvs.push(cwd.join(".venv"));
    }
    // The binary lives in <repo>/target/<profile>/ (or a test's deps/ below it).
    if let Ok(exe) = std::env::current_exe() {
        venvs.extend(exe.ancestors().skip(1).take(4).map(|d| d.join(".venv")));
    }
    venvs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let mut dirs: Vec<PathBuf> = Vec::new();
    for v in venvs {
        dirs.extend(site_packages(&v.join("lib")));
    }
    dirs.push("/opt/onnxruntime/lib".into());
    dirs.push("/usr/local/lib".into());
    dirs.push("/usr/lib/x86_64-linux-gnu".into());
    dirs.push("/usr/lib".into());
    if let Some(home) = std::env::var_os("HOME") {
        dirs.extend(site_packages(&Path::new(&home).join(".local/lib")));
    }
    dirs.extend(site_packages(Path::new("/usr/local/lib")));
    dirs.extend(site_packages(Path::new("/usr/lib")));
    dirs
}

/// `<lib>/python3.*/{site,dist}-packages/onnxruntime/capi` directories that exist.
fn site_packages(lib: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(lib) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .flat_map(|e| {
            ["site-packages", "dist-packages"]
                .map(|s| e.path().join(s).join("onnxruntime").join("capi"))
        })
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// The library to load: the configured path or `CATEGORIZER_ONNXRUNTIME`/`ORT_DYLIB_PATH`
/// when set (it must exist), else the first `libonnxruntime.so*` in `dirs`.
pub fn locate(configured: Option<&Path>, dirs: &[PathBuf]) -> Result<PathBuf> {
    let explicit = configured
        .map(|p| (p.to_path_buf(), "inference.onnxruntime"))
        .or_else(|| std::env::var_os(LIBRARY_ENV).map(|p| (p.into(), LIBRARY_ENV)))
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(|p| (p.into(), "ORT_DYLIB_PATH")));
    if let Some((path, from)) = explicit {
        if path.is_file() {
            return Ok(path);
        }
        return Err(Error::Runtime(format!(
            "{from} names {}, which is not a file; {INSTALL_HINT}",
            path.display()
        )));
    }
    for dir in dirs {
        if let Some(lib) = library_in(dir) {
            return Ok(lib);
        }
    }
    Err(Error::Runtime(format!(
        "the ONNX Runtime library (libonnxruntime.so) was not found; {INSTALL_HINT}. Looked in: {}",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// `libonnxruntime.so` or the highest-versioned `libonnxruntime.so.X.Y.Z` in `dir`.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Outputs of one run, row-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Predictions {
    pub rows: usize,
    pub k: usize,
    pub segment: Vec<i64>,
    pub probabilities: Vec<f32>,
    pub embedding: Vec<f32>,
    pub distances: Vec<f32>,
    /// The preprocessed features [N, 21] (what the explanations are computed from), filled
    /// only when `want_preprocessed` is set and the model has the output.
    pub preprocessed: Vec<f32>,
    /// Copy the preprocessed features out (84 bytes a row, only explanations need them).
    pub want_preprocessed: bool,
}

impl Predictions {
    /// `other`'s rows after these (the same model's outputs).
    pub fn append(&mut self, other: &Predictions) {
        self.rows += other.rows;
        self.segment.extend_from_slice(&other.segment);
        self.probabilities.extend_from_slice(&other.probabilities);
        self.embedding.extend_from_slice(&other.embedding);
        self.distances.extend_from_slice(&other.distances);
        self.preprocessed.extend_from_slice(&other.preprocessed);
    }

    pub fn clear(&mut self) {
        self.rows = 0;
        self.segment.clear();
        self.probabilities.clear();
        self.embedding.clear();
        self.distances.clear();
        self.preprocessed.clear();
    }
}

/// Most rows one session run takes (larger calls run in pieces of this many).
pub const RUN_ROWS: usize = 16384;

/// One ONNX Runtime session over an exported model.
pub struct OnnxModel {
    session: Session,
    k: usize,
    embedding_dims: usize,
    /// The model has the `preprocessed` output (exported since explanations exist).
    explains: bool,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("k", &self.k)
            .field("embedding_dims", &self.embedding_dims)
            .finish()
    }
}

/// How a session runs.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub intra_threads: usize,
    pub library: Option<PathBuf>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            intra_threads: 1,
            library: None,
        }
    }
}

impl SessionOptions {
    pub fn from_settings(s: &crate::config::InferenceSettings) -> Self {
        Self {
            intra_threads: s.intra_threads,
            library: s.onnxruntime.clone(),
        }
    }
}

impl OnnxModel {
    /// Loads `model.onnx` and checks that its inputs and outputs are the ones this project writes.
    pub fn load(path: &Path, options: &SessionOptions) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, options).map_err(|e| match e {
            Error::Model(m) => Error::Model(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    pub fn from_bytes(bytes: &[u8], options: &SessionOptions) -> Result<Self> {
        let rt = runtime(options.library.as_deref())?;
        let bad = |e: ort::Error| Error::Model(format!("not a loadable ONNX model: {e}"));
        let opt = |e: ort::Error<ort::session::builder::SessionBuilder>| {
            Error::Runtime(format!("session options: {e}"))
        };
        let session = Session::builder(&rt.env)
            .map_err(|e| Error::Runtime(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(opt)?
            .with_intra_threads(options.intra_threads)
            .map_err(opt)?
            .with_inter_threads(1)
            .map_err(opt)?
            .with_parallel_execution(false)
            .map_err(opt)?
            .with_intra_op_spinning(false)
            .map_err(opt)?
            .with_inter_op_spinning(false)
            .map_err(opt)?
            .with_memory_pattern(true)
            .map_err(opt)?
            .commit_from_memory(bytes)
            .map_err(bad)?;
        let (k, embedding_dims) = check_signature(&session)?;
        let explains = session
            .outputs()
            .iter()
            .any(|o| o.name() == OUT_PREPROCESSED);
        Ok(Self {
            session,
            k,
            embedding_dims,
            explains,
        })
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// Whether the model's outputs include the preprocessed features explanations need.
    pub fn explains(&self) -> bool {
        self.explains
    }

    /// Runs `rows` rows of the 21 raw features (row-major) and returns all four outputs.
    pub fn predict(&mut self, x: &[f32], rows: usize) -> Result<Predictions> {
        let mut out = Predictions::default();
        self.predict_into(x, rows, &mut out)?;
        Ok(out)
    }

    /// As [`predict`](Self::predict), reusing `out`'s buffers.
    pub fn predict_into(&mut self, x: &[f32], rows: usize, out: &mut Predictions) -> Result<()> {
        if x.len() != rows * N_FEATURES {
            return Err(Error::Model(format!(
                "{} values for {rows} rows of {N_FEATURES} features",
                x.len()
            )));
        }
        out.clear();
        out.k = self.k;
        if rows == 0 {
            return Ok(());
        }
        // In runs of at most RUN_ROWS rows: ONNX Runtime's arena grows to the largest run's
        // intermediate tensors, so a million-row call costs no more memory than a small one.
        let preprocessed = self.explains && out.want_preprocessed;
        for (i, run) in x.chunks(RUN_ROWS * N_FEATURES).enumerate() {
            let n = run.len() / N_FEATURES;
            self.run_append(run, n, preprocessed, out)
                .map_err(|e| match e {
                    Error::Runtime(m) if rows > RUN_ROWS => Error::Runtime(format!(
                        "{m} (rows {}-{})",
                        i * RUN_ROWS + 1,
                        i * RUN_ROWS + n
                    )),
                    other => other,
                })?;
        }
        out.rows = rows;
        // The session's shapes are checked, not assumed: a model whose outputs do not fit
        // its rows is an error, never a slice out of bounds further on.
        for (name, got, want) in [
            (OUT_SEGMENT, out.segment.len(), rows),
            (OUT_PROBABILITIES, out.probabilities.len(), rows * self.k),
            (
                OUT_EMBEDDING,
                out.embedding.len(),
                rows * self.embedding_dims,
            ),
            (OUT_DISTANCES, out.distances.len(), rows * self.k),
            (
                OUT_PREPROCESSED,
                out.preprocessed.len(),
                if preprocessed { rows * N_FEATURES } else { 0 },
            ),
        ] {
            if got != want {
                out.clear();
                return Err(Error::Runtime(format!(
                    "output '{name}' has {got} values for {rows} rows, expected {want}"
                )));
            }
        }
        if let Some(&s) = out.segment.iter().find(|&&s| s < 0 || s as usize >= self.k) {
            out.clear();
            return Err(Error::Runtime(format!(
                "output '{OUT_SEGMENT}' holds segment {s}, outside 0..{}",
                self.k
            )));
        }
        Ok(())
    }

    /// Runs one batch and appends its outputs to `out`.
    fn run_append(
        &mut self,
        x: &[f32],
        rows: usize,
        preprocessed: bool,
        out: &mut Predictions,
    ) -> Result<()> {
        let input = TensorRef::from_array_view(([rows, N_FEATURES], x))
            .map_err(|e| Error::Runtime(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![INPUT => input])
            .map_err(|e| Error::Runtime(format!("inference: {e}")))?;
        let ext = |name: &str| Error::Runtime(format!("output '{name}' could not be read"));
        let (_, seg) = outputs[OUT_SEGMENT]
            .try_extract_tensor::<i64>()
            .map_err(|_| ext(OUT_SEGMENT))?;
        out.segment.extend_from_slice(seg);
        for (name, dst) in [
            (OUT_PROBABILITIES, &mut out.probabilities),
            (OUT_EMBEDDING, &mut out.embedding),
            (OUT_DISTANCES, &mut out.distances),
        ] {
            let (_, v) = outputs[name]
                .try_extract_tensor::<f32>()
                .map_err(|_| ext(name))?;
            dst.extend_from_slice(v);
        }
        if preprocessed {
            let (_, v) = outputs[OUT_PREPROCESSED]
                .try_extract_tensor::<f32>()
                .map_err(|_| ext(OUT_PREPROCESSED))?;
            out.preprocessed.extend_from_slice(v);
        }
        Ok(())
    }
}

/// The input must be float32 [N, 21] named `customers`; the four outputs must be there.
/// Returns k and the embedding width.
fn check_signature(session: &Session) -> Result<(usize, usize)> {
    let inputs = session.inputs();
    let [input] = inputs else {
        return Err(Error::Model(format!(
            "expected one input '{INPUT}', found {}",
            inputs.len()
        )));
    };
    let shape = input.dtype().tensor_shape().map(|s| s.to_vec());
    match shape.as_deref() {
        Some([_, w]) if *w == N_FEATURES as i64 => {}
        Some([_, w]) => {
            return Err(Error::Model(format!(
                "input '{}' has {w} features per row; the schema has {N_FEATURES}",
                input.name()
            )));
        }
        other => {
            return Err(Error::Model(format!(
                "input '{}' must be [N, {N_FEATURES}], found {other:?}",
                input.name()
            )));
        }
    }
    if input.name() != INPUT {
        return Err(Error::Model(format!(
            "input is named '{}', expected '{INPUT}'",
            input.name()
        )));
    }
    let width = |name: &str| -> Result<usize> {
        let o = session
            .outputs()
            .iter()
            .find(|o| o.name() == name)
            .ok_or_else(|| Error::Model(format!("output '{name}' is missing")))?;
        let s = o
            .dtype()
            .tensor_shape()
            .map(|s| s.to_vec())
            .unwrap_or_default();
        Ok(s.get(1).copied().unwrap_or(1).max(1) as usize)
    };
    width(OUT_SEGMENT)?;
    let k = width(OUT_PROBABILITIES)?;
    let dims = width(OUT_EMBEDDING)?;
    width(OUT_DISTANCES)?;
    Ok((k, dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_an_install_message() {
        let dir = tempfile::tempdir().unwrap();
        if std::env::var_os(LIBRARY_ENV).is_some() || std::env::var_os("ORT_DYLIB_PATH").is_some() {
            return; // an explicit path wins over the search; covered by the CLI test
        }
        let e = locate(None, &[dir.path().to_path_buf()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("libonnxruntime.so") && e.contains("scripts/setup.sh run"),
            "{e}"
        );
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
    }

    #[test]
    fn the_highest_version_in_a_directory_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "libonnxruntime.so.1.30.0",
            "libonnxruntime.so.1.31.1",
            "other.so",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        if std::env::var_os(LIBRARY_ENV).is_some() || std::env::var_os("ORT_DYLIB_PATH").is_some() {
            return;
        }
        let lib = locate(None, &[dir.path().to_path_buf()]).unwrap();
        assert!(lib.ends_with("libonnxruntime.so.1.31.1"), "{lib:?}");
        assert_eq!(version_of(&lib), "1.31.1");
    }

    #[test]
    fn a_configured_path_that_does_not_exist_is_named() {
        let e = locate(Some(Path::new("/nowhere/libonnxruntime.so")), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("inference.onnxruntime names /nowhere/libonnxruntime.so"),
            "{e}"
        );
    }
}
