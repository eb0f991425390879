//! The verifier: every event sent, accounted for, wherever it ended.
//!
//! It reads back everything the pipeline keeps ([`Contents`]): the events
//! the delivery streams wrote, the rejects stream's lines, the undelivered
//! records the function kept in S3, the batches the event source mapping
//! gave up on, and the dead letters and rejections the function's log
//! holds. It sorts each sent event into exactly one place, the first that
//! holds it of: delivered (in `events/`, however many times), rejected, dead-
//! lettered, given up (its whole batch kept in S3), or lost. Copies beyond
//! the first are duplicates.
//!
//! The delay of a delivered event runs from its send time to its first
//! landing in S3: the Firehose acknowledgement noted by [`Landings`] when
//! there is one (millisecond precision), else the object's `LastModified`
//! (moto gives whole seconds).
//!
//! The report is clean only when nothing is lost, the contract was applied
//! right (no invalid event delivered, no valid one rejected), and every line,
//! dead letter and on-failure object could be read.

use std::collections::HashMap;

use kinesis_firehose_bridge::batch::SourceRecord;
use kinesis_firehose_bridge::compress;
use kinesis_firehose_bridge::dead_letter::{self, DeadLetter};
use kinesis_firehose_bridge::kpl::{self, Bounds};
use kinesis_firehose_bridge::reject::{self, RejectLine};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::bucket::Contents;
use crate::events::event_id;
use crate::landing::Landings;
use crate::ledger::Sent;
use crate::logs::{Logged, Timed};
use crate::on_failure::InvocationRecord;

/// Everything the verifier reads.
pub struct Evidence<'a> {
    pub sent: &'a [Sent],
    pub contents: &'a Contents,
    /// The function's log.
    pub log: &'a Logged,
    pub landings: Option<&'a Landings>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub sent: u64,
    pub valid_sent: u64,
    pub invalid_sent: u64,
    pub delivered: u64,
    pub rejected: u64,
    pub dead_lettered: u64,
    /// In a batch the event source mapping gave up on, kept whole in S3.
    pub given_up: u64,
    pub lost: u64,
    /// Copies in `events/` beyond the first of each event.
    pub duplicates: u64,
    /// Copies of a rejected record beyond the first, in `rejects/` and
    /// `rejects-unsent/`.
    pub duplicate_rejects: u64,
    /// Rejected events kept only in a `rejects-unsent/` object, and
    /// dead-lettered events (all in `dead-letters/` objects). The log is
    /// never a copy: an event found only there is lost.
    pub rejected_kept_in_s3: u64,
    pub dead_lettered_in_s3: u64,
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
    /// Lines, dead letters, part groups and on-failure objects that could
    /// not be read; [`Report::problems`] names them.
    pub unreadable: u64,
    #[serde(skip)]
    pub problems: Vec<String>,
}

/// Where one sent event ended, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Delivered,
    Rejected,
    DeadLettered,
    GivenUp,
    Lost,
}

/// One sent event: when it was sent, where it ended and when (for the
/// report page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trace {
    pub sent_ms: u64,
    pub ending: Ending,
    /// When it got there (first landing, object written, line logged).
    pub at_ms: Option<u64>,
}

/// The report and every event's trace.
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub report: Report,
    pub traces: Vec<Trace>,
}

impl Report {
    /// Whether the run kept its promise: nothing lost, the contract applied
    /// right, everything readable.
    pub fn is_clean(&self) -> bool {
        self.lost == 0
            && self.invalid_delivered == 0
            && self.valid_rejected == 0
            && self.unreadable == 0
            && self.malformed_lines == 0
            && self.unknown_lines == 0
    }

    /// The human-readable lines; the last line of a run is the JSON.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "sent          {:>9}  ({} valid, {} invalid)",
                self.sent, self.valid_sent, self.invalid_sent
            ),
            format!("delivered     {:>9}", self.delivered),
            format!(
                "rejected      {:>9}  ({} kept only in S3 rejects-unsent/)",
                self.rejected, self.rejected_kept_in_s3
            ),
            format!("dead-lettered {:>9}  (kept in S3 dead-letters/)", self.dead_lettered),
            format!(
                "given up      {:>9}  (whole batches kept in S3 aws/lambda/)",
                self.given_up
            ),
            format!("lost          {:>9}", self.lost),
            format!(
                "duplicates    {:>9}  (and {} duplicate rejects)",
                self.duplicates, self.duplicate_rejects
            ),
            format!(
                "delivery delay p50 {} ms, p99 {} ms, max {} ms (send to S3; {} of the delays from S3 LastModified, 1 s resolution)",
                self.p50_delivery_ms, self.p99_delivery_ms, self.max_delivery_ms, self.delays_from_last_modified
            ),
            format!(
                "objects {}; invalid delivered {}, valid rejected {}, unknown lines {}, malformed lines {}, unreadable {}",
                self.objects,
                self.invalid_delivered,
                self.valid_rejected,
                self.unknown_lines,
                self.malformed_lines,
                self.unreadable
            ),
        ];
        lines.extend(self.problems.iter().take(20).map(|p| format!("unreadable: {p}")));
        lines
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn problem(&mut self, problem: String) {
        self.unreadable += 1;
        self.problems.push(problem);
    }
}

