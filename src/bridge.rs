//! The function: one Kinesis batch in, every event accounted for.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::LambdaEvent;
use thiserror::Error;
use tokio::time::Instant;

use crate::backoff::{Backoff, Budget};
use crate::batch::{KinesisBatch, SourceRecord};
use crate::compress;
use crate::config::{Compression, Config, OnPartialFailure};
use crate::dead_letter::{self, DeadLetter};
use crate::delivery::{self, Fate, Policy};
use crate::event::{Contract, Reason};
use crate::firehose::Firehose;
use crate::limits::{MAX_REQUEST_SIZE, MAX_USER_RECORDS_PER_INVOCATION, MIN_CALL_TIME, billed_bytes};
use crate::metrics;
use crate::pack::{self, Packer, Packing};
use crate::record::{self, Incoming, Unpacked};
use crate::reject;
use crate::report::{Lines, LogSink, Status, Summary, write_line};
use crate::route::Rotation;
use crate::store::Store;
use crate::undelivered::{self, REJECTED_MESSAGE, Undelivered, Unrecorded};

/// Everything an invocation needs, built once at cold start.
pub struct Bridge<F, S> {
    pub config: Config,
    pub contract: Contract,
    pub firehose: F,
    /// Where undelivered events are kept (`UNDELIVERED_BUCKET`).
    pub store: S,
    /// Whether the first invocation's deadline was checked against the
    /// configured safety margin.
    margin_checked: AtomicBool,
    /// Whether a deadline that is not one was warned about (once per
    /// process: `cargo lambda watch` sends one with every invocation).
    deadline_warned: AtomicBool,
}

/// The invocation failed as a whole: nothing was delivered, so Kinesis
/// retries the batch. The retry duplicates nothing, unless a call was
/// abandoned at the deadline after Firehose had taken its records.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error(
    "none of the {events} valid events could be delivered (last error {code}: {message}); \
     failing the invocation so that Kinesis retries the batch"
)]
pub struct NothingDelivered {
    pub events: usize,
    pub code: String,
    pub message: String,
}

/// Why an invocation failed; Kinesis retries the batch (with bisect, as
/// the template configures it).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum InvocationError {
    #[error(transparent)]
    NothingDelivered(#[from] NothingDelivered),
    #[error(transparent)]
    Unrecorded(#[from] Unrecorded),
}

impl From<InvocationError> for lambda_runtime::Diagnostic {
    fn from(error: InvocationError) -> Self {
        let error_type = match &error {
            InvocationError::NothingDelivered(_) => "NothingDelivered",
            InvocationError::Unrecorded(_) => "Unrecorded",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What [`Bridge::process`] found and did; [`Bridge::finish`] writes it
/// down.
#[derive(Debug)]
pub struct Processed {
    pub summary: Summary,
    pub dead_letters: Vec<DeadLetter>,
    /// Log lines of the rejected records no rejects stream took: their
    /// only copy, to be kept in S3 or the log.
    pub unsent_rejects: Lines,
    /// Rejected events those lines hold.
    pub unsent_rejected_events: usize,
    pub verdict: Result<KinesisEventResponse, NothingDelivered>,
}

/// A valid event and the line it is written as.
struct Valid<'a> {
    incoming: Incoming<'a>,
    line: Cow<'a, [u8]>,
}

impl AsRef<[u8]> for Valid<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.line
    }
}

struct Rejected<'a> {
    incoming: Incoming<'a>,
    reason: Reason,
}

/// Every event of a batch, sorted.
struct Sorted<'a> {
    valid: Vec<Valid<'a>>,
    rejected: Vec<Rejected<'a>>,
    events: usize,
    /// The first record left for the next invocation, if any: it and every
    /// record after it are handed back unopened.
    deferred_from: Option<usize>,
}

impl<F: Firehose, S: Store> Bridge<F, S> {
    pub fn new(config: Config, contract: Contract, firehose: F, store: S) -> Self {
        Bridge {
            config,
            contract,
            firehose,
            store,
            margin_checked: AtomicBool::new(false),
            deadline_warned: AtomicBool::new(false),
        }
    }

