//! The dynamic batcher: one thread owns the ONNX Runtime session; requests queue in front of
//! it and are merged into one run.
//!
//! The worker takes the first waiting request at once (a lone request never waits), then
//! everything else already queued, up to `max_batch_rows`. Only when it found company (the
//! server is under load) may it wait up to `max_delay` for more rows. The queue is bounded: a
//! full queue is an immediate `Busy` (503 + Retry-After upstream). A request whose deadline has
//! passed while it waited is answered `Expired` without being run. The model can be swapped
//! between two batches: requests already queued are answered by whichever model runs them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::metrics::{Metrics, Stage};
use crate::answer::Scores;
use crate::error::Error;
use crate::explain::Segments;
use crate::inference::{OnnxModel, Predictions, SessionOptions};
use crate::registry::ServedModel;
use crate::schema::N_FEATURES;

#[derive(Debug, Clone)]
pub struct BatcherConfig {
    pub enabled: bool,
    pub max_batch_rows: usize,
    pub max_delay: Duration,
    pub queue_capacity: usize,
    /// A batch of at least this many rows runs in `sessions` parts at once (at most
    /// [`MAX_SESSIONS`]), one ONNX Runtime session and thread each (0: always one).
    pub split_rows: usize,
    pub sessions: usize,
    /// How the extra sessions are made.
    pub session_options: SessionOptions,
}

/// What one request gets back: its rows' slice of the batch outputs.
#[derive(Debug, Clone)]
pub struct Answer {
    pub model_version: Arc<str>,
    /// The answering model's segments: names, means, and the space explanations use.
    pub segments: Arc<Segments>,
    pub k: usize,
    pub segment: Vec<i64>,
    pub probabilities: Vec<f32>,
    pub embedding: Vec<f32>,
    pub distances: Vec<f32>,
    /// The preprocessed features [n, 21], when the request asked for explanations and the
    /// model can give them.
    pub preprocessed: Vec<f32>,
}

impl Answer {
    /// The outputs as [`crate::answer`] reads them: each row's answer by the one rule of
    /// every door.
    pub fn scores(&self) -> Scores<'_> {
        Scores {
            k: self.k,
            segment: &self.segment,
            probabilities: &self.probabilities,
            distances: &self.distances,
            preprocessed: &self.preprocessed,
            segments: &self.segments,
        }
    }

    /// Whether the request asked for explanations and the model can give them.
    pub fn explained(&self) -> bool {
        !self.preprocessed.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("the prediction queue is full")]
    Busy,
    #[error("the request's deadline passed before it ran")]
    Expired,
    #[error("the inference worker has stopped")]
    Stopped,
    #[error("{0}")]
    Inference(String),
}

enum Msg {
    Predict(Job),
    Swap(Box<ServedModel>),
}

struct Job {
    rows: Vec<f32>,
    n: usize,
    explain: bool,
    deadline: Instant,
    reply: oneshot::Sender<Result<Answer, BatchError>>,
}

/// Handle to the worker; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Msg>,
    /// Rows per piece: a bigger request is queued a piece at a time.
    max_rows: usize,
}

