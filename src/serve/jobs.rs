//! Training jobs: a bounded queue and ONE worker thread that runs them one at a time.
//!
//! A job trains on its data source, publishes the model to the store (export, parity check,
//! promotion gate) and, when the new model is promoted, hands it to the batcher, which switches
//! between two batches: serving keeps answering from the current model the whole time and no
//! request is dropped. A job can be cancelled while queued (it never starts) or while running
//! (training stops at its next stage or iteration; nothing is stored).
//!
//! Behind a load balancer the next request may reach another replica, so a job is visible
//! from every replica sharing the store: its id is unique across them (this process's random
//! tag, then a counter), and its record (state, stage, progress, result) is written to the
//! store as `jobs/<id>.json` when it is queued, every second while it runs, and when it
//! ends. A replica that does not run the job answers from that record; cancelling there
//! writes `jobs/<id>.cancel`, which the running replica reads within a second.

mod confine;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use serde::{Deserialize, Serialize};

use crate::config::{DeviceChoice, Settings};
use crate::error::{Error, Result};
use crate::inference::SessionOptions;
use crate::ingest::DataSource;
use crate::registry::ServedModel;
use crate::registry::store::ModelStore;
use crate::train::Stage;
use crate::train::classifier::{ClassifierChoice, ModelConfig};
use crate::train::progress::Monitor;
use confine::confine;

/// Jobs kept for `GET /api/v1/jobs/{id}` after they end; the oldest ended ones go first.
const KEEP_ENDED: usize = 100;
/// Jobs that may wait behind the running one.
const QUEUE_CAPACITY: usize = 8;

/// What a job may choose; anything left out comes from the service's settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobOptions {
    /// A data source as `categorizer train --data` takes it: a CSV/Parquet path on the server,
    /// or `synthetic:rows=N,seed=S`.
    pub source: Option<String>,
    pub device: Option<DeviceChoice>,
    pub classifier: Option<ClassifierChoice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn ended(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// What a finished job produced.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobResult {
    pub model_version: String,
    pub promoted: bool,
    pub promotion_note: String,
    pub classifier: String,
    pub weighted_f1: f64,
    pub silhouette: f64,
    pub davies_bouldin: f64,
    pub rows: usize,
    pub device: String,
    pub seconds: f64,
    /// Whether the service now answers with this model.
    pub serving: bool,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub state: JobState,
    /// The training stage running now (empty while queued).
    pub stage: String,
    /// Iterations of the stage done / total, when it is iterative.
    pub stage_done: u64,
    pub stage_total: u64,
    /// Stages finished / all stages, in [0, 1].
    pub progress: f64,
    pub cancel_requested: bool,
    pub options: JobOptions,
    /// What started the job when no client did: live monitoring's drift, with the features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub result: Option<JobResult>,
    pub error: Option<String>,
}

struct Record {
    /// What the job's clients see: its source without a password.
    view: JobView,
    /// What the job runs with: the source as confined, the password kept.
    options: JobOptions,
    monitor: Arc<Monitor>,
}

/// What a job needs from the service.
#[derive(Clone)]
pub struct TrainingSetup {
    pub settings: Settings,
    pub model_config: ModelConfig,
    pub store: Arc<dyn ModelStore>,
    pub options: SessionOptions,
    /// Bearer token for the training endpoints; `None`: loopback clients only.
    pub admin_token: Option<String>,
    /// The latest training run's validation report (`GET /validation`).
    pub validation: Arc<std::sync::RwLock<Option<Arc<crate::validate::Report>>>>,
}

/// Hands a promoted model to whatever serves (the batcher).
pub type Install = Box<dyn Fn(ServedModel) -> Result<()> + Send>;

/// The job table and the queue in front of the worker.
#[derive(Clone)]
pub struct Jobs {
    records: Arc<Mutex<BTreeMap<u64, Record>>>,
    next: Arc<AtomicU64>,
    /// This process's part of every job id it hands out.
    tag: Arc<str>,
    tx: mpsc::SyncSender<u64>,
    limits: Arc<crate::config::JobsSettings>,
    /// The store the jobs publish to (segment renames write there too).
    pub store: Arc<dyn ModelStore>,
    pub options: SessionOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no job {0}")]
    NotFound(String),
    #[error("job {0} has already ended")]
    Ended(String),
    #[error("{QUEUE_CAPACITY} jobs are already waiting; retry when one has finished")]
    QueueFull,
    #[error("{field}: {message}")]
    BadOption {
        field: &'static str,
        message: String,
    },
}

