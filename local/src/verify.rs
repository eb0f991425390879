//! The verifier: every event sent, accounted for.
//!
//! It reads every object the delivery streams wrote under `events/` and
//! every rejects-stream object under `rejects/` (moto writes one
//! uncompressed object per `PutRecordBatch` call under
//! `<prefix>YYYY/MM/DD/HH/`), plus the dead letters and rejections the
//! bridge logged, and sorts each sent event into exactly one of: delivered
//! (in `events/`, however many times), rejected (in `rejects/` or a
//! rejection log line carrying its bytes), dead-lettered (in a dead letter,
//! replayable), or lost. Copies beyond the first are duplicates.
//!
//! The delay of a delivered event runs from its send time to its first
//! landing in S3: the Firehose acknowledgement noted by [`Landings`] when
//! there is one (millisecond precision), else the object's `LastModified`
//! (moto gives whole seconds).

use std::collections::{HashMap, HashSet};

use futures_util::StreamExt;
use kinesis_firehose_bridge::dead_letter::{self, DeadLetter};
use kinesis_firehose_bridge::reject::{self, RejectLine};
use serde::Serialize;
use serde::de::IgnoredAny;

use crate::Result;
use crate::events::event_id;
use crate::landing::Landings;
use crate::ledger::Sent;

/// One object read back from S3.
#[derive(Debug, Clone)]
pub struct Object {
    pub key: String,
    pub etag: String,
    pub last_modified_ms: u64,
    pub body: Vec<u8>,
}

/// Reads every object under `prefix`.
pub async fn read_prefix(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<Object>> {
    let mut listed = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("listing s3://{bucket}/{prefix}: {e:?}"))?;
        for object in page.contents() {
            if let Some(key) = object.key() {
                let last_modified_ms = object.last_modified().map_or(0, |t| {
                    (t.secs() * 1000 + i64::from(t.subsec_nanos() / 1_000_000)) as u64
                });
                listed.push((
                    key.to_owned(),
                    object.e_tag().unwrap_or_default().to_owned(),
                    last_modified_ms,
                ));
            }
        }
    }
    let reads = futures_util::stream::iter(listed.into_iter().map(|(key, etag, last_modified_ms)| async move {
        let object = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| format!("reading s3://{bucket}/{key}: {e:?}"))?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| format!("reading s3://{bucket}/{key}: {e}"))?
            .into_bytes()
            .to_vec();
        Ok::<_, crate::Error>(Object {
            key,
            etag,
            last_modified_ms,
            body,
        })
    }))
    .buffer_unordered(16);
    reads.collect::<Vec<_>>().await.into_iter().collect()
}

/// Everything the verifier reads.
pub struct Evidence<'a> {
    pub sent: &'a [Sent],
    pub delivered: &'a [Object],
    pub rejected: &'a [Object],
    pub dead_letters: &'a [DeadLetter],
    pub rejection_logs: &'a [RejectLine],
    pub landings: Option<&'a Landings>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub sent: u64,
    pub valid_sent: u64,
    pub invalid_sent: u64,
    pub delivered: u64,
    pub rejected: u64,
    pub dead_lettered: u64,
    pub lost: u64,
    /// Copies in `events/` beyond the first of each event.
    pub duplicates: u64,
    /// Invalid events found in `events/`, and valid ones rejected: both
    /// would be bugs of the bridge's contract.
    pub invalid_delivered: u64,
    pub valid_rejected: u64,
    /// Lines in `events/` that name no sent event, or are not one JSON
    /// object per line.
    pub unknown_lines: u64,
    pub malformed_lines: u64,
    pub objects: u64,
    pub p50_delivery_ms: u64,
    pub p99_delivery_ms: u64,
    pub max_delivery_ms: u64,
    /// Delays timed by `LastModified` (whole seconds) rather than the
    /// Firehose acknowledgement.
    pub delays_from_last_modified: u64,
    /// Dead letters that could not be decoded.
    pub unreadable_dead_letters: u64,
}

impl Report {
    /// The human-readable lines; the last line of a run is the JSON.
    pub fn lines(&self) -> Vec<String> {
        vec![
            format!(
                "sent          {:>9}  ({} valid, {} invalid)",
                self.sent, self.valid_sent, self.invalid_sent
            ),
            format!("delivered     {:>9}", self.delivered),
            format!("rejected      {:>9}", self.rejected),
            format!("dead-lettered {:>9}", self.dead_lettered),
            format!("lost          {:>9}", self.lost),
            format!("duplicates    {:>9}", self.duplicates),
            format!(
                "delivery delay p50 {} ms, p99 {} ms, max {} ms (send to S3; {} of the delays from S3 LastModified, 1 s resolution)",
                self.p50_delivery_ms, self.p99_delivery_ms, self.max_delivery_ms, self.delays_from_last_modified
            ),
            format!(
                "objects {}; invalid delivered {}, valid rejected {}, unknown lines {}, malformed lines {}",
                self.objects, self.invalid_delivered, self.valid_rejected, self.unknown_lines, self.malformed_lines
            ),
        ]
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Sorts every sent event into exactly one outcome.
pub fn account(evidence: &Evidence<'_>) -> Report {
    let mut report = Report {
        sent: evidence.sent.len() as u64,
        valid_sent: evidence.sent.iter().filter(|s| s.valid).count() as u64,
        objects: (evidence.delivered.len() + evidence.rejected.len()) as u64,
        ..Report::default()
    };
    report.invalid_sent = report.sent - report.valid_sent;
    let sent: HashMap<&str, &Sent> = evidence.sent.iter().map(|s| (s.id.as_str(), s)).collect();

    // events/: copies and first landing of each event.
    let mut landed: HashMap<&str, (u64, u64)> = HashMap::new(); // id -> (copies, first landing ms)
    for object in evidence.delivered {
        let acknowledged = evidence.landings.and_then(|l| l.at(&object.etag));
        let at = acknowledged.unwrap_or(object.last_modified_ms);
        for line in object.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let one_object = line.first() == Some(&b'{') && serde_json::from_slice::<IgnoredAny>(line).is_ok();
            if !one_object {
                report.malformed_lines += 1;
                continue;
            }
            match event_id(line).and_then(|id| sent.get_key_value(id)) {
                Some((&id, _)) => {
                    let entry = landed.entry(id).or_insert((0, u64::MAX));
                    entry.0 += 1;
                    if at < entry.1 {
                        entry.1 = at;
                    }
                }
                None => report.unknown_lines += 1,
            }
        }
    }

    // rejects/ and rejection log lines, parts joined.
    let mut rejected: HashSet<&str> = HashSet::new();
    let mut lines: Vec<RejectLine> = evidence.rejection_logs.to_vec();
    for object in evidence.rejected {
        for line in object.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<RejectLine>(line) {
                Ok(line) => lines.push(line),
                Err(_) => report.malformed_lines += 1,
            }
        }
    }
    match reject::recover(lines) {
        Ok(recovered) => {
            for r in recovered {
                if let Some((&id, _)) = event_id(&r.payload).and_then(|id| sent.get_key_value(id)) {
                    rejected.insert(id);
                }
            }
        }
        Err(_) => report.unreadable_dead_letters += 1,
    }

