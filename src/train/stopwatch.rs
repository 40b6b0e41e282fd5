//! Stage timings: the wall-clock seconds of each training stage, in pipeline order, and their
//! total (`metrics.json`'s `seconds`).

use std::time::Instant;

use super::progress::Stage;

/// Times stages and keeps them in order.
pub(super) struct Stopwatch {
    start: Instant,
    last: Instant,
    stages: serde_json::Map<String, serde_json::Value>,
}

impl Stopwatch {
    pub(super) fn new() -> Self {
        let now = Instant::now();
        Self {
            start: now,
            last: now,
            stages: Default::default(),
        }
    }
    pub(super) fn lap(&mut self, stage: Stage) -> f64 {
        self.lap_named(stage.key())
    }
    /// A lap that is not one stage (a streamed source's pass, which holds several).
    pub(super) fn lap_named(&mut self, key: &str) -> f64 {
        let now = Instant::now();
        let secs = (now - self.last).as_secs_f64();
        self.last = now;
        self.stages.insert(key.into(), round6(secs).into());
        secs
    }
    pub(super) fn finish(mut self) -> serde_json::Map<String, serde_json::Value> {
        self.stages.insert(
            "total".into(),
            round6(self.start.elapsed().as_secs_f64()).into(),
        );
        self.stages
    }
}

pub(super) fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
