//! Progress display for long steps: a spinner per step and a bar for iterative ones, on
//! stderr, drawn only when asked for (and by indicatif only when stderr is a terminal).

use std::borrow::Cow;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    multi: MultiProgress,
}

/// One step in progress; say how it ended with [`Step::finish`].
pub struct Step(ProgressBar);

impl Step {
    pub fn finish(&self, message: impl Into<Cow<'static, str>>) {
        self.0.finish_with_message(message);
    }

    pub fn set_position(&self, pos: u64) {
        self.0.set_position(pos);
    }

    pub fn set_length(&self, len: u64) {
        self.0.set_length(len);
    }

    pub fn set_message(&self, message: impl Into<Cow<'static, str>>) {
        self.0.set_message(message);
    }
}

impl Progress {
    pub fn new(enabled: bool) -> Self {
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
        }
    }

    pub fn step(&self, message: impl Into<Cow<'static, str>>) -> Step {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
                .expect("valid template"),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        Step(bar)
    }

    pub fn bar(&self, len: u64, message: impl Into<Cow<'static, str>>) -> Step {
        let bar = self.multi.add(ProgressBar::new(len));
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>12} [{bar:30.cyan/blue}] {pos}/{len} {elapsed:.dim}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(message);
        Step(bar)
    }
}