/// The sent events by id: which one a line of bytes names.
struct Known<'a> {
    ids: HashMap<&'a str, &'a Sent>,
}

impl<'a> Known<'a> {
    fn new(sent: &'a [Sent]) -> Self {
        Known {
            ids: sent.iter().map(|s| (s.id.as_str(), s)).collect(),
        }
    }

    /// The id of the sent event `bytes` is, if any.
    fn id(&self, bytes: &[u8]) -> Option<&'a str> {
        event_id(bytes)
            .and_then(|id| self.ids.get_key_value(id))
            .map(|(&id, _)| id)
    }
}

/// Where the sent events were found, by id.
struct Found<'a> {
    /// Copies in `events/` and the first landing.
    landed: HashMap<&'a str, (u64, u64)>,
    /// First time rejected, and the best place it is kept.
    rejected: HashMap<&'a str, (u64, Place)>,
    dead_lettered: HashMap<&'a str, u64>,
    given_up: HashMap<&'a str, u64>,
}

/// Sorts every sent event into exactly one place.
pub fn account(evidence: &Evidence<'_>) -> Account {
    let contents = evidence.contents;
    let mut report = Report {
        sent: evidence.sent.len() as u64,
        valid_sent: evidence.sent.iter().filter(|s| s.valid).count() as u64,
        objects: contents.objects() as u64,
        ..Report::default()
    };
    report.invalid_sent = report.sent - report.valid_sent;
    let known = Known::new(evidence.sent);
    let kept = kept(evidence, &mut report);
    let found = Found {
        landed: landed(evidence, &known, &mut report),
        rejected: rejected(evidence, &kept, &known, &mut report),
        dead_lettered: dead_lettered(&kept, &known, &mut report),
        given_up: given_up(contents, &known, &mut report),
    };
    let (traces, mut delays) = traces(evidence.sent, &found, &mut report);
    report.delays_from_last_modified = match evidence.landings {
        None => delays.len() as u64,
        Some(landings) => contents
            .delivered
            .iter()
            .filter(|o| landings.at(&o.etag).is_none())
            .map(|o| plain(&o.body).map_or(0, |b| b.iter().filter(|&&b| b == b'\n').count() as u64))
            .sum(),
    };
    delays.sort_unstable();
    report.p50_delivery_ms = percentile(&delays, 50.0);
    report.p99_delivery_ms = percentile(&delays, 99.0);
    report.max_delivery_ms = delays.last().copied().unwrap_or(0);
    Account { report, traces }
}

/// The events in `events/`: copies and first landing of each.
fn landed<'a>(evidence: &Evidence<'_>, known: &Known<'a>, report: &mut Report) -> HashMap<&'a str, (u64, u64)> {
    let mut landed: HashMap<&str, (u64, u64)> = HashMap::new();
    for object in &evidence.contents.delivered {
        let acknowledged = evidence.landings.and_then(|l| l.at(&object.etag));
        let at = acknowledged.unwrap_or(object.last_modified_ms);
        let body = match plain(&object.body) {
            Ok(body) => body,
            Err(e) => {
                report.problem(format!("{}: {e}", object.key));
                continue;
            }
        };
        for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let one_object = line.first() == Some(&b'{') && serde_json::from_slice::<IgnoredAny>(line).is_ok();
            if !one_object {
                report.malformed_lines += 1;
                continue;
            }
            match known.id(line) {
                Some(id) => {
                    let entry = landed.entry(id).or_insert((0, u64::MAX));
                    entry.0 += 1;
                    entry.1 = entry.1.min(at);
                }
                None => report.unknown_lines += 1,
            }
        }
    }
    landed
}