    /// Handles one invocation and writes what could not be delivered, the
    /// summary and the metrics to `log`.
    pub async fn handle(
        &self,
        event: LambdaEvent<KinesisBatch>,
        log: &impl LogSink,
    ) -> Result<KinesisEventResponse, InvocationError> {
        let deadline = deadline_from_epoch_ms(event.context.deadline);
        if deadline.is_none() && event.context.deadline != 0 && !self.deadline_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                deadline_ms = event.context.deadline,
                "the runtime's deadline is not a time within the next 15 minutes (cargo lambda watch sends a \
                 duration there); resends are bounded by MAX_PUT_ATTEMPTS only. Said once per process."
            );
        }
        let context = &event.context;
        self.invoke(
            &event.payload.records,
            deadline,
            &context.request_id,
            &context.env_config.function_name,
            log,
        )
        .await
        .1
    }

    /// One invocation from its records: [`Bridge::process`], then
    /// [`Bridge::finish`]. Returns the summary beside the verdict, for
    /// callers that add them up.
    pub async fn invoke<R: SourceRecord>(
        &self,
        records: &[R],
        deadline: Option<Instant>,
        request_id: &str,
        function_name: &str,
        log: &impl LogSink,
    ) -> (Summary, Result<KinesisEventResponse, InvocationError>) {
        self.check_margin(deadline);
        let processed = self.process(records, deadline, request_id).await;
        self.finish(processed, deadline, request_id, function_name, log).await
    }

    /// Warns once, at the first invocation with a deadline, when the safety
    /// margin leaves no time for a single call.
    fn check_margin(&self, deadline: Option<Instant>) {
        let Some(deadline) = deadline else { return };
        if self.margin_checked.swap(true, Ordering::Relaxed) {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if let Some(warning) = margin_warning(left, self.config.deadline_safety_margin) {
            tracing::warn!(
                time_left_ms = left.as_millis() as u64,
                deadline_safety_margin_ms = self.config.deadline_safety_margin.as_millis() as u64,
                min_call_time_ms = MIN_CALL_TIME.as_millis() as u64,
                "{warning}"
            );
        }
    }

    /// Decodes, validates, packs and delivers one batch. `deadline` is when
    /// the invocation ends (`None` if unknown); `request_id` names dead
    /// letter parts.
    pub async fn process<R: SourceRecord>(
        &self,
        records: &[R],
        deadline: Option<Instant>,
        request_id: &str,
    ) -> Processed {
        let started = Instant::now();
        let config = &self.config;
        let policy = Policy {
            max_attempts: config.max_put_attempts,
            backoff: Backoff {
                base: config.backoff_base,
                max: config.backoff_max,
            },
            budget: Budget::new(deadline, config.deadline_safety_margin),
        };

        let Sorted {
            valid,
            mut rejected,
            events,
            deferred_from,
        } = self.decode_and_validate(records);

        let packing = if config.pack_events {
            Packing {
                max_bytes: config.max_record_bytes,
                max_events: config.max_events_per_record,
            }
        } else {
            Packing::UNPACKED
        };
        let packed = match config.compression {
            Compression::None => pack::pack(&valid, packing),
            Compression::Gzip => {
                let compressed = compress::pack(&valid, config.max_record_bytes);
                for (i, size) in compressed.too_large {
                    rejected.push(Rejected {
                        incoming: valid[i].incoming,
                        reason: Reason::TooLargeCompressed(size),
                    });
                }
                compressed.records
            }
        };
        let data: Vec<&[u8]> = packed.iter().map(|p| &p.data[..]).collect();
        let streams = &config.delivery_streams;
        let delivery = delivery::deliver(&self.firehose, streams, Rotation::random(streams.len()), policy, &data).await;

        let mut summary = Summary::new(records.len());
        summary.events_received = events;
        summary.records_deferred = deferred_from.map_or(0, |first| records.len() - first);
        summary.firehose_records = packed.len();
        summary.event_bytes = packed
            .iter()
            .flat_map(|p| &valid[p.items.clone()])
            .map(|v| v.line.len() + 1)
            .sum();
        summary.firehose_bytes = data.iter().map(|d| d.len()).sum();
        summary.firehose_billed_bytes = data.iter().map(|d| billed_bytes(d.len())).sum();
        summary.put_calls = delivery.calls;
        summary.put_rounds = delivery.rounds;

        if !packed.is_empty() && delivery.delivered() == 0 {
            let (code, message) = delivery
                .fates
                .iter()
                .find_map(|f| match f {
                    Fate::Failed(failure) => Some((failure.code.clone(), failure.message.clone())),
                    Fate::Delivered { .. } => None,
                })
                .unwrap_or_default();
            summary.status = Status::Failed;
            // Rejects too: the retry writes them.
            summary.events_retried = events;
            summary.duration_ms = started.elapsed().as_millis() as u64;
            return Processed {
                summary,
                dead_letters: Vec::new(),
                unsent_rejects: Lines::default(),
                unsent_rejected_events: 0,
                verdict: Err(NothingDelivered {
                    events: packed.iter().map(|p| p.items.len()).sum(),
                    code,
                    message,
                }),
            };
        }

        let mut response = KinesisEventResponse::default();
        let mut dead_letters = Vec::new();
        // The lowest record handed back: the event source mapping sends it,
        // and every record after it, again.
        let mut checkpoint: Option<usize> = deferred_from;
        for (record, fate) in packed.iter().zip(&delivery.fates) {
            let events = &valid[record.items.clone()];
            let failure = match fate {
                Fate::Delivered { .. } => {
                    summary.events_delivered += events.len();
                    continue;
                }
                Fate::Failed(failure) => failure,
            };
            summary.status = Status::Partial;
            match config.on_partial_failure {
                OnPartialFailure::Log => {
                    summary.events_dead_lettered += events.len();
                    let cause = dead_letter::Cause {
                        delivery_stream: &streams[failure.stream],
                        error_code: &failure.code,
                        error_message: &failure.message,
                    };
                    let sequence_of = |i: usize| records[events[i].incoming.origin.record].sequence_number();
                    let group = format!("{request_id}/{}", record.items.start);
                    dead_letters.extend(match config.compression {
                        Compression::None => DeadLetter::for_record(cause, &record.data, sequence_of, &group),
                        Compression::Gzip => {
                            let first_and_last = [sequence_of(0), sequence_of(events.len().saturating_sub(1))];
                            DeadLetter::for_compressed(cause, &record.data, first_and_last, &group)
                        }
                    });
                }
                OnPartialFailure::Retry => {
                    summary.events_retried += events.len();
                    for event in events {
                        let at = event.incoming.origin.record;
                        let lower = checkpoint.is_none_or(|low| {
                            record::compare_sequence_numbers(
                                records[at].sequence_number(),
                                records[low].sequence_number(),
                            )
                            .is_lt()
                        });
                        if lower {
                            checkpoint = Some(at);
                        }
                    }
                }
            }
        }
        if let Some(low) = checkpoint {
            response.add_failure(records[low].sequence_number());
        }

        // The event source mapping sends every record from the checkpoint
        // on again: their rejects are written by that retry, so that each is
        // written once.
        let (to_write, handed_back): (Vec<&Rejected>, Vec<&Rejected>) = rejected.iter().partition(|r| {
            checkpoint.is_none_or(|low| {
                record::compare_sequence_numbers(
                    records[r.incoming.origin.record].sequence_number(),
                    records[low].sequence_number(),
                )
                .is_lt()
            })
        });
        summary.events_retried += handed_back.len();
        summary.events_rejected = to_write.len();
        for r in &to_write {
            *summary.rejected_by_reason.entry(r.reason.code()).or_default() += 1;
        }
        let (unsent_rejects, unsent_rejected_events, reject_calls) =
            self.send_rejects(records, &to_write, packing, policy).await;
        summary.put_calls += reject_calls;
        summary.duration_ms = started.elapsed().as_millis() as u64;
        Processed {
            summary,
            dead_letters,
            unsent_rejects,
            unsent_rejected_events,
            verdict: Ok(response),
        }
    }

    /// Keeps what was not delivered (S3, else the log), then writes the
    /// summary and metrics lines; returns the invocation's answer. Fails
    /// the invocation when an undelivered event could be written nowhere.
    pub async fn finish(
        &self,
        processed: Processed,
        deadline: Option<Instant>,
        request_id: &str,
        function_name: &str,
        log: &impl LogSink,
    ) -> (Summary, Result<KinesisEventResponse, InvocationError>) {
        let Processed {
            mut summary,
            dead_letters,
            unsent_rejects,
            unsent_rejected_events,
            verdict,
        } = processed;
        let undelivered = Undelivered {
            dead_letters: &dead_letters,
            dead_lettered_events: summary.events_dead_lettered,
            unsent_rejects,
            unsent_rejected_events,
        };
        // What is left of the invocation, less a little for the log.
        let store_time = deadline.map_or(STORE_TIME_UNBOUNDED, |d| {
            d.saturating_duration_since(Instant::now()).saturating_sub(LOG_TIME)
        });
        let kept = undelivered::keep(&self.store, request_id, undelivered, log, store_time).await;
        if let Ok(kept) = &kept {
            summary.events_kept_in_s3 = kept.events_in_s3;
            summary.events_kept_only_in_log = kept.events_only_in_log;
        }
        let _ = write_line(log, "INFO", "invocation finished", &summary.line());
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let emf = metrics::emf(&self.config.metrics_namespace, function_name, &summary, now_ms);
        let _ = write_line(log, "INFO", "metrics", &emf);
        let verdict = match kept {
            Err(unrecorded) => Err(InvocationError::Unrecorded(unrecorded)),
            Ok(_) => verdict.map_err(InvocationError::NothingDelivered),
        };
        (summary, verdict)
    }

    /// Opens every record and checks every event against the contract.
    /// Aggregates share [`MAX_USER_RECORDS_PER_INVOCATION`]; from the first
    /// that would pass it, the records wait for the next invocation.
    fn decode_and_validate<'a, R: SourceRecord>(&self, records: &'a [R]) -> Sorted<'a> {
        let mut sorted = Sorted {
            valid: Vec::with_capacity(records.len()),
            rejected: Vec::new(),
            events: 0,
            deferred_from: None,
        };
        let mut user_records_left = MAX_USER_RECORDS_PER_INVOCATION;
        for (index, kinesis_record) in records.iter().enumerate() {
            match record::unpack(index, kinesis_record, user_records_left) {
                Unpacked::Deferred => {
                    sorted.deferred_from = Some(index);
                    break;
                }
                Unpacked::Rejected(incoming, reason) => {
                    sorted.events += 1;
                    sorted.rejected.push(Rejected { incoming, reason });
                }
                Unpacked::Event(incoming) => {
                    sorted.events += 1;
                    self.check_into(incoming, &mut sorted);
                }
                Unpacked::Events(events) => {
                    sorted.events += events.len();
                    user_records_left -= events.len();
                    for incoming in events {
                        self.check_into(incoming, &mut sorted);
                    }
                }
            }
        }
        sorted
    }

    fn check_into<'a>(&self, incoming: Incoming<'a>, sorted: &mut Sorted<'a>) {
        match self.contract.check(incoming.data) {
            Ok(line) => sorted.valid.push(Valid { incoming, line }),
            Err(reason) => sorted.rejected.push(Rejected { incoming, reason }),
        }
    }

    /// Sends rejected records to the rejects stream, if there is one.
    /// Returns the log lines of those no stream took (the records' only
    /// copy), how many rejected events they hold, and the calls it took.
    async fn send_rejects<R: SourceRecord>(
        &self,
        records: &[R],
        rejected: &[&Rejected<'_>],
        packing: Packing,
        policy: Policy,
    ) -> (Lines, usize, u32) {
        let lines_of = |r: &Rejected<'_>| {
            let record = &records[r.incoming.origin.record];
            let source = reject::Source {
                sequence_number: record.sequence_number(),
                sub_sequence_number: r.incoming.origin.sub_sequence_number,
                partition_key: r.incoming.partition_key,
                approximate_arrival_timestamp: record.approximate_arrival_timestamp(),
            };
            reject::lines(source, &r.reason, r.incoming.data)
        };
        let unsent = |which: &mut dyn Iterator<Item = &Rejected<'_>>| {
            let mut lines = Lines::default();
            let mut events = 0;
            for r in which {
                for line in lines_of(r) {
                    lines.push("WARN", REJECTED_MESSAGE, &reject::log_body(&line));
                }
                events += 1;
            }
            (lines, events)
        };
        let Some(stream) = &self.config.rejects_delivery_stream else {
            let (lines, events) = unsent(&mut rejected.iter().copied());
            return (lines, events, 0);
        };
        if rejected.is_empty() {
            return (Lines::default(), 0, 0);
        }
        // Lines are written straight into their records, and sent a few
        // megabytes at a time: a batch of many small rejects (a hostile KPL
        // aggregate) never holds all of its lines at once.
        let mut failed = vec![false; rejected.len()];
        let mut calls = 0;
        let mut packer = Packer::new(packing);
        let mut owner = Vec::new(); // line of this chunk -> index in `rejected`
        let mut scratch = Vec::new();
        for (i, r) in rejected.iter().enumerate() {
            for line in lines_of(r) {
                scratch.clear();
                // A struct of strings and numbers always serialises.
                if serde_json::to_writer(&mut scratch, &line).is_ok() {
                    packer.push(&scratch);
                    owner.push(i);
                }
            }
            if packer.bytes() < REJECTS_CHUNK && i + 1 < rejected.len() {
                continue;
            }
            let packed = std::mem::replace(&mut packer, Packer::new(packing)).finish();
            let data: Vec<&[u8]> = packed.iter().map(|p| &p.data[..]).collect();
            let delivery = delivery::deliver(
                &self.firehose,
                std::slice::from_ref(stream),
                Rotation::new(1, 0),
                policy,
                &data,
            )
            .await;
            calls += delivery.calls;
            for (record, fate) in packed.iter().zip(&delivery.fates) {
                if matches!(fate, Fate::Failed(_)) {
                    for &i in &owner[record.items.clone()] {
                        failed[i] = true;
                    }
                }
            }
            owner.clear();
        }
        let (lines, events) = unsent(&mut rejected.iter().zip(&failed).filter(|(_, f)| **f).map(|(r, _)| *r));
        (lines, events, calls)
    }
}