    // Dead letters: the event lines they carry.
    let mut dead: HashSet<&str> = HashSet::new();
    match dead_letter::reassemble(evidence.dead_letters) {
        Ok(records) => {
            for record in &records {
                for line in record.split(|&b| b == b'\n') {
                    if let Some((&id, _)) = event_id(line).and_then(|id| sent.get_key_value(id)) {
                        dead.insert(id);
                    }
                }
            }
        }
        Err(_) => report.unreadable_dead_letters = evidence.dead_letters.len() as u64,
    }

    let mut delays = Vec::new();
    for s in evidence.sent {
        let id = s.id.as_str();
        if let Some(&(copies, first)) = landed.get(id) {
            report.delivered += 1;
            report.duplicates += copies - 1;
            if s.valid {
                delays.push(first.saturating_sub(s.at_ms));
            } else {
                report.invalid_delivered += 1;
            }
        } else if rejected.contains(id) {
            report.rejected += 1;
            if s.valid {
                report.valid_rejected += 1;
            }
        } else if dead.contains(id) {
            report.dead_lettered += 1;
        } else {
            report.lost += 1;
        }
    }
    report.delays_from_last_modified = match evidence.landings {
        None => delays.len() as u64,
        Some(landings) => evidence
            .delivered
            .iter()
            .filter(|o| landings.at(&o.etag).is_none())
            .map(|o| o.body.iter().filter(|&&b| b == b'\n').count() as u64)
            .sum(),
    };
    delays.sort_unstable();
    report.p50_delivery_ms = percentile(&delays, 50.0);
    report.p99_delivery_ms = percentile(&delays, 99.0);
    report.max_delivery_ms = delays.last().copied().unwrap_or(0);
    report
}

/// Nearest-rank percentile of sorted values; 0 for none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    fn sent(id: &str, valid: bool) -> Sent {
        Sent {
            id: id.to_owned(),
            at_ms: 1_000,
            valid,
        }
    }

    fn object(lines: &[&str], last_modified_ms: u64) -> Object {
        Object {
            key: "events/x".into(),
            etag: "\"e\"".into(),
            last_modified_ms,
            body: lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes(),
        }
    }

    #[test]
    fn every_event_lands_in_exactly_one_outcome() {
        let sent = vec![
            sent("a", true),
            sent("b", true),
            sent("c", false),
            sent("d", true),
            sent("e", true),
        ];
        let delivered = vec![
            object(&[r#"{"event_id":"a"}"#, r#"{"event_id":"b"}"#], 2_000),
            object(&[r#"{"event_id":"a"}"#], 3_000),
        ];
        let reject = RejectLine {
            reason: "missing_timestamp".into(),
            detail: String::new(),
            sequence_number: "1".into(),
            sub_sequence_number: None,
            partition_key: "k".into(),
            partition_key_md5: None,
            approximate_arrival_timestamp: 0.0,
            truncated: Vec::new(),
            data: STANDARD.encode(r#"{"event_id":"c"}"#),
            part: None,
        };
        let rejected = vec![Object {
            key: "rejects/x".into(),
            etag: String::new(),
            last_modified_ms: 0,
            body: format!("{}\n", serde_json::to_string(&reject).unwrap()).into_bytes(),
        }];
        let letter = DeadLetter::for_record(
            dead_letter::Cause {
                delivery_stream: "s",
                error_code: "ServiceUnavailableException",
                error_message: "Slow down.",
            },
            b"{\"event_id\":\"d\"}\n",
            |_| "5",
            "g",
        );
        let report = account(&Evidence {
            sent: &sent,
            delivered: &delivered,
            rejected: &rejected,
            dead_letters: &letter,
            rejection_logs: &[],
            landings: None,
        });
        assert_eq!(
            (
                report.delivered,
                report.rejected,
                report.dead_lettered,
                report.lost,
                report.duplicates
            ),
            (2, 1, 1, 1, 1)
        );
        assert_eq!(report.p99_delivery_ms, 1_000);
        assert_eq!(report.valid_rejected + report.invalid_delivered, 0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