/// The function's kept objects, read as the log lines they hold (each line
/// timed by its own `timestamp`); what cannot be read, in them or in the
/// log, is a problem of the report.
fn kept(evidence: &Evidence<'_>, report: &mut Report) -> Logged {
    let mut kept = Logged::default();
    for object in &evidence.contents.kept {
        kept.add(&String::from_utf8_lossy(&object.body), &object.key);
    }
    for unreadable in kept.unreadable.iter().chain(&evidence.log.unreadable) {
        report.problem(unreadable.to_string());
    }
    kept
}

/// Rejected events, from `rejects/` and `rejects-unsent/` objects: when
/// each was first written, and the best place it is kept. Counts the
/// duplicate rejects.
fn rejected<'a>(
    evidence: &Evidence<'_>,
    kept: &Logged,
    known: &Known<'a>,
    report: &mut Report,
) -> HashMap<&'a str, (u64, Place)> {
    let mut lines: Vec<(RejectLine, u64, Place)> = Vec::new();
    for object in &evidence.contents.rejected {
        let at = evidence
            .landings
            .and_then(|l| l.at(&object.etag))
            .unwrap_or(object.last_modified_ms);
        let body = match plain(&object.body) {
            Ok(body) => body,
            Err(e) => {
                report.problem(format!("{}: {e}", object.key));
                continue;
            }
        };
        for line in reject::read_lines(&body) {
            match line {
                Ok(line) => lines.push((line, at, Place::Stream)),
                Err(e) => report.problem(format!("{}: {e}", object.key)),
            }
        }
    }
    lines.extend(timed(&kept.rejections, Place::S3));
    let mut copies: HashMap<(String, Option<u64>, usize), u64> = HashMap::new();
    for (line, _, _) in &lines {
        let index = line.part.as_ref().map_or(0, |p| p.index);
        *copies
            .entry((line.sequence_number.clone(), line.sub_sequence_number, index))
            .or_default() += 1;
    }
    report.duplicate_rejects = copies.values().map(|n| n - 1).sum();
    // The first time and best place each rejected record was written.
    let mut first: HashMap<(String, Option<u64>), (u64, Place)> = HashMap::new();
    for (line, at, place) in &lines {
        let entry = first
            .entry((line.sequence_number.clone(), line.sub_sequence_number))
            .or_insert((*at, *place));
        *entry = (entry.0.min(*at), entry.1.min(*place));
    }
    let mut rejected: HashMap<&str, (u64, Place)> = HashMap::new();
    match reject::recover(lines.into_iter().map(|(line, _, _)| line)) {
        Ok(recovered) => {
            for r in recovered {
                let Some(id) = known.id(&r.payload) else { continue };
                let (at, place) = first
                    .get(&(r.line.sequence_number.clone(), r.line.sub_sequence_number))
                    .copied()
                    .unwrap_or((0, Place::S3));
                let entry = rejected.entry(id).or_insert((at, place));
                *entry = (entry.0.min(at), entry.1.min(place));
            }
        }
        Err(e) => report.problem(format!("rejected records could not be put back together: {e}")),
    }
    rejected
}

/// Dead-lettered events, from the kept objects' dead letters, parts joined:
/// when each was first written.
fn dead_lettered<'a>(kept: &Logged, known: &Known<'a>, report: &mut Report) -> HashMap<&'a str, u64> {
    let mut dead: HashMap<&str, u64> = HashMap::new();
    for (record, at) in reassemble(&kept.dead_letters, report) {
        let record = match plain(&record) {
            Ok(record) => record,
            Err(e) => {
                report.problem(format!("a gzip dead letter that does not open: {e}"));
                continue;
            }
        };
        for line in record.split(|&b| b == b'\n') {
            if let Some(id) = known.id(line) {
                let entry = dead.entry(id).or_insert(at);
                *entry = (*entry).min(at);
            }
        }
    }
    dead
}

/// Events in batches the event source mapping gave up on: when the batch
/// was kept.
fn given_up<'a>(contents: &Contents, known: &Known<'a>, report: &mut Report) -> HashMap<&'a str, u64> {
    let mut given_up: HashMap<&str, u64> = HashMap::new();
    for object in &contents.given_up {
        let batch = match InvocationRecord::parse(&object.body) {
            Ok((_, batch)) => batch,
            Err(e) => {
                report.problem(format!("{}: {e}", object.key));
                continue;
            }
        };
        for record in &batch.records {
            let data = record.data();
            let users = kpl::deaggregate(data, Bounds::NONE).map(|u| u.into_iter().map(|u| u.data).collect::<Vec<_>>());
            for bytes in users.unwrap_or_else(|_| vec![data]) {
                if let Some(id) = known.id(bytes) {
                    given_up.entry(id).or_insert(object.last_modified_ms);
                }
            }
        }
    }
    given_up
}

