//! Progress of a training run: a spinner per step and a bar for iterative ones on stderr (drawn
//! only when asked for, and by indicatif only when stderr is a terminal), and optionally a
//! [`Monitor`] that someone else reads — the service's training jobs — and can cancel through.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{Error, Result};

/// A run's stage and progress as seen from outside, and its cancel switch.
#[derive(Debug, Default)]
pub struct Monitor {
    stage: Mutex<String>,
    done: AtomicU64,
    total: AtomicU64,
    cancelled: AtomicBool,
}

impl Monitor {
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

    /// The current stage, and its iterations done / total (0 / 0 for a one-shot step).
    pub fn snapshot(&self) -> (String, u64, u64) {
        let stage = self.stage.lock().map(|s| s.clone()).unwrap_or_default();
        (
            stage,
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    pub fn set_stage(&self, stage: &str) {
        if let Ok(mut s) = self.stage.lock() {
            s.clear();
            s.push_str(stage);
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
            s.clear();
            s.push_str(&message);
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

    fn enter(&self, stage: &str) -> Result<Option<Arc<Monitor>>> {
        self.check()?;
        if let Some(m) = &self.monitor {
            m.set_stage(stage);
        }
        Ok(self.monitor.clone())
    }

    /// Starts a one-shot step (after checking that the run was not cancelled).
    pub fn step(&self, message: impl Into<Cow<'static, str>>) -> Result<Step> {
        let message = message.into();
        let monitor = self.enter(&message)?;
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                .expect("valid template"),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        Ok(Step { bar, monitor })
    }

    /// Starts an iterative step of `len` iterations.
    pub fn bar(&self, len: u64, message: impl Into<Cow<'static, str>>) -> Result<Step> {
        let message = message.into();
        let monitor = self.enter(&message)?;
        if let Some(m) = &monitor {
            m.total.store(len, Ordering::Relaxed);
        }
        let bar = self.multi.add(ProgressBar::new(len));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>12} [{bar:30.cyan/blue}] {pos}/{len} {elapsed:.dim}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(message);
        Ok(Step { bar, monitor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_monitor_stops_the_next_step_and_the_next_iteration() {
        let m = Arc::new(Monitor::default());
        let p = Progress::new(false, Some(m.clone()));
        let bar = p.bar(10, "KMeans").unwrap();
        bar.set_position(3).unwrap();
        assert_eq!(m.snapshot(), ("KMeans".to_string(), 3, 10));
        m.cancel();
        assert!(matches!(bar.set_position(4), Err(Error::Cancelled)));
        assert!(matches!(p.step("next"), Err(Error::Cancelled)));
    }
}
