//! The function: one Kinesis batch in, every event accounted for.

use std::borrow::Cow;
use std::collections::BTreeMap;
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
use crate::delivery::{self, Delivery, Fate, Policy};
use crate::event::Contract;
use crate::firehose::Firehose;
use crate::limits::{MAX_INVOCATION, MAX_USER_RECORDS_PER_INVOCATION, MIN_CALL_TIME, billed_bytes};
use crate::log::{Lines, LogSink, write_line};
use crate::metrics;
use crate::pack::{self, Packed, Packing};
use crate::reason::Reason;
use crate::record::{self, Incoming, Unpacked};
use crate::rejects_stream::{self, Rejected};
use crate::report::{Status, Summary};
use crate::route::Rotation;
use crate::store::Store;
use crate::undelivered::{self, Undelivered};

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

/// Undelivered events that S3 did not take and whose records cannot be
/// handed back one by one.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error(
    "{events} undelivered events could not be written to S3, and their records have no sequence number to \
     hand back in batchItemFailures; failing the invocation so that Kinesis retries the batch"
)]
pub struct NotHandedBack {
    pub events: usize,
}

/// Why an invocation failed; Kinesis retries the batch (with bisect, as
/// the template configures it).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum InvocationError {
    #[error(transparent)]
    NothingDelivered(#[from] NothingDelivered),
    #[error(transparent)]
    NotHandedBack(#[from] NotHandedBack),
}

impl From<InvocationError> for lambda_runtime::Diagnostic {
    fn from(error: InvocationError) -> Self {
        let error_type = match &error {
            InvocationError::NothingDelivered(_) => "NothingDelivered",
            InvocationError::NotHandedBack(_) => "NotHandedBack",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What [`Bridge::process`] found and did; [`Bridge::finish`] keeps what
/// was not delivered and writes it down.
#[derive(Debug)]
pub struct Processed {
    pub summary: Summary,
    pub dead_letters: Vec<DeadLetter>,
    /// The lowest sequence number among the dead letters' records: where
    /// Kinesis resumes should S3 not take them.
    pub dead_letters_from: Option<String>,
    /// Lines of the rejected records no rejects stream took: their only
    /// copy, to be kept in S3.
    pub unsent_rejects: Lines,
    /// Rejected events those lines hold, and by reason.
    pub unsent_rejected_events: usize,
    pub unsent_rejected_by_reason: BTreeMap<&'static str, usize>,
    /// The lowest sequence number among those rejects' records.
    pub unsent_rejects_from: Option<String>,
    pub verdict: Result<KinesisEventResponse, NothingDelivered>,
}

impl Processed {
    /// A batch of which nothing was delivered: all of it goes back.
    fn failed(summary: Summary, error: NothingDelivered) -> Self {
        Processed {
            summary,
            dead_letters: Vec::new(),
            dead_letters_from: None,
            unsent_rejects: Lines::default(),
            unsent_rejected_events: 0,
            unsent_rejected_by_reason: BTreeMap::new(),
            unsent_rejects_from: None,
            verdict: Err(error),
        }
    }
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
        let policy = self.policy(deadline);
        let Sorted {
            valid,
            mut rejected,
            events,
            deferred_from,
        } = self.decode_and_validate(records);
        let packing = self.packing();
        let packed = self.pack(&valid, packing, &mut rejected);
        let data: Vec<&[u8]> = packed.iter().map(|p| &p.data[..]).collect();
        let streams = &self.config.delivery_streams;
        let delivery = delivery::deliver(&self.firehose, streams, Rotation::random(streams.len()), policy, &data).await;

        let mut summary = Summary::new(records.len());
        summary.events_received = events;
        summary.records_deferred = deferred_from.map_or(0, |first| records.len() - first);
        count_records(&mut summary, &packed, &valid, &delivery);

        if !packed.is_empty() && delivery.delivered() == 0 {
            summary.status = Status::Failed;
            // Rejects too: the retry writes them.
            summary.events_retried = events;
            summary.duration_ms = started.elapsed().as_millis() as u64;
            return Processed::failed(summary, nothing_delivered(&packed, &delivery));
        }

        let fates = self.sort_fates(records, &valid, &packed, &delivery, request_id, &mut summary);
        let checkpoint = record::lowest_of(records, deferred_from, fates.handed_back_from);
        // The event source mapping sends every record from the checkpoint
        // on again: their rejects are written by that retry, so that each is
        // written once.
        let (to_write, handed_back): (Vec<&Rejected>, Vec<&Rejected>) = rejected
            .iter()
            .partition(|r| before(records, r.incoming.origin.record, checkpoint));
        summary.events_retried += handed_back.len();
        summary.events_rejected = to_write.len();
        for r in &to_write {
            *summary.rejected_by_reason.entry(r.reason.code()).or_default() += 1;
        }
        let stream = self.config.rejects_delivery_stream.as_ref();
        let unsent = rejects_stream::send(&self.firehose, stream, records, &to_write, packing, policy).await;
        summary.put_calls += unsent.calls;
        summary.duration_ms = started.elapsed().as_millis() as u64;
        let mut response = KinesisEventResponse::default();
        if let Some(low) = checkpoint {
            response.add_failure(records[low].sequence_number());
        }
        Processed {
            summary,
            dead_letters: fates.dead_letters,
            dead_letters_from: fates
                .dead_letters_from
                .map(|at| records[at].sequence_number().to_owned()),
            unsent_rejects: unsent.lines,
            unsent_rejected_events: unsent.events,
            unsent_rejected_by_reason: unsent.by_reason,
            unsent_rejects_from: unsent.from.map(|at| records[at].sequence_number().to_owned()),
            verdict: Ok(response),
        }
    }

    /// How hard delivery tries, within the invocation's time.
    fn policy(&self, deadline: Option<Instant>) -> Policy {
        let config = &self.config;
        Policy {
            max_attempts: config.max_put_attempts,
            backoff: Backoff {
                base: config.backoff_base,
                max: config.backoff_max,
            },
            budget: Budget::new(deadline, config.deadline_safety_margin),
        }
    }

    fn packing(&self) -> Packing {
        if self.config.pack_events {
            Packing {
                max_bytes: self.config.max_record_bytes,
                max_events: self.config.max_events_per_record,
            }
        } else {
            Packing::UNPACKED
        }
    }

    /// The valid events as Firehose records; with gzip, an event whose
    /// member would not fit a record joins the rejected.
    fn pack<'a>(&self, valid: &[Valid<'a>], packing: Packing, rejected: &mut Vec<Rejected<'a>>) -> Vec<Packed> {
        match self.config.compression {
            Compression::None => pack::pack(valid, packing),
            Compression::Gzip => {
                let compressed = compress::pack(valid, self.config.max_record_bytes);
                for (i, size) in compressed.too_large {
                    rejected.push(Rejected {
                        incoming: valid[i].incoming,
                        reason: Reason::TooLargeCompressed(size),
                    });
                }
                compressed.records
            }
        }
    }

    /// Counts each record's fate: delivered events, dead letters (in `log`
    /// mode, for records Firehose refused to the end) and the records to
    /// hand back (in `retry` mode, and never-sent records in both).
    fn sort_fates<R: SourceRecord>(
        &self,
        records: &[R],
        valid: &[Valid<'_>],
        packed: &[Packed],
        delivery: &Delivery,
        request_id: &str,
        summary: &mut Summary,
    ) -> Fates {
        let mut fates = Fates::default();
        for (record, fate) in packed.iter().zip(&delivery.fates) {
            let events = &valid[record.items.clone()];
            if let Fate::Delivered { .. } = fate {
                summary.events_delivered += events.len();
                continue;
            }
            summary.status = Status::Partial;
            let lowest = events.iter().map(|v| v.incoming.origin.record).min_by(|&a, &b| {
                record::compare_sequence_numbers(records[a].sequence_number(), records[b].sequence_number())
            });
            let failure = match fate {
                Fate::Failed(failure) if self.config.on_partial_failure == OnPartialFailure::Log => failure,
                _ => {
                    summary.events_retried += events.len();
                    fates.handed_back_from = record::lowest_of(records, fates.handed_back_from, lowest);
                    continue;
                }
            };
            summary.events_dead_lettered += events.len();
            fates.dead_letters_from = record::lowest_of(records, fates.dead_letters_from, lowest);
            let cause = dead_letter::Cause {
                delivery_stream: &self.config.delivery_streams[failure.stream],
                error_code: &failure.code,
                error_message: &failure.message,
            };
            let sequence_of = |i: usize| records[events[i].incoming.origin.record].sequence_number();
            let group = format!("{request_id}/{}", record.items.start);
            fates.dead_letters.extend(match self.config.compression {
                Compression::None => DeadLetter::for_record(cause, &record.data, sequence_of, &group),
                Compression::Gzip => {
                    let first_and_last = [sequence_of(0), sequence_of(events.len().saturating_sub(1))];
                    DeadLetter::for_compressed(cause, &record.data, first_and_last, &group)
                }
            });
        }
        fates
    }

    /// Keeps what was not delivered in S3, hands back to Kinesis the
    /// records of what S3 did not take, then writes the summary and
    /// metrics lines; returns the invocation's answer.
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
            dead_letters_from,
            unsent_rejects,
            unsent_rejected_events,
            unsent_rejected_by_reason,
            unsent_rejects_from,
            verdict,
        } = processed;
        let dead_lettered = summary.events_dead_lettered;
        let undelivered = Undelivered {
            dead_letters: &dead_letters,
            dead_lettered_events: dead_lettered,
            unsent_rejects,
            unsent_rejected_events,
        };
        let budget = undelivered::store_budget(deadline, self.config.deadline_safety_margin);
        let written = undelivered::keep(&self.store, request_id, undelivered, log, budget).await;
        let verdict = verdict.map_err(InvocationError::from).and_then(|mut response| {
            if written.dead_letters {
                summary.events_kept_in_s3 += dead_lettered;
            } else {
                summary.events_dead_lettered = 0;
                summary.events_retried += dead_lettered;
                hand_back(&mut response, dead_letters_from.as_deref(), dead_lettered)?;
            }
            if written.unsent_rejects {
                summary.events_kept_in_s3 += unsent_rejected_events;
            } else {
                summary.events_rejected -= unsent_rejected_events;
                for (reason, count) in &unsent_rejected_by_reason {
                    if let Some(n) = summary.rejected_by_reason.get_mut(reason) {
                        *n -= count;
                    }
                }
                summary.rejected_by_reason.retain(|_, n| *n > 0);
                summary.events_retried += unsent_rejected_events;
                hand_back(&mut response, unsent_rejects_from.as_deref(), unsent_rejected_events)?;
            }
            if !response.batch_item_failures.is_empty() && summary.status == Status::Delivered {
                summary.status = Status::Partial;
            }
            Ok(response)
        });
        let _ = write_line(log, "INFO", "invocation finished", &summary.line());
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let emf = metrics::emf(&self.config.metrics_namespace, function_name, &summary, now_ms);
        let _ = write_line(log, "INFO", "metrics", &emf);
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
}

/// What the records of a batch came to, past delivery.
#[derive(Default)]
struct Fates {
    dead_letters: Vec<DeadLetter>,
    /// The lowest record among the dead letters'.
    dead_letters_from: Option<usize>,
    /// The lowest record to hand back to Kinesis.
    handed_back_from: Option<usize>,
}

/// Whether record `at` comes before the checkpoint (all do without one).
fn before<R: SourceRecord>(records: &[R], at: usize, checkpoint: Option<usize>) -> bool {
    checkpoint.is_none_or(|low| {
        record::compare_sequence_numbers(records[at].sequence_number(), records[low].sequence_number()).is_lt()
    })
}

/// Hands back to Kinesis the records from sequence number `from` on, for
/// `events` undelivered events no S3 object holds, unless an earlier
/// record is handed back already.
fn hand_back(response: &mut KinesisEventResponse, from: Option<&str>, events: usize) -> Result<(), NotHandedBack> {
    let from = from.filter(|s| !s.is_empty()).ok_or(NotHandedBack { events })?;
    let current = response
        .batch_item_failures
        .first()
        .and_then(|f| f.item_identifier.as_deref());
    if current.is_none_or(|c| record::compare_sequence_numbers(from, c).is_lt()) {
        response.batch_item_failures.clear();
        response.add_failure(from);
    }
    Ok(())
}

/// Every record's events counted into the summary's record and byte figures.
fn count_records(summary: &mut Summary, packed: &[Packed], valid: &[Valid<'_>], delivery: &Delivery) {
    summary.firehose_records = packed.len();
    summary.event_bytes = packed
        .iter()
        .flat_map(|p| &valid[p.items.clone()])
        .map(|v| v.line.len() + 1)
        .sum();
    summary.firehose_bytes = packed.iter().map(|p| p.data.len()).sum();
    summary.firehose_billed_bytes = packed.iter().map(|p| billed_bytes(p.data.len())).sum();
    summary.put_calls = delivery.calls;
    summary.put_rounds = delivery.rounds;
    summary.records_failed_over = delivery.failed_over;
}

/// The error of a batch none of whose records Firehose took.
fn nothing_delivered(packed: &[Packed], delivery: &Delivery) -> NothingDelivered {
    let (code, message) = delivery
        .fates
        .iter()
        .find_map(|f| match f {
            Fate::Failed(failure) => Some((failure.code.clone(), failure.message.clone())),
            Fate::Delivered { .. } | Fate::Unsent => None,
        })
        .unwrap_or_else(|| ("NotAttempted".into(), "no time was left to send any record".into()));
    NothingDelivered {
        events: packed.iter().map(|p| p.items.len()).sum(),
        code,
        message,
    }
}

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