/// Each sent event's trace, the first place of delivered, rejected,
/// dead-lettered, given up that holds it, else lost; and the delivery
/// delays of the valid events delivered.
fn traces(sent: &[Sent], found: &Found<'_>, report: &mut Report) -> (Vec<Trace>, Vec<u64>) {
    let mut delays = Vec::new();
    let mut traces = Vec::with_capacity(sent.len());
    for s in sent {
        let id = s.id.as_str();
        let (ending, at_ms) = if let Some(&(copies, first)) = found.landed.get(id) {
            report.delivered += 1;
            report.duplicates += copies - 1;
            if s.valid {
                delays.push(first.saturating_sub(s.at_ms));
            } else {
                report.invalid_delivered += 1;
            }
            (Ending::Delivered, Some(first))
        } else if let Some(&(at, place)) = found.rejected.get(id) {
            report.rejected += 1;
            report.rejected_kept_in_s3 += u64::from(place == Place::S3);
            report.valid_rejected += u64::from(s.valid);
            (Ending::Rejected, Some(at))
        } else if let Some(&at) = found.dead_lettered.get(id) {
            report.dead_lettered += 1;
            report.dead_lettered_in_s3 += 1;
            (Ending::DeadLettered, Some(at))
        } else if let Some(&at) = found.given_up.get(id) {
            report.given_up += 1;
            (Ending::GivenUp, Some(at))
        } else {
            report.lost += 1;
            (Ending::Lost, None)
        };
        traces.push(Trace {
            sent_ms: s.at_ms,
            ending,
            at_ms,
        });
    }
    (traces, delays)
}

/// Where a copy of an undelivered record is, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    /// The rejects stream took it (`rejects/`).
    Stream,
    /// The function's object in S3.
    S3,
}

fn timed(lines: &[Timed<RejectLine>], place: Place) -> impl Iterator<Item = (RejectLine, u64, Place)> + '_ {
    lines
        .iter()
        .map(move |l| (l.value.clone(), l.at_ms.unwrap_or(0), place))
}

/// The records dead letters carry, each with the earliest time one of its
/// letters was written: whole letters as they are, part groups joined
/// ([`dead_letter::by_record`]). A letter or group that cannot be read is a
/// problem of the report; the rest still count.
fn reassemble(letters: &[Timed<DeadLetter>], report: &mut Report) -> Vec<(Vec<u8>, u64)> {
    let mut records = Vec::new();
    for held in dead_letter::by_record(letters, |l| &l.value) {
        let at = held.iter().filter_map(|l| l.at_ms).min().unwrap_or(0);
        match dead_letter::reassemble(held.iter().map(|l| &l.value)) {
            Ok(joined) => records.extend(joined.into_iter().map(|r| (r, at))),
            Err(e) => report.problem(format!(
                "dead letter of {:?}: {e}",
                held.first().and_then(|l| l.value.sequence_numbers.first())
            )),
        }
    }
    records
}

