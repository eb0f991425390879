//! What one invocation did, counted so that nothing can go missing, and
//! the JSON lines it is written down in.
//!
//! Every event that comes in ends in exactly one of four places, each
//! durable: delivered (in Firehose), rejected with a reason (in the rejects
//! stream, or an S3 object), dead-lettered (in an S3 object), or handed
//! back to Kinesis for retry. [`Summary::is_balanced`] is that invariant;
//! the tests check it on every path. Until [`crate::Bridge::finish`] has
//! written the S3 objects, dead letters and unsent rejects are only
//! intended: what S3 does not take moves to handed back.
//!
//! Every line the function writes on purpose (the objects it kept, the
//! summary, the metrics) is one JSON object written whole to a
//! [`LogSink`], whatever the tracing filter says. A log line is a
//! diagnostic: no event's only copy is ever in the log.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How the invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every valid event was delivered.
    Delivered,
    /// Some records could not be delivered: dead letters or a retry point.
    Partial,
    /// Nothing could be delivered: the invocation fails and Kinesis retries.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub status: Status,
    pub records_received: usize,
    pub events_received: usize,
    pub events_rejected: usize,
    pub events_delivered: usize,
    pub events_dead_lettered: usize,
    /// Handed back to Kinesis: by `batchItemFailures`, or the whole batch
    /// when the invocation fails.
    pub events_retried: usize,
    /// Records left unopened for the next invocation, from the first KPL
    /// aggregate that would have taken this one past its user records
    /// budget; handed back to Kinesis by `batchItemFailures`. Their events
    /// are counted by the invocation that opens them.
    pub records_deferred: usize,
    /// Rejected events by reason code.
    pub rejected_by_reason: BTreeMap<&'static str, usize>,
    /// Bytes of the event lines in the records, newlines included: what
    /// the records would be uncompressed.
    pub event_bytes: usize,
    /// Records built for the delivery streams, their bytes (compressed, with
    /// `COMPRESSION=gzip`), and the bytes Firehose bills for them (each
    /// record rounded up to 5 KiB).
    pub firehose_records: usize,
    pub firehose_bytes: usize,
    pub firehose_billed_bytes: usize,
    /// `PutRecordBatch` calls, resends and the rejects stream included.
    pub put_calls: u32,
    /// Delivery rounds to the delivery streams; above 1 means resends.
    pub put_rounds: u32,
    /// Undelivered events (dead letters, rejections the rejects stream did
    /// not take) written to S3. Those S3 did not take are handed back
    /// (`events_retried`), never left in the log alone.
    pub events_kept_in_s3: usize,
    pub duration_ms: u64,
}

impl Summary {
    /// A summary of nothing yet, for `records_received` records.
    pub fn new(records_received: usize) -> Self {
        Summary {
            status: Status::Delivered,
            records_received,
            events_received: 0,
            events_rejected: 0,
            events_delivered: 0,
            events_dead_lettered: 0,
            events_retried: 0,
            records_deferred: 0,
            rejected_by_reason: BTreeMap::new(),
            event_bytes: 0,
            firehose_records: 0,
            firehose_bytes: 0,
            firehose_billed_bytes: 0,
            put_calls: 0,
            put_rounds: 0,
            events_kept_in_s3: 0,
            duration_ms: 0,
        }
    }

    /// Every event is counted in exactly one outcome.
    pub fn is_balanced(&self) -> bool {
        self.events_delivered + self.events_rejected + self.events_dead_lettered + self.events_retried
            == self.events_received
            && self.rejected_by_reason.values().sum::<usize>() == self.events_rejected
    }

    /// The body of the one summary line per invocation.
    pub fn line(&self) -> impl Serialize + '_ {
        #[derive(Serialize)]
        struct Line<'a> {
            kind: &'static str,
            #[serde(flatten)]
            summary: &'a Summary,
        }
        Line {
            kind: "summary",
            summary: self,
        }
    }
}

/// Where the function's lines go: stdout under Lambda, a file in the local
/// pipeline, a buffer in tests.
pub trait LogSink: Send + Sync {
    /// Writes one whole line (newline included) or fails.
    fn write_line(&self, line: &[u8]) -> std::io::Result<()>;
}

/// The process's stdout, which Lambda ships to CloudWatch Logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stdout;

impl LogSink for Stdout {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        // One `write_all` under the lock keeps the line whole.
        let mut out = std::io::stdout().lock();
        out.write_all(line)?;
        out.flush()
    }
}

/// One JSON log line, newline included, with the `timestamp`, `level` and
/// `message` fields Lambda's JSON log format reads, and `body`'s fields.
pub fn log_line(level: &str, message: &str, body: &impl Serialize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    append_log_line(&mut bytes, level, message, body)?;
    Ok(bytes)
}

/// Appends a [`log_line`] to `out`; on error `out` is left as it was.
pub fn append_log_line(out: &mut Vec<u8>, level: &str, message: &str, body: &impl Serialize) -> std::io::Result<()> {
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
    let start = out.len();
    if let Err(e) = serde_json::to_writer(&mut *out, &line) {
        out.truncate(start);
        return Err(e.into());
    }
    out.push(b'\n');
    Ok(())
}

/// Log lines, one after another in one buffer: the body of an S3 object as
/// it is, or the log's lines one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    bytes: Vec<u8>,
    count: usize,
}

impl Lines {
    /// Appends one [`log_line`]. Serialising the bridge's own structs of
    /// strings and numbers cannot fail; should it, the line says what was
    /// lost instead.
    pub fn push(&mut self, level: &str, message: &str, body: &impl Serialize) {
        if let Err(e) = append_log_line(&mut self.bytes, level, message, body) {
            let trace = serde_json::json!({"error": format!("unserialisable line: {e}")});
            let _ = append_log_line(&mut self.bytes, level, message, &trace);
        }
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every line, its newline included.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.split_inclusive(|&b| b == b'\n')
    }

    /// The lines as one body.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Writes a [`log_line`] to `sink`.
pub fn write_line(sink: &impl LogSink, level: &str, message: &str, body: &impl Serialize) -> std::io::Result<()> {
    sink.write_line(&log_line(level, message, body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line_is_one_json_object_of_kind_summary() {
        let mut summary = Summary::new(3);
        summary.events_received = 4;
        summary.events_delivered = 3;
        summary.events_rejected = 1;
        summary.rejected_by_reason.insert("not_json", 1);
        assert!(summary.is_balanced());
        let line = log_line("INFO", "invocation finished", &summary.line()).unwrap();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let parsed: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed["kind"], "summary");
        assert_eq!(parsed["status"], "delivered");
        assert_eq!(parsed["rejected_by_reason"]["not_json"], 1);
        assert_eq!(parsed["level"], "INFO");
    }

    #[test]
    fn reasons_that_do_not_add_up_unbalance_the_books() {
        let mut summary = Summary::new(1);
        summary.events_received = 1;
        summary.events_rejected = 1;
        assert!(!summary.is_balanced());
        summary.rejected_by_reason.insert("not_json", 1);
        assert!(summary.is_balanced());
    }
}