impl Jobs {
    /// Starts the worker thread. `install` is called with each promoted model.
    pub fn start(setup: TrainingSetup, install: Install, tag: &str) -> Self {
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let jobs = Self {
            records: Arc::default(),
            next: Arc::new(AtomicU64::new(1)),
            tag: tag.into(),
            tx,
            limits: Arc::new(setup.settings.jobs.clone()),
            store: setup.store.clone(),
            options: setup.options.clone(),
        };
        let records = jobs.records.clone();
        let tag = jobs.tag.clone();
        std::thread::Builder::new()
            .name("training".into())
            .spawn(move || {
                for id in rx {
                    run_one(&records, id, &tag, &setup, &install);
                }
            })
            .expect("spawning the training thread");
        jobs
    }

    /// Queues a job after checking its options.
    pub fn submit(&self, options: JobOptions) -> Result<JobView, JobError> {
        self.submit_with(options, None)
    }

    /// Queues a job that `trigger` started (not a client): the record says so.
    pub fn submit_with(
        &self,
        mut options: JobOptions,
        trigger: Option<String>,
    ) -> Result<JobView, JobError> {
        let mut shown = options.clone();
        if let Some(s) = &options.source {
            let confined = confine(s, &self.limits).map_err(|message| JobError::BadOption {
                field: "source",
                message,
            })?;
            shown.source = Some(crate::ingest::mongo::redact(s));
            options.source = Some(confined);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let view = JobView {
            id: format!("{}-{id}", self.tag),
            state: JobState::Queued,
            stage: String::new(),
            stage_done: 0,
            stage_total: 0,
            progress: 0.0,
            cancel_requested: false,
            options: shown,
            trigger,
            created_at: now(),
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
        };
        {
            let mut records = self.records.lock().expect("job table");
            records.insert(
                id,
                Record {
                    view: view.clone(),
                    options,
                    monitor: Arc::default(),
                },
            );
        }
        if self.tx.try_send(id).is_err() {
            self.records.lock().expect("job table").remove(&id);
            return Err(JobError::QueueFull);
        }
        share(self.store.as_ref(), &view);
        Ok(view)
    }

    /// A job of this replica, live; or another replica's, from its record in the store.
    /// Blocking (the store): call it off the async threads.
    pub fn get(&self, id: &str) -> Result<JobView, JobError> {
        if let Some(n) = self.own(id) {
            let records = self.records.lock().expect("job table");
            let r = records
                .get(&n)
                .ok_or_else(|| JobError::NotFound(id.into()))?;
            return Ok(live_view(r));
        }
        shared(self.store.as_ref(), id).ok_or_else(|| JobError::NotFound(id.into()))
    }

    /// The counter of one of this replica's job ids.
    fn own(&self, id: &str) -> Option<u64> {
        id.strip_prefix(&*self.tag)?.strip_prefix('-')?.parse().ok()
    }

    /// How many jobs are in `state` (for /metrics, without copying the jobs).
    pub fn count(&self, state: JobState) -> usize {
        let records = self.records.lock().expect("job table");
        records.values().filter(|r| r.view.state == state).count()
    }

    /// Every job known, newest first.
    pub fn list(&self) -> Vec<JobView> {
        let records = self.records.lock().expect("job table");
        records.values().rev().map(live_view).collect()
    }

    /// Cancels a queued job at once, or asks a running one to stop; another replica's job
    /// through the store (its replica reads the request within a second). Blocking.
    pub fn cancel(&self, id: &str) -> Result<JobView, JobError> {
        let Some(n) = self.own(id) else {
            let store = self.store.as_ref();
            let mut view = shared(store, id).ok_or_else(|| JobError::NotFound(id.into()))?;
            if view.state.ended() {
                return Err(JobError::Ended(id.into()));
            }
            if let Err(e) = store.write_pointer(&cancel_name(id), "cancel\n") {
                tracing::warn!("job {id}: the cancel request could not be stored: {e}");
                return Err(JobError::NotFound(id.into()));
            }
            view.cancel_requested = true;
            return Ok(view);
        };
        let mut records = self.records.lock().expect("job table");
        let r = records
            .get_mut(&n)
            .ok_or_else(|| JobError::NotFound(id.into()))?;
        if r.view.state.ended() {
            return Err(JobError::Ended(id.into()));
        }
        r.monitor.cancel();
        r.view.cancel_requested = true;
        if r.view.state == JobState::Queued {
            r.view.state = JobState::Cancelled;
            r.view.finished_at = Some(now());
        }
        let view = live_view(r);
        drop(records);
        share(self.store.as_ref(), &view);
        Ok(view)
    }
}

/// 8 hex digits for a serving instance (one per process in production), from the clock, the
/// process id and a random hasher key: two replicas starting in the same nanosecond with the
/// same pid are what it would take to collide. Job ids and the monitoring buckets a replica
/// writes carry it.
pub fn replica_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

fn record_name(id: &str) -> String {
    format!("jobs/{id}.json")
}

fn cancel_name(id: &str) -> String {
    format!("jobs/{id}.cancel")
}

/// Writes a job's record to the store, for the other replicas; a failure is logged (the job
/// goes on, and is still seen from this replica).
fn share(store: &dyn ModelStore, view: &JobView) {
    let write = serde_json::to_string(view)
        .map_err(Error::from)
        .and_then(|text| store.write_pointer(&record_name(&view.id), &text));
    if let Err(e) = write {
        tracing::warn!("job {}: its record could not be stored: {e}", view.id);
    }
}

/// Another replica's job, from its record in the store.
fn shared(store: &dyn ModelStore, id: &str) -> Option<JobView> {
    // An id is the tag, a dash and a number: nothing else reaches the store's keys.
    let (tag, n) = id.split_once('-')?;
    if tag.len() != 8 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) || n.parse::<u64>().is_err() {
        return None;
    }
    let text = store.read_pointer(&record_name(id)).ok()??;
    serde_json::from_str(&text).ok()
}

