//! The progress line shown while an experiment runs.

use std::time::Duration;

/// Counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub elapsed: Duration,
    pub sent: u64,
    pub records_done: u64,
    pub records_sent: u64,
    pub invocations: u64,
    pub function_errors: u64,
    /// Events the in-process bridge reported delivered (`None` when the
    /// function runs under `cargo lambda`).
    pub delivered: Option<u64>,
    pub rejected: Option<u64>,
    pub dead_lettered: Option<u64>,
    pub throttled: Option<u64>,
    pub millis_behind: u64,
}

/// One line, with rates over the time since `previous`.
pub fn line(now: &Snapshot, previous: &Snapshot) -> String {
    let seconds = (now.elapsed.saturating_sub(previous.elapsed)).as_secs_f64().max(0.001);
    let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / seconds;
    let mut line = format!(
        "[{:>4}s] sent {} ({:.0}/s)",
        now.elapsed.as_secs(),
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
        " | invocations {} ({} failed) | behind {:.1} s",
        now.invocations,
        now.function_errors,
        now.millis_behind as f64 / 1000.0
    ));
    if let Some(t) = now.throttled {
        line.push_str(&format!(" | throttled entries {t}"));
    }
    line
}
