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
//! It is written as one JSON line ([`crate::log`]).

use std::collections::BTreeMap;

use serde::Serialize;

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
    /// Records delivered to another delivery stream than the one first
    /// tried, after a refusal (a throttled or failing stream).
    pub records_failed_over: usize,
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
            records_failed_over: 0,
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::log::log_line;

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