/// Bytes of reject lines sent at a time: two full requests.
const REJECTS_CHUNK: usize = 2 * MAX_REQUEST_SIZE * 3 / 4;

/// What to say when `margin` and [`MIN_CALL_TIME`] do not fit in the
/// `left` of an invocation: then no call can ever start.
pub fn margin_warning(left: Duration, margin: Duration) -> Option<String> {
    (margin + MIN_CALL_TIME > left).then(|| {
        format!(
            "DEADLINE_SAFETY_MARGIN_MS ({} ms) and the minimum call time ({} ms) leave no time for a call in this \
             invocation's {} ms: nothing can be delivered and every batch will be retried. Lower the margin or \
             raise the function's timeout.",
            margin.as_millis(),
            MIN_CALL_TIME.as_millis(),
            left.as_millis()
        )
    })
}

/// Time kept, after the S3 writes, for the log lines.
const LOG_TIME: Duration = Duration::from_millis(200);
/// An S3 write's bound when the deadline is unknown.
const STORE_TIME_UNBOUNDED: Duration = Duration::from_secs(30);

/// Lambda's longest invocation: "The maximum timeout is 900 seconds (15
/// minutes)" (Lambda quotas).
pub const MAX_INVOCATION: Duration = Duration::from_secs(900);

/// The runtime gives the deadline in milliseconds since the epoch. Zero (as
/// in `Context::default()`), a deadline already past, or one further away
/// than any invocation can last is not a real deadline — `cargo lambda
/// watch` 1.9 sends a duration there — and is treated as unknown: the
/// attempts limit still bounds the resends.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> Option<Instant> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    let left = Duration::from_millis(deadline_ms.checked_sub(now_ms)?);
    (!left.is_zero() && left <= MAX_INVOCATION).then(|| Instant::now() + left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_ms() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
    }

    #[test]
    fn a_deadline_a_minute_away_is_kept() {
        let deadline = deadline_from_epoch_ms(now_ms() + 60_000).unwrap();
        let left = deadline - Instant::now();
        assert!(
            left > Duration::from_secs(58) && left <= Duration::from_secs(60),
            "{left:?}"
        );
    }

    #[test]
    fn a_margin_that_leaves_no_call_time_is_warned_about_with_the_figures() {
        let warning = margin_warning(Duration::from_millis(1_500), Duration::from_millis(1_000)).unwrap();
        assert!(
            warning.contains("(1000 ms)") && warning.contains("1500 ms"),
            "{warning}"
        );
        assert_eq!(
            margin_warning(Duration::from_secs(60), Duration::from_millis(1_000)),
            None
        );
    }

    #[test]
    fn zero_past_or_impossible_deadlines_are_unknown() {
        assert_eq!(deadline_from_epoch_ms(0), None);
        // What `cargo lambda watch` sends: ten minutes after 1970.
        assert_eq!(deadline_from_epoch_ms(600_000), None);
        assert_eq!(deadline_from_epoch_ms(now_ms() + 3_600_000), None);
    }
}
