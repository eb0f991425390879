//! What a run looks like while it runs: the counters sampled once a second,
//! the progress line printed from them, and the samples the report page
//! draws.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Counters at one moment of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Since the load started.
    pub elapsed_ms: u64,
    pub sent: u64,
    pub records_sent: u64,
    pub records_done: u64,
    pub invocations: u64,
    pub function_errors: u64,
    pub bisects: u64,
    pub retries: u64,
    pub batches_given_up: u64,
    pub records_given_up: u64,
    /// Events the in-process bridge reported (`None` when the function runs
    /// under `cargo lambda`).
    pub delivered: Option<u64>,
    pub rejected: Option<u64>,
    pub dead_lettered: Option<u64>,
    /// What the fault proxy did (`None` without one).
    pub throttled: Option<u64>,
    pub calls_failed: Option<u64>,
    /// Whether the proxy's whole-call outage covers this moment.
    pub in_outage: bool,
}

impl Snapshot {
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.elapsed_ms)
    }
}

/// One line, with rates over the time since `previous`.
pub fn line(now: &Snapshot, previous: &Snapshot) -> String {
    let seconds = (now.elapsed().saturating_sub(previous.elapsed()))
        .as_secs_f64()
        .max(0.001);
    let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / seconds;
    let mut line = format!(
        "[{:>4}s] sent {} ({:.0}/s)",
        now.elapsed().as_secs(),
        now.sent,
        rate(now.sent, previous.sent)
    );
    match (now.delivered, previous.delivered) {
        (Some(d), Some(p)) => line.push_str(&format!(" | delivered {d} ({:.0}/s)", rate(d, p))),
        _ => line.push_str(&format!(" | records done {}/{}", now.records_done, now.records_sent)),
    }
    if let Some(r) = now.rejected {
        line.push_str(&format!(" | rejected {r}"));
    }
    if let Some(d) = now.dead_lettered {
        line.push_str(&format!(" | dead-lettered {d}"));
    }
    line.push_str(&format!(
        " | invocations {} ({} failed, {} bisects) | records behind {}",
        now.invocations,
        now.function_errors,
        now.bisects,
        now.records_sent.saturating_sub(now.records_done)
    ));
    if now.batches_given_up > 0 {
        line.push_str(&format!(
            " | given up {} batches ({} records)",
            now.batches_given_up, now.records_given_up
        ));
    }
    if let Some(t) = now.throttled {
        line.push_str(&format!(" | throttled entries {t}"));
    }
    if now.in_outage {
        line.push_str(" | OUTAGE");
    }
    line
}
