//! The replica's live monitor: every prediction path hands it the customers it scored (their
//! 21 features, segments and atypical flags) and the row errors it refused; a thread of its
//! own adds them to time buckets ([`crate::monitor::Bucket`]), so the request path pays a
//! copy of its rows and a push onto an inbox under a lock, never the sketch nor a thread
//! wake-up (the thread takes the inbox every 100 ms).
//!
//! The thread closes a bucket when its span ends, writes it to the model store (under
//! `monitoring/<version>/<replica>/`, when there is a store and `monitoring.write_to_store`),
//! drops buckets past `monitoring.retention_ms`, and every `monitoring.interval_ms` measures
//! the last window's drift ([`crate::monitor::report`]) for `/metrics` and the page. The
//! inbox is bounded in rows: when the thread falls behind, what does not fit is counted as
//! dropped (`categorizer_monitoring_dropped_rows_total`), never waited for.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{MonitoringSettings, ValidationSettings};
use crate::monitor::{Bucket, Report, bucket_name, bucket_start, now_ms};
use crate::registry::Manifest;
use crate::registry::store::ModelStore;

/// Flush requests the control channel holds.
const CHANNEL: usize = 16;

/// Rows queued for the monitor's thread at most (~22 MB of features): beyond, a request's rows
/// are counted as dropped instead of queued, so memory stays bounded whatever the load.
const QUEUED_ROWS: u64 = 262_144;

/// What a request path hands over: for `version`'s bucket of `at_ms`.
struct Entry {
    version: Arc<str>,
    at_ms: u64,
    what: Seen,
}

enum Seen {
    Scored {
        rows: Vec<f32>,
        segments: Vec<i64>,
        atypical: Vec<bool>,
    },
    Refused(Vec<Option<String>>),
}

impl Seen {
    /// Customers it counts.
    fn len(&self) -> usize {
        match self {
            Seen::Scored { segments, .. } => segments.len(),
            Seen::Refused(fields) => fields.len(),
        }
    }
}

/// A request to write the open buckets now (shutdown), answered when done.
type Flush = std::sync::mpsc::Sender<()>;

/// The served model, as the monitor's thread asks for it.
pub type ServedManifest = Box<dyn Fn() -> Arc<Manifest> + Send + Sync>;

/// Starts a training job on `monitoring.retrain_source` with the reason as its trigger;
/// returns the job id, or why it could not.
pub type Retrain = Box<dyn Fn(String) -> Result<String, String> + Send + Sync>;

struct Shared {
    settings: MonitoringSettings,
    validation: ValidationSettings,
    /// By (version, start): the buckets kept for `retention_ms`.
    buckets: Mutex<BTreeMap<(String, u64), Bucket>>,
    dropped_rows: AtomicU64,
    /// Rows sent and not yet taken by the thread.
    queued_rows: AtomicU64,
    /// What the request paths handed over since the thread last looked.
    inbox: Mutex<Vec<Entry>>,
    written: AtomicU64,
    write_failures: AtomicU64,
    /// The last periodic report.
    last: Mutex<Option<Arc<Report>>>,
    /// With `monitoring.retrain_on_drift`: how a lasting drift starts a job.
    retrain: Mutex<Option<Retrain>>,
}

/// Handle to the monitor; cheap to clone. Disabled (`monitoring.enabled: false`): every call
/// does nothing and the reports say so.
#[derive(Clone)]
pub struct Monitor {
    tx: Option<SyncSender<Flush>>,
    shared: Arc<Shared>,
}

