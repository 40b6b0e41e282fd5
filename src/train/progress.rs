//! Progress of a training run: a spinner per step and a bar for iterative ones on stderr (drawn
//! only when asked for, and by indicatif only when stderr is a terminal), and optionally a
//! [`Monitor`] that someone else reads — the service's training jobs — and can cancel through.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{Error, Result};

/// The stages of a training run and its publication, in order. Progress bars, the seconds
/// in `metrics.json`, cancellation points and a job's progress figure all name a stage from
/// here (the messages shown with it are free text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Ingest,
    Validate,
    Features,
    Split,
    Preprocess,
    Device,
    Pca,
    KMeans,
    Metrics,
    Classifier,
    Write,
    Publish,
}

impl Stage {
    pub const ALL: [Stage; 12] = [
        Stage::Ingest,
        Stage::Validate,
        Stage::Features,
        Stage::Split,
        Stage::Preprocess,
        Stage::Device,
        Stage::Pca,
        Stage::KMeans,
        Stage::Metrics,
        Stage::Classifier,
        Stage::Write,
        Stage::Publish,
    ];

    /// Its key in `metrics.json`'s `seconds`.
    pub fn key(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Validate => "validate",
            Stage::Features => "features",
            Stage::Split => "split",
            Stage::Preprocess => "preprocess",
            Stage::Device => "device",
            Stage::Pca => "pca",
            Stage::KMeans => "kmeans",
            Stage::Metrics => "metrics",
            Stage::Classifier => "classifier",
            Stage::Write => "write",
            Stage::Publish => "publish",
        }
    }

    /// The share of the whole run done when this stage is `within` (0..=1) done: stages
    /// count equally.
    pub fn progress(self, within: f64) -> f64 {
        (self as usize as f64 + within.clamp(0.0, 1.0)) / Self::ALL.len() as f64
    }
}

/// A run's stage and progress as seen from outside, and its cancel switch.
#[derive(Debug, Default)]
pub struct Monitor {
    /// The stage and the message shown with it.
    stage: Mutex<(Option<Stage>, String)>,
    done: AtomicU64,
    total: AtomicU64,
    cancelled: AtomicBool,
    /// The run's validation report, once validation ran (passed or not).
    validation: Mutex<Option<std::sync::Arc<crate::validate::Report>>>,
}

impl Monitor {
    /// Keeps the run's validation report for whoever watches the run.
    pub fn validated(&self, report: &crate::validate::Report) {
        *self.validation.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(std::sync::Arc::new(report.clone()));
    }