fn live_view(r: &Record) -> JobView {
    let mut v = r.view.clone();
    if v.state == JobState::Running {
        take_stage(&mut v, &r.monitor);
        v.progress = r.monitor.progress();
    }
    v
}

/// Copies the monitor's stage and its iterations into `v`.
fn take_stage(v: &mut JobView, monitor: &Monitor) {
    (v.stage, v.stage_done, v.stage_total) = monitor.snapshot();
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::dates::rfc3339(secs)
}

/// The job table, shared by the handlers and the worker.
type Records = Mutex<BTreeMap<u64, Record>>;

fn run_one(records: &Records, id: u64, tag: &str, setup: &TrainingSetup, install: &Install) {
    let shown = format!("{tag}-{id}");
    let store = setup.store.as_ref();
    if cancelled_elsewhere(records, id, &shown, store) {
        return;
    }
    let Some((options, monitor)) = begin(records, id) else {
        return;
    };
    tracing::info!("training job {shown} started");
    let done = std::sync::atomic::AtomicBool::new(false);
    let outcome = std::thread::scope(|s| {
        s.spawn(|| share_while_running(records, id, &shown, store, &monitor, &done));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            train_and_publish(id, &options, setup, &monitor, install)
        }))
        .unwrap_or_else(|_| Err(Error::Training("the training run panicked".into())));
        done.store(true, Ordering::Relaxed);
        outcome
    });
    let mut records = records.lock().expect("job table");
    if let Some(r) = records.get_mut(&id) {
        finish(r, id, &monitor, outcome);
        share(store, &r.view);
    }
    forget_oldest(&mut records);
}

/// Whether the job was cancelled through another replica while it waited here; if so, its
/// record says so.
fn cancelled_elsewhere(records: &Records, id: u64, shown: &str, store: &dyn ModelStore) -> bool {
    if !matches!(store.read_pointer(&cancel_name(shown)), Ok(Some(_))) {
        return false;
    }
    let mut records = records.lock().expect("job table");
    if let Some(r) = records.get_mut(&id) {
        r.monitor.cancel();
        r.view.cancel_requested = true;
        r.view.state = JobState::Cancelled;
        r.view.finished_at = Some(now());
        share(store, &r.view);
    }
    true
}

/// Marks a queued job running: its options and monitor, or None when it is gone or was
/// cancelled while it waited.
fn begin(records: &Records, id: u64) -> Option<(JobOptions, Arc<Monitor>)> {
    let mut records = records.lock().expect("job table");
    let r = records.get_mut(&id)?;
    if r.view.state != JobState::Queued {
        return None; // cancelled while it waited
    }
    // Running and its first stage together: a poll never sees a running job without one.
    r.monitor.set_stage(Stage::Ingest, "Reading the data");
    r.view.state = JobState::Running;
    r.view.started_at = Some(now());
    take_stage(&mut r.view, &r.monitor);
    Some((r.options.clone(), r.monitor.clone()))
}