impl Monitor {
    /// Starts the monitor's thread; closed buckets go to `store` under `replica`'s folder.
    pub fn start(
        settings: &MonitoringSettings,
        validation: &ValidationSettings,
        store: Option<Arc<dyn ModelStore>>,
        replica: &str,
        served: ServedManifest,
    ) -> Self {
        let shared = Arc::new(Shared {
            settings: settings.clone(),
            validation: validation.clone(),
            buckets: Mutex::new(BTreeMap::new()),
            dropped_rows: AtomicU64::new(0),
            queued_rows: AtomicU64::new(0),
            inbox: Mutex::new(Vec::new()),
            written: AtomicU64::new(0),
            write_failures: AtomicU64::new(0),
            last: Mutex::new(None),
            retrain: Mutex::new(None),
        });
        if !settings.enabled {
            return Self { tx: None, shared };
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL);
        let store = store.filter(|_| settings.write_to_store);
        let (s, replica) = (shared.clone(), replica.to_string());
        std::thread::Builder::new()
            .name("monitoring".into())
            .spawn(move || run(rx, s, store, replica, served))
            .expect("spawning the monitoring thread");
        Self {
            tx: Some(tx),
            shared,
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// How a drift that lasts `monitoring.retrain_after` reports starts a training job (only
    /// with `monitoring.retrain_on_drift`; the service sets it when it can train).
    pub fn set_retrain(&self, retrain: Retrain) {
        if let Ok(mut r) = self.shared.retrain.lock() {
            *r = Some(retrain);
        }
    }

    /// Customers `version` scored: `rows` row-major (21 features each), their segments and
    /// atypical flags. Never blocks.
    pub fn scored(
        &self,
        version: Arc<str>,
        rows: Vec<f32>,
        segments: Vec<i64>,
        atypical: Vec<bool>,
    ) {
        let n = segments.len() as u64;
        let what = Seen::Scored {
            rows,
            segments,
            atypical,
        };
        self.push(version, what, n);
    }

    /// Customers refused with a row error, by the field each error named.
    pub fn refused(&self, version: Arc<str>, fields: Vec<Option<String>>) {
        if !fields.is_empty() {
            let n = fields.len() as u64;
            self.push(version, Seen::Refused(fields), n);
        }
    }

    /// Puts `n` customers on the inbox, or counts them as dropped when it holds
    /// [`QUEUED_ROWS`] already.
    fn push(&self, version: Arc<str>, what: Seen, n: u64) {
        if self.tx.is_none() {
            return;
        }
        let (queued, dropped) = (&self.shared.queued_rows, &self.shared.dropped_rows);
        if queued.fetch_add(n, Ordering::Relaxed) + n > QUEUED_ROWS {
            queued.fetch_sub(n, Ordering::Relaxed);
            dropped.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let entry = Entry {
            version,
            at_ms: now_ms(),
            what,
        };
        match self.shared.inbox.lock() {
            Ok(mut inbox) => inbox.push(entry),
            Err(_) => {
                queued.fetch_sub(n, Ordering::Relaxed);
                dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Writes the open buckets to the store (at shutdown); waits at most `timeout`.
    pub fn flush(&self, timeout: Duration) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = std::sync::mpsc::channel();
        if tx.send(done).is_ok() {
            let _ = wait.recv_timeout(timeout);
        }
    }

    /// The drift of the last `monitoring.window_ms` of `manifest`'s version, now.
    pub fn report(&self, manifest: &Manifest) -> Report {
        report_now(&self.shared, manifest)
    }

    /// The last periodic report (for `/metrics`), if one was made.
    pub fn last_report(&self) -> Option<Arc<Report>> {
        self.shared.last.lock().ok().and_then(|l| l.clone())
    }

    /// The segment counts of `version` per retained bucket: (start, rows, per-segment counts,
    /// atypical), oldest first; for the page's chart of shares over time.
    pub fn history(&self, version: &str) -> Vec<(u64, u64, Vec<u64>, u64)> {
        let Ok(b) = self.shared.buckets.lock() else {
            return Vec::new();
        };
        b.iter()
            .filter(|((v, _), _)| v == version)
            .map(|(&(_, start), b)| (start, b.rows, b.segments.clone(), b.atypical))
            .collect()
    }

    /// Rows dropped because the monitor fell behind; buckets written; writes that failed.
    pub fn counters(&self) -> (u64, u64, u64) {
        (
            self.shared.dropped_rows.load(Ordering::Relaxed),
            self.shared.written.load(Ordering::Relaxed),
            self.shared.write_failures.load(Ordering::Relaxed),
        )
    }

    pub fn settings(&self) -> &MonitoringSettings {
        &self.shared.settings
    }
}

fn report_now(shared: &Shared, manifest: &Manifest) -> Report {
    let s = &shared.settings;
    let from = bucket_start(now_ms(), s.bucket_ms).saturating_sub(s.window_ms - s.bucket_ms);
    let window = shared.buckets.lock().ok().and_then(|b| {
        crate::monitor::merge_all(
            b.range((manifest.version.clone(), from)..=(manifest.version.clone(), u64::MAX))
                .map(|(_, b)| b),
        )
    });
    crate::monitor::report(window.as_ref(), manifest, s, &shared.validation)
}

fn run(
    rx: Receiver<Flush>,
    shared: Arc<Shared>,
    store: Option<Arc<dyn ModelStore>>,
    replica: String,
    served: ServedManifest,
) {
    let s = shared.settings.clone();
    let mut next_report = Instant::now() + Duration::from_millis(s.interval_ms);
    let mut drift = Streak::default();
    let mut next_sweep = Instant::now() + Duration::from_secs(1);
    // Buckets written since they last changed: a closed bucket is written once.
    let mut dirty: BTreeSet<(String, u64)> = Default::default();
    loop {
        let control = rx.recv_timeout(Duration::from_millis(100));
        take_inbox(&shared, &mut dirty);
        match control {
            Ok(done) => {
                write(&shared, store.as_deref(), &replica, &mut dirty, u64::MAX);
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                write(&shared, store.as_deref(), &replica, &mut dirty, u64::MAX);
                return;
            }
        }
        let now = Instant::now();
        if now >= next_sweep {
            next_sweep = now + Duration::from_secs(1);
            sweep(&shared, store.as_deref(), &replica, &mut dirty);
        }
        if now >= next_report {
            next_report = now + Duration::from_millis(s.interval_ms);
            let report = Arc::new(report_now(&shared, &served()));
            warn_on_drift(&report);
            if s.retrain_on_drift {
                drift.after(&report, &shared, store.as_deref());
            }
            if let Ok(mut l) = shared.last.lock() {
                *l = Some(report);
            }
        }
    }
}

/// Adds what the request paths handed over since the last look to their buckets, and marks
/// those buckets dirty.
fn take_inbox(shared: &Shared, dirty: &mut BTreeSet<(String, u64)>) {
    let bucket_ms = shared.settings.bucket_ms;
    let taken = shared
        .inbox
        .lock()
        .map(|mut inbox| std::mem::take(&mut *inbox))
        .unwrap_or_default();
    let taken_rows: usize = taken.iter().map(|e| e.what.len()).sum();
    shared
        .queued_rows
        .fetch_sub(taken_rows as u64, Ordering::Relaxed);
    if taken.is_empty() {
        return;
    }
    let Ok(mut buckets) = shared.buckets.lock() else {
        return;
    };
    for Entry {
        version,
        at_ms,
        what,
    } in taken
    {
        let key = (version.to_string(), bucket_start(at_ms, bucket_ms));
        let bucket = buckets
            .entry(key.clone())
            .or_insert_with(|| Bucket::new(&version, key.1, key.1 + bucket_ms));
        match what {
            Seen::Scored {
                rows,
                segments,
                atypical,
            } => bucket.add(&rows, &segments, &atypical),
            Seen::Refused(fields) => {
                for f in &fields {
                    bucket.add_error(f.as_deref(), 1);
                }
            }
        }
        dirty.insert(key);
    }
}

/// Closed buckets (their span ended) go to the store; those past the retention are dropped.
fn sweep(
    shared: &Shared,
    store: Option<&dyn ModelStore>,
    replica: &str,
    dirty: &mut BTreeSet<(String, u64)>,
) {
    let now_ms = now_ms();
    write(shared, store, replica, dirty, now_ms);
    if let Ok(mut b) = shared.buckets.lock() {
        let keep_from = now_ms.saturating_sub(shared.settings.retention_ms);
        b.retain(|_, bucket| bucket.end_ms > keep_from);
    }
}

/// Logs a periodic report that found the data set drifted.
fn warn_on_drift(report: &Report) {
    if report.status != "drift" {
        return;
    }
    tracing::warn!(
        "monitoring: the customers scored by {} drifted from its training data \
         (features: {}; segment shares {}; atypical {:.2} %)",
        report.model_version,
        report.drifted().join(", "),
        report
            .segment_shift
            .as_ref()
            .map_or("not tested", |t| if t.drifted {
                "drifted"
            } else {
                "steady"
            }),
        report.atypical.as_ref().map_or(0.0, |a| a.share * 100.0)
    );
}

/// Consecutive drift reports of the served version, and the versions whose retrain this
/// replica has already seen to (started, or found started by another replica).
#[derive(Default)]
struct Streak {
    version: String,
    reports: u32,
    done: BTreeSet<String>,
}

impl Streak {
    /// After each periodic report: a drift that lasted `monitoring.retrain_after` reports
    /// starts one training job per model version across every replica of the store: the
    /// replica that creates `monitoring/<version>/retrain.json` (a conditional put that only
    /// succeeds when it does not exist: the store's compare-and-swap) starts it; the others
    /// see the object and do not.
    fn after(&mut self, report: &Report, shared: &Shared, store: Option<&dyn ModelStore>) {
        if report.model_version != self.version {
            self.version = report.model_version.clone();
            self.reports = 0;
        }
        self.reports = if report.status == "drift" {
            self.reports + 1
        } else {
            0
        };
        if self.reports < shared.settings.retrain_after || self.done.contains(&self.version) {
            return;
        }
        let (Some(store), Ok(retrain)) = (store, shared.retrain.lock()) else {
            return;
        };
        let Some(retrain) = retrain.as_ref() else {
            return;
        };
        let mut why = Vec::new();
        if !report.drifted().is_empty() {
            why.push(format!("features {}", report.drifted().join(", ")));
        }
        if report.segment_shift.as_ref().is_some_and(|t| t.drifted) {
            why.push("segment shares".into());
        }
        if let Some(a) = report.atypical.as_ref().filter(|a| a.drifted) {
            why.push(format!("atypical share {:.2} %", a.share * 100.0));
        }
        let reason = format!(
            "monitoring: drift in {} reports in a row of model {} over {} customers ({})",
            self.reports,
            self.version,
            report.rows,
            why.join("; ")
        );
        let claim = serde_json::json!({ "reason": reason, "at_ms": now_ms() }).to_string();
        let name = format!("monitoring/{}/retrain.json", self.version);
        match store.write_pointer_if(&name, &claim, None) {
            Ok(true) => {
                self.done.insert(self.version.clone());
                match retrain(reason.clone()) {
                    Ok(id) => tracing::warn!("{reason}: started training job {id}"),
                    Err(e) => tracing::warn!("{reason}: the training job could not start: {e}"),
                }
            }
            Ok(false) => {
                self.done.insert(self.version.clone());
                tracing::info!(
                    "{reason}: another replica already started the retrain of {}",
                    self.version
                );
            }
            Err(e) => tracing::warn!("monitoring: claiming the retrain in {name} failed: {e}"),
        }
    }
}

/// Writes the dirty buckets that ended by `until_ms` (every dirty one with `u64::MAX`).
fn write(
    shared: &Shared,
    store: Option<&dyn ModelStore>,
    replica: &str,
    dirty: &mut BTreeSet<(String, u64)>,
    until_ms: u64,
) {
    let Some(store) = store else {
        dirty.clear();
        return;
    };
    let due: Vec<(String, u64)> = dirty
        .iter()
        .filter(|(_, start)| until_ms == u64::MAX || start + shared.settings.bucket_ms <= until_ms)
        .cloned()
        .collect();
    for key in due {
        let text = shared.buckets.lock().ok().and_then(|mut b| {
            b.get_mut(&key).map(|bucket| {
                bucket.settle();
                serde_json::to_string(bucket)
            })
        });
        dirty.remove(&key);
        let Some(Ok(text)) = text else { continue };
        let name = bucket_name(&key.0, replica, key.1);
        match store.write_pointer(&name, &text) {
            Ok(()) => {
                shared.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                shared.write_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "monitoring: writing {name} to {} failed: {e}",
                    store.describe()
                );
            }
        }
    }
}