    /// The run's validation report, once validation ran.
    pub fn validation(&self) -> Option<std::sync::Arc<crate::validate::Report>> {
        self.validation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks the run to stop at its next check (between stages, or between two iterations).
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// `Err(Error::Cancelled)` once [`Monitor::cancel`] was called.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The current stage's message, and its iterations done / total (0 / 0 for a one-shot
    /// step).
    pub fn snapshot(&self) -> (String, u64, u64) {
        let message = self.stage.lock().map(|s| s.1.clone()).unwrap_or_default();
        (
            message,
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    /// The current stage, if one has started.
    pub fn stage(&self) -> Option<Stage> {
        self.stage.lock().ok().and_then(|s| s.0)
    }

    /// The share of the run done: the stage's place, and its iterations within it.
    pub fn progress(&self) -> f64 {
        let (done, total) = (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        );
        let within = if total > 0 {
            done as f64 / total as f64
        } else {
            0.0
        };
        self.stage().map_or(0.0, |s| s.progress(within))
    }

    pub fn set_stage(&self, stage: Stage, message: &str) {
        if let Ok(mut s) = self.stage.lock() {
            s.0 = Some(stage);
            s.1.clear();
            s.1.push_str(message);
        }
        self.done.store(0, Ordering::Relaxed);
        self.total.store(0, Ordering::Relaxed);
    }
}

pub struct Progress {
    multi: MultiProgress,
    monitor: Option<Arc<Monitor>>,
}

/// One step in progress; say how it ended with [`Step::finish`].
pub struct Step {
    bar: ProgressBar,
    monitor: Option<Arc<Monitor>>,
}

impl Step {
    pub fn finish(&self, message: impl Into<Cow<'static, str>>) {
        self.bar.finish_with_message(message);
    }

    /// Records iteration `pos`; fails with `Error::Cancelled` when the run was cancelled, so an
    /// iterative fit stops between two iterations.
    pub fn set_position(&self, pos: u64) -> Result<()> {
        self.bar.set_position(pos);
        match &self.monitor {
            Some(m) => {
                m.done.store(pos, Ordering::Relaxed);
                m.check()
            }
            None => Ok(()),
        }
    }

    pub fn set_length(&self, len: u64) {
        self.bar.set_length(len);
        if let Some(m) = &self.monitor {
            m.total.store(len, Ordering::Relaxed);
        }
    }

    pub fn set_message(&self, message: impl Into<Cow<'static, str>>) {
        let message = message.into();
        if let Some(m) = &self.monitor
            && let Ok(mut s) = m.stage.lock()
        {
            s.1.clear();
            s.1.push_str(&message);
        }
        self.bar.set_message(message);
    }
}

impl Progress {
    pub fn new(enabled: bool, monitor: Option<Arc<Monitor>>) -> Self {
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            monitor,
        }
    }

    /// Fails with `Error::Cancelled` when the run was cancelled.
    pub fn check(&self) -> Result<()> {
        self.monitor.as_ref().map_or(Ok(()), |m| m.check())
    }

    fn enter(&self, stage: Stage, message: &str) -> Result<Option<Arc<Monitor>>> {
        self.check()?;
        if let Some(m) = &self.monitor {
            m.set_stage(stage, message);
        }
        Ok(self.monitor.clone())
    }

    /// Starts a one-shot step of `stage` (after checking that the run was not cancelled).
    pub fn step(&self, stage: Stage, message: impl Into<Cow<'static, str>>) -> Result<Step> {
        let message = message.into();
        let monitor = self.enter(stage, &message)?;
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                .expect("valid template"),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        Ok(Step { bar, monitor })
    }

    /// Starts an iterative step of `stage`, of `len` iterations.
    pub fn bar(
        &self,
        stage: Stage,
        len: u64,
        message: impl Into<Cow<'static, str>>,
    ) -> Result<Step> {
        let message = message.into();
        let monitor = self.enter(stage, &message)?;
        if let Some(m) = &monitor {
            m.total.store(len, Ordering::Relaxed);
        }
        Ok(self.new_bar(len, message, monitor))
    }

    /// A bar of a pass over a streamed source of `len` rows (or bytes, when `rows` is false),
    /// with its speed and the time left.
    pub fn pass_bar(
        &self,
        stage: Stage,
        len: u64,
        rows: bool,
        message: impl Into<Cow<'static, str>>,
    ) -> Result<Step> {
        let step = self.bar(stage, len, message)?;
        let template = if rows {
            "{msg} [{bar:30.cyan/blue}] {human_pos}/{human_len} rows, {per_sec}, ETA {eta} {elapsed:.dim}"
        } else {
            "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes}, {bytes_per_sec}, ETA {eta} {elapsed:.dim}"
        };
        step.bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        Ok(step)
    }

    /// A bar of `len` iterations outside the training stages (bulk scoring).
    pub fn plain_bar(&self, len: u64, message: impl Into<Cow<'static, str>>) -> Step {
        self.new_bar(len, message.into(), None)
    }

    fn new_bar(&self, len: u64, message: Cow<'static, str>, monitor: Option<Arc<Monitor>>) -> Step {
        let bar = self.multi.add(ProgressBar::new(len));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>12} [{bar:30.cyan/blue}] {pos}/{len} {elapsed:.dim}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(message);
        Step { bar, monitor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_monitor_stops_the_next_step_and_the_next_iteration() {
        let m = Arc::new(Monitor::default());
        let p = Progress::new(false, Some(m.clone()));
        let bar = p.bar(Stage::KMeans, 10, "KMeans").unwrap();
        bar.set_position(3).unwrap();
        assert_eq!(m.snapshot(), ("KMeans".to_string(), 3, 10));
        m.cancel();
        assert!(matches!(bar.set_position(4), Err(Error::Cancelled)));
        assert!(matches!(
            p.step(Stage::Metrics, "next"),
            Err(Error::Cancelled)
        ));
    }

    #[test]
    fn progress_grows_with_the_stages_and_their_iterations() {
        let m = Monitor::default();
        assert_eq!(m.progress(), 0.0);
        let mut last = -1.0;
        for stage in Stage::ALL {
            m.set_stage(stage, "");
            let start = m.progress();
            m.total.store(100, Ordering::Relaxed);
            m.done.store(50, Ordering::Relaxed);
            assert!(last < start && start < m.progress() && m.progress() < 1.0);
            last = m.progress();
        }
        assert_eq!(Stage::ALL.map(|s| s as usize), std::array::from_fn(|i| i));
    }
}