impl Batcher {
    /// Starts the worker thread over `model`; it records each batch's size in `metrics`.
    pub fn start(model: ServedModel, config: BatcherConfig, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let max_rows = config.max_batch_rows.max(1);
        std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || worker(model, config, rx, metrics))
            .expect("spawning the inference thread");
        Self { tx, max_rows }
    }

    /// Queues `n` rows (row-major, 21 features each) and waits for their predictions. More
    /// than `max_batch_rows` rows go a piece at a time, each queued after the previous one is
    /// answered, so requests that arrive meanwhile run between the pieces instead of waiting
    /// for the whole of a big request. All pieces must come from one model: if the model is
    /// switched between two pieces, the request starts over (once), then fails.
    pub async fn predict(
        &self,
        rows: Vec<f32>,
        n: usize,
        deadline: Instant,
        explain: bool,
    ) -> Result<Answer, BatchError> {
        if n <= self.max_rows {
            return self.predict_piece(rows, n, deadline, explain).await;
        }
        if rows.len() != n * N_FEATURES {
            return Err(BatchError::Inference(format!(
                "{} values for {n} rows of {N_FEATURES} features",
                rows.len()
            )));
        }
        for _ in 0..2 {
            let mut whole: Option<Answer> = None;
            let mut same_model = true;
            for piece in rows.chunks(self.max_rows * N_FEATURES) {
                let a = self
                    .predict_piece(piece.to_vec(), piece.len() / N_FEATURES, deadline, explain)
                    .await?;
                match &mut whole {
                    None => whole = Some(a),
                    Some(w) if w.model_version != a.model_version => {
                        same_model = false;
                        break;
                    }
                    Some(w) => {
                        w.segment.extend_from_slice(&a.segment);
                        w.probabilities.extend_from_slice(&a.probabilities);
                        w.embedding.extend_from_slice(&a.embedding);
                        w.distances.extend_from_slice(&a.distances);
                        w.preprocessed.extend_from_slice(&a.preprocessed);
                    }
                }
            }
            if same_model {
                return whole.ok_or_else(|| BatchError::Inference("no rows".into()));
            }
        }
        Err(BatchError::Inference(
            "the model was switched twice while this request ran; retry".into(),
        ))
    }

    /// One piece of at most `max_batch_rows` rows through the queue.
    async fn predict_piece(
        &self,
        rows: Vec<f32>,
        n: usize,
        deadline: Instant,
        explain: bool,
    ) -> Result<Answer, BatchError> {
        if rows.len() != n * N_FEATURES {
            return Err(BatchError::Inference(format!(
                "{} values for {n} rows of {N_FEATURES} features",
                rows.len()
            )));
        }
        let (reply, rx) = oneshot::channel();
        let job = Job {
            rows,
            n,
            explain,
            deadline,
            reply,
        };
        self.tx.try_send(Msg::Predict(job)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => BatchError::Busy,
            mpsc::error::TrySendError::Closed(_) => BatchError::Stopped,
        })?;
        rx.await.map_err(|_| BatchError::Stopped)?
    }

    /// Replaces the model between two batches; no queued request is dropped.
    pub async fn swap(&self, model: ServedModel) -> Result<(), BatchError> {
        self.tx
            .send(Msg::Swap(Box::new(model)))
            .await
            .map_err(|_| BatchError::Stopped)
    }

    /// [`Batcher::swap`] from a thread outside the async runtime (the training worker).
    pub fn swap_blocking(&self, model: ServedModel) -> Result<(), BatchError> {
        self.tx
            .blocking_send(Msg::Swap(Box::new(model)))
            .map_err(|_| BatchError::Stopped)
    }

    /// Whether the worker is still taking requests.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Messages waiting for the worker: the channel's used capacity (no counter to keep in
    /// step with it).
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// Most sessions a big batch is split across: each holds its own copy of the model and its
/// arena, and a batch of `max_batch_rows` gains little from parts smaller than this gives.
pub const MAX_SESSIONS: usize = 4;

struct Loaded {
    model: ServedModel,
    version: Arc<str>,
    segments: Arc<Segments>,
    /// A batch of at least this many rows runs in parts ([`BatcherConfig::split_rows`]).
    split_rows: usize,
    /// More sessions over the same model, each with the outputs of its part of a big batch.
    extra: Vec<(OnnxModel, Predictions)>,
}

impl Loaded {
    fn new(model: ServedModel, config: &BatcherConfig) -> Self {
        let wanted = if config.split_rows > 0 {
            config.sessions.min(MAX_SESSIONS).saturating_sub(1)
        } else {
            0
        };
        let mut extra = Vec::with_capacity(wanted);
        for _ in 0..wanted {
            match model.session(&config.session_options) {
                Ok(s) => extra.push((s, Predictions::default())),
                Err(e) => {
                    tracing::warn!(
                        "a second inference session could not be made ({e}); big batches run whole"
                    );
                    break;
                }
            }
        }
        Self {
            version: model.manifest.version.as_str().into(),
            segments: Arc::new(model.manifest.explainer()),
            model,
            split_rows: config.split_rows,
            extra,
        }
    }

    /// Predictions for `n` rows of `x`: at once in one part per session when `n` reaches
    /// `split_rows`, the parts' outputs then joined in order (each row's answer is the same
    /// either way: the graph scores rows independently).
    fn predict(&mut self, x: &[f32], n: usize, out: &mut Predictions) -> Result<(), Error> {
        if self.extra.is_empty() || n < self.split_rows {
            return self.model.onnx.predict_into(x, n, out);
        }
        let per = n.div_ceil(1 + self.extra.len());
        let (first, rest) = x.split_at(per.min(n) * N_FEATURES);
        let want_preprocessed = out.want_preprocessed;
        let Self { model, extra, .. } = self;
        let (whole, parts) = std::thread::scope(|scope| {
            let handles: Vec<_> = rest
                .chunks(per * N_FEATURES)
                .zip(extra.iter_mut())
                .map(|(chunk, (session, part))| {
                    part.want_preprocessed = want_preprocessed;
                    scope.spawn(move || session.predict_into(chunk, chunk.len() / N_FEATURES, part))
                })
                .collect();
            let whole = model
                .onnx
                .predict_into(first, first.len() / N_FEATURES, out);
            let parts: Vec<Result<(), Error>> = handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Runtime("an inference part panicked".into()))
                    })
                })
                .collect();
            (whole, parts)
        });
        whole?;
        let used = parts.len();
        for part in parts {
            part?;
        }
        for (_, part) in &extra[..used] {
            out.append(part);
        }
        Ok(())
    }
}

