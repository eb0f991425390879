//! What one invocation did, counted so that nothing can go missing.
//!
//! Every event that comes in ends in exactly one of four places: delivered,
//! rejected (with a reason), dead-lettered (with its bytes in the log), or
//! handed back to Kinesis for retry. [`Summary::is_balanced`] is that
//! invariant; the tests check it on every path.

use std::io::Write;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How the invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every valid event was delivered.
    Delivered,
    /// Some records could not be delivered: dead letters or a retry point.
    Partial,
    /// Nothing could be delivered: the invocation fails and Kinesis retries.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub outcome: Outcome,
    pub records_received: usize,
    pub events_received: usize,
    pub events_rejected: usize,
    pub events_delivered: usize,
    pub events_dead_lettered: usize,
    /// Handed back to Kinesis: by `batchItemFailures`, or the whole batch
    /// when the invocation fails.
    pub events_retried: usize,
    /// Records built for the delivery streams, their bytes, and the bytes
    /// Firehose bills for them (each record rounded up to 5 KiB).
    pub firehose_records: usize,
    pub firehose_bytes: usize,
    pub firehose_billed_bytes: usize,
    /// `PutRecordBatch` calls, resends and the rejects stream included.
    pub put_calls: u32,
    /// Delivery rounds to the delivery streams; above 1 means resends.
    pub put_rounds: u32,
    pub duration_ms: u64,
}

impl Summary {
    /// Every event is counted in exactly one outcome.
    pub fn is_balanced(&self) -> bool {
        self.events_delivered + self.events_rejected + self.events_dead_lettered + self.events_retried
            == self.events_received
    }

    /// The one summary line per invocation.
    pub fn log(&self) {
        tracing::info!(
            kind = "summary",
            outcome = ?self.outcome,
            records_received = self.records_received,
            events_received = self.events_received,
            events_rejected = self.events_rejected,
            events_delivered = self.events_delivered,
            events_dead_lettered = self.events_dead_lettered,
            events_retried = self.events_retried,
            firehose_records = self.firehose_records,
            firehose_bytes = self.firehose_bytes,
            firehose_billed_bytes = self.firehose_billed_bytes,
            put_calls = self.put_calls,
            put_rounds = self.put_rounds,
            duration_ms = self.duration_ms,
            "invocation finished"
        );
    }
}

/// One JSON log line, newline included, with the `timestamp`, `level` and
/// `message` fields Lambda's JSON log format reads, and `body`'s fields.
pub fn log_line(level: &str, message: &str, body: &impl Serialize) -> Option<Vec<u8>> {
    #[derive(Serialize)]
    struct Line<'a, B> {
        timestamp: String,
        level: &'a str,
        message: &'a str,
        #[serde(flatten)]
        body: &'a B,
    }
    let line = Line {
        timestamp: OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        level,
        message,
        body,
    };
    let mut bytes = serde_json::to_vec(&line).ok()?;
    bytes.push(b'\n');
    Some(bytes)
}

/// Writes a [`log_line`] straight to stdout. Used for lines that must reach
/// the log whatever the tracing filter says: dead letters, rejections and
/// metrics. One `write_all` per line keeps lines whole.
pub fn write_line(level: &str, message: &str, body: &impl Serialize) {
    if let Some(bytes) = log_line(level, message, body) {
        let _ = std::io::stdout().lock().write_all(&bytes);
    }
}