/// While the job runs (until `done`): its record to the store every second, and a cancel
/// request from another replica read back.
fn share_while_running(
    records: &Records,
    id: u64,
    shown: &str,
    store: &dyn ModelStore,
    monitor: &Monitor,
    done: &std::sync::atomic::AtomicBool,
) {
    while !done.load(Ordering::Relaxed) {
        let view = records.lock().expect("job table").get(&id).map(live_view);
        if let Some(mut view) = view {
            if matches!(store.read_pointer(&cancel_name(shown)), Ok(Some(_))) {
                monitor.cancel();
                if let Some(r) = records.lock().expect("job table").get_mut(&id) {
                    r.view.cancel_requested = true;
                }
                view.cancel_requested = true;
            }
            share(store, &view);
        }
        for _ in 0..10 {
            if done.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Records how the job ended.
fn finish(r: &mut Record, id: u64, monitor: &Monitor, outcome: Result<JobResult>) {
    take_stage(&mut r.view, monitor);
    r.view.finished_at = Some(now());
    match outcome {
        Ok(result) => {
            tracing::info!(
                "training job {id} succeeded: model {} ({})",
                result.model_version,
                if result.promoted {
                    "promoted"
                } else {
                    "not promoted"
                }
            );
            r.view.state = JobState::Succeeded;
            r.view.progress = 1.0;
            r.view.result = Some(result);
        }
        Err(Error::Cancelled) => {
            tracing::info!("training job {id} cancelled");
            r.view.state = JobState::Cancelled;
        }
        Err(e) => {
            tracing::warn!("training job {id} failed: {e}");
            r.view.state = JobState::Failed;
            r.view.error = Some(client_message(&e));
        }
    }
}

/// Forgets the oldest ended jobs beyond the [`KEEP_ENDED`] kept.
fn forget_oldest(records: &mut BTreeMap<u64, Record>) {
    let ended: Vec<u64> = records
        .iter()
        .filter(|(_, r)| r.view.state.ended())
        .map(|(&k, _)| k)
        .collect();
    for k in ended.iter().take(ended.len().saturating_sub(KEEP_ENDED)) {
        records.remove(k);
    }
}

/// A failed job's error as its clients see it: reading errors (which may quote the file)
/// are summarised; the whole error is in the server's log.
fn client_message(e: &Error) -> String {
    match e {
        Error::Polars(_) | Error::Json(_) => {
            "the data could not be read (the server's log has the details)".into()
        }
        Error::Io { .. } => {
            "the data could not be opened (the server's log has the details)".into()
        }
        other => crate::ingest::mongo::redact(&other.to_string()),
    }
}

fn train_and_publish(
    id: u64,
    options: &JobOptions,
    setup: &TrainingSetup,
    monitor: &Arc<Monitor>,
    install: &Install,
) -> Result<JobResult> {
    let settings = setup.settings.clone();
    let source = DataSource::parse(options.source.as_deref().unwrap_or(&settings.data.source))?
        .with_s3_settings(&settings.models.s3);
    let mut model_config = setup.model_config.clone();
    if let Some(c) = options.classifier {
        model_config.classifier = c;
    }
    let run_dir = std::env::temp_dir().join(format!("categorizer-job-{}-{id}", std::process::id()));
    let device = options.device.unwrap_or(settings.device);
    let req = crate::train::TrainRequest::new(source, settings, model_config, &run_dir)
        .with_device(device)
        .with_monitor(monitor.clone());
    let store = setup.store.as_ref();
    let trained = crate::workflow::train_and_publish(req, Some(store), &setup.options);
    // The run directory's content is in the manifest; only the store keeps the model.
    let _ = std::fs::remove_dir_all(&run_dir);
    // The latest validation report, whether the run went on to publish or not.
    if let (Some(report), Ok(mut latest)) = (monitor.validation(), setup.validation.write()) {
        *latest = Some(report);
    }
    let trained = trained?;
    let outcome = &trained.outcome;
    let published = trained.published.as_ref().expect("a store was given");
    let m = &published.manifest;
    let mut serving = false;
    if m.promotion.promoted {
        let model = ServedModel::from_store(store, &published.version, &setup.options)?;
        install(model)?;
        serving = true;
    }
    Ok(JobResult {
        model_version: published.version.clone(),
        promoted: m.promotion.promoted,
        promotion_note: m.promotion.note.clone(),
        classifier: m.classifier.clone(),
        weighted_f1: m.promotion.weighted_f1,
        silhouette: m.metrics.silhouette,
        davies_bouldin: m.metrics.davies_bouldin,
        rows: m.metrics.rows,
        device: format!("{} ({})", m.device.kind, m.device.backend),
        seconds: outcome
            .metrics
            .seconds
            .get("total")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0),
        serving,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_grows_with_the_stages() {
        let m = Monitor::default();
        assert_eq!(m.progress(), 0.0);
        m.set_stage(Stage::Pca, "PCA");
        let a = m.progress();
        m.set_stage(Stage::KMeans, "KMeans");
        let b = m.progress();
        m.set_stage(Stage::Publish, "Publishing the model");
        let c = m.progress();
        assert!(0.0 < a && a < b && b < c && c < 1.0, "{a} {b} {c}");
    }
}