/// The bytes as they are, or their gzip members opened.
fn plain(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, compress::OpenError> {
    compress::open(bytes, u64::MAX)
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
    use crate::bucket::Object;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use kinesis_firehose_bridge::dead_letter;

    fn sent(id: &str, valid: bool) -> Sent {
        Sent {
            id: id.to_owned(),
            at_ms: 1_000,
            valid,
        }
    }

    fn object(key: &str, lines: &[String], last_modified_ms: u64) -> Object {
        Object {
            key: key.into(),
            etag: "\"e\"".into(),
            last_modified_ms,
            body: lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes(),
        }
    }

    fn reject_line(id: &str, sequence: &str) -> RejectLine {
        RejectLine {
            reason: "missing_timestamp".into(),
            detail: String::new(),
            sequence_number: sequence.into(),
            sub_sequence_number: None,
            partition_key: "k".into(),
            partition_key_md5: None,
            approximate_arrival_timestamp: 0.0,
            truncated: Vec::new(),
            data: STANDARD.encode(format!(r#"{{"event_id":"{id}"}}"#)),
            part: None,
        }
    }

    fn dead_letter_line(id: &str) -> String {
        let letter = &DeadLetter::for_record(
            dead_letter::Cause {
                delivery_stream: "s",
                error_code: "ServiceUnavailableException",
                error_message: "Slow down.",
            },
            format!("{{\"event_id\":\"{id}\"}}\n").as_bytes(),
            |_| "5",
            "g",
        )[0];
        String::from_utf8(kinesis_firehose_bridge::log::log_line("ERROR", "m", letter).unwrap())
            .unwrap()
            .trim_end()
            .to_owned()
    }

    fn on_failure_object(id: &str) -> Object {
        let data = STANDARD.encode(format!(
            r#"{{"event_id":"{id}","event_type":"a","timestamp":"2026-01-01T00:00:00Z"}}"#
        ));
        let event = format!(
            r#"{{"Records":[{{"kinesis":{{"partitionKey":"k","sequenceNumber":"9","data":"{data}","approximateArrivalTimestamp":1.0}}}}]}}"#
        );
        let record = crate::on_failure::record(&crate::on_failure::GivenUp {
            shard_id: "shardId-0",
            stream_arn: "arn",
            function_arn: "arn:f",
            condition: crate::on_failure::Condition::RetryAttemptsExhausted,
            invocations: 2,
            last_request_id: "r",
            first_sequence: "9",
            last_sequence: "9",
            first_arrival: 1.0,
            last_arrival: 1.0,
            records: 1,
            event: event.as_bytes(),
        });
        Object {
            key: "aws/lambda/u/shardId-0/x".into(),
            etag: String::new(),
            last_modified_ms: 9_000,
            body: serde_json::to_vec(&record).unwrap(),
        }
    }

    #[test]
    fn every_event_lands_in_exactly_one_place() {
        let sent = vec![
            sent("a", true),
            sent("b", true),
            sent("c", false),
            sent("d", true),
            sent("e", true),
            sent("f", true),
            sent("g", true),
        ];
        let contents = Contents {
            delivered: vec![
                object(
                    "events/1",
                    &[r#"{"event_id":"a"}"#.into(), r#"{"event_id":"b"}"#.into()],
                    2_000,
                ),
                object("events/2", &[r#"{"event_id":"a"}"#.into()], 3_000),
            ],
            rejected: vec![object(
                "rejects/1",
                &[serde_json::to_string(&reject_line("c", "1")).unwrap()],
                2_500,
            )],
            kept: vec![object("dead-letters/x/r.ndjson", &[dead_letter_line("f")], 4_000)],
            given_up: vec![on_failure_object("g")],
        };
        let log = Logged::read(&format!("{}\n", dead_letter_line("d")), "function.log");
        let account = account(&Evidence {
            sent: &sent,
            contents: &contents,
            log: &log,
            landings: None,
        });
        let report = &account.report;
        assert_eq!(
            (
                report.delivered,
                report.rejected,
                report.dead_lettered,
                report.given_up,
                report.lost
            ),
            (2, 1, 1, 1, 2)
        );
        assert_eq!(report.dead_lettered_in_s3, 1, "d is only in the log, which is no copy");
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.p99_delivery_ms, 1_000);
        assert!(!report.is_clean(), "d and e are lost");
        let endings: Vec<Ending> = account.traces.iter().map(|f| f.ending).collect();
        assert_eq!(endings[6], Ending::GivenUp);
        assert_eq!(account.traces[6].at_ms, Some(9_000));
    }

    #[test]
    fn a_reject_written_twice_is_a_duplicate_reject_and_a_valid_one_rejected_is_a_bug() {
        let sent = vec![sent("c", true)];
        let line = serde_json::to_string(&reject_line("c", "1")).unwrap();
        let contents = Contents {
            rejected: vec![
                object("rejects/1", std::slice::from_ref(&line), 1),
                object("rejects/2", &[line], 2),
            ],
            ..Contents::default()
        };
        let report = account(&Evidence {
            sent: &sent,
            contents: &contents,
            log: &Logged::default(),
            landings: None,
        })
        .report;
        assert_eq!(report.duplicate_rejects, 1);
        assert_eq!(report.valid_rejected, 1);
        assert!(!report.is_clean());
    }

    #[test]
    fn what_cannot_be_read_is_named_and_makes_the_report_unclean() {
        let sent = vec![sent("g", true)];
        let mut bad = on_failure_object("g");
        bad.body = b"{\"not\":\"one\"}".to_vec();
        let contents = Contents {
            given_up: vec![bad],
            ..Contents::default()
        };
        let cut = dead_letter_line("x");
        let log = Logged::read(&cut[..cut.len() - 10], "function.log");
        let report = account(&Evidence {
            sent: &sent,
            contents: &contents,
            log: &log,
            landings: None,
        })
        .report;
        assert_eq!(report.unreadable, 2, "{:?}", report.problems);
        assert!(report.problems.iter().any(|p| p.starts_with("function.log:1")));
        assert!(report.problems.iter().any(|p| p.starts_with("aws/lambda/")));
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