fn worker(
    model: ServedModel,
    config: BatcherConfig,
    mut rx: mpsc::Receiver<Msg>,
    metrics: Arc<Metrics>,
) {
    let mut loaded = Loaded::new(model, &config);
    let mut batch: Vec<Job> = Vec::new();
    let mut buffers = Buffers::default();
    let max_rows = config.max_batch_rows.max(1);
    while let Some(first) = rx.blocking_recv() {
        let mut pending = Some(first);
        batch.clear();
        let mut rows = 0usize;
        let mut waited = false;
        loop {
            let msg = match pending.take() {
                Some(m) => m,
                None => match rx.try_recv() {
                    Ok(m) => m,
                    Err(mpsc::error::TryRecvError::Empty)
                        if config.enabled
                            && batch.len() >= 2
                            && rows < max_rows
                            && !waited
                            && !config.max_delay.is_zero() =>
                    {
                        // Under load: give the batch one short chance to fill up.
                        waited = true;
                        std::thread::sleep(config.max_delay);
                        continue;
                    }
                    Err(_) => break,
                },
            };
            match msg {
                Msg::Swap(m) => {
                    // Run what was gathered with the old model, then switch.
                    supervised_run(&mut loaded, &mut batch, &mut buffers, &metrics);
                    loaded = Loaded::new(*m, &config);
                    rows = 0;
                    continue;
                }
                Msg::Predict(job) => {
                    // A client that left (its handler was dropped) is not worked for.
                    if job.reply.is_closed() {
                        metrics.expired.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if job.deadline <= Instant::now() {
                        metrics.expired.fetch_add(1, Ordering::Relaxed);
                        let _ = job.reply.send(Err(BatchError::Expired));
                        continue;
                    }
                    rows += job.n;
                    batch.push(job);
                }
            }
            if !config.enabled || rows >= max_rows {
                break;
            }
        }
        supervised_run(&mut loaded, &mut batch, &mut buffers, &metrics);
    }
}

/// What the worker reuses from one batch to the next: the batch's rows joined, and its
/// outputs.
#[derive(Default)]
struct Buffers {
    input: Vec<f32>,
    out: Predictions,
}

/// [`run`], with a panic inside it (ONNX Runtime, a shape nobody expected) caught: the batch's
/// requests get an error, the panic is counted and logged, and the worker takes the next batch.
fn supervised_run(
    loaded: &mut Loaded,
    batch: &mut Vec<Job>,
    buffers: &mut Buffers,
    metrics: &Metrics,
) {
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(loaded, batch, buffers, metrics)
    }));
    if ran.is_err() {
        metrics.inference_panics.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            "inference panicked on a batch of {} requests; they get an error, the worker goes on",
            batch.len()
        );
        for job in batch.drain(..) {
            let _ = job.reply.send(Err(BatchError::Inference(
                "inference failed on this batch (logged); retry".into(),
            )));
        }
        *buffers = Buffers::default();
    }
}

fn run(loaded: &mut Loaded, batch: &mut Vec<Job>, buffers: &mut Buffers, metrics: &Metrics) {
    if batch.is_empty() {
        return;
    }
    let Buffers { input, out } = buffers;
    let n: usize = batch.iter().map(|j| j.n).sum();
    out.want_preprocessed = batch.iter().any(|j| j.explain);
    let started = Instant::now();
    let result = if batch.len() == 1 {
        loaded.predict(&batch[0].rows, n, out)
    } else {
        input.clear();
        for j in batch.iter() {
            input.extend_from_slice(&j.rows);
        }
        loaded.predict(input, n, out)
    };
    metrics.stage(Stage::Inference, started);
    metrics.batch_rows.observe(n as f64);
    let k = out.k;
    let dims = out.embedding.len().checked_div(n).unwrap_or(0);
    // Predicted and atypical customers per segment, added to the metrics once per batch.
    let mut counts = vec![(0u64, 0u64); k];
    let mut at = 0usize;
    for job in batch.drain(..) {
        let answer = match &result {
            Ok(()) => {
                let r = at..at + job.n;
                let segment = out.segment[r.clone()].to_vec();
                let distances = out.distances[r.start * k..r.end * k].to_vec();
                for (&s, d) in segment.iter().zip(distances.chunks_exact(k.max(1))) {
                    let c = &mut counts[s as usize];
                    c.0 += 1;
                    c.1 += u64::from(loaded.segments.atypical(d, s as usize));
                }
                let preprocessed = if job.explain && !out.preprocessed.is_empty() {
                    out.preprocessed[r.start * N_FEATURES..r.end * N_FEATURES].to_vec()
                } else {
                    Vec::new()
                };
                Ok(Answer {
                    model_version: loaded.version.clone(),
                    segments: loaded.segments.clone(),
                    k,
                    segment,
                    probabilities: out.probabilities[r.start * k..r.end * k].to_vec(),
                    embedding: out.embedding[r.start * dims..r.end * dims].to_vec(),
                    distances,
                    preprocessed,
                })
            }
            Err(e) => Err(BatchError::Inference(match e {
                Error::Runtime(m) | Error::Model(m) => m.clone(),
                other => other.to_string(),
            })),
        };
        at += job.n;
        let _ = job.reply.send(answer);
    }
    for (s, &(n, a)) in counts.iter().enumerate() {
        if n > 0 {
            metrics.predictions.add(s, n);
            metrics.atypical.add(s, a);
        }
    }
}
