//! The function: one Kinesis batch in, every event accounted for.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::LambdaEvent;
use thiserror::Error;
use tokio::time::Instant;

use crate::backoff::{Backoff, Budget};
use crate::batch::{KinesisBatch, SourceRecord};
use crate::config::{Config, OnPartialFailure};
use crate::dead_letter::{self, DeadLetter};
use crate::delivery::{self, Fate, Policy};
use crate::event::{Contract, Reason};
use crate::firehose::Firehose;
use crate::limits::billed_bytes;
use crate::metrics;
use crate::pack::{self, Packing};
use crate::record::{self, Incoming, Origin, Unpacked};
use crate::reject::{self, RejectLog};
use crate::report::{self, Outcome, Summary};
use crate::route::Rotation;

/// Everything an invocation needs, built once at cold start.
pub struct Bridge<F> {
    pub config: Config,
    pub contract: Contract,
    pub firehose: F,
}

/// The invocation failed as a whole: nothing was delivered, so Kinesis
/// retries the batch and no event is duplicated by it.
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

impl From<NothingDelivered> for lambda_runtime::Diagnostic {
    fn from(error: NothingDelivered) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "NothingDelivered".to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// What [`Bridge::process`] found and did. The caller writes it out.
#[derive(Debug)]
pub struct Processed {
    pub summary: Summary,
    pub dead_letters: Vec<DeadLetter>,
    pub rejections: Vec<RejectLog>,
    pub verdict: Result<KinesisEventResponse, NothingDelivered>,
}

/// A valid event and the line it is written as.
struct Valid<'a> {
    origin: Origin,
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

impl<F: Firehose> Bridge<F> {
    /// Handles one invocation and writes its dead letters, rejections,
    /// summary and metrics to the log.
    pub async fn handle(&self, event: LambdaEvent<KinesisBatch>) -> Result<KinesisEventResponse, NothingDelivered> {
        let deadline = deadline_from_epoch_ms(event.context.deadline);
        if deadline.is_none() && event.context.deadline != 0 {
            tracing::warn!(
                deadline_ms = event.context.deadline,
                "the runtime's deadline is not a time within the next 15 minutes; resends are bounded by attempts only"
            );
        }
        let request_id = event.context.request_id.as_str();
        let processed = self.process(&event.payload.records, deadline, request_id).await;
        for letter in &processed.dead_letters {
            report::write_line(
                "ERROR",
                "record could not be delivered; replay it from this line",
                letter,
            );
        }
        for rejection in &processed.rejections {
            let level = if rejection.data.is_some() { "ERROR" } else { "WARN" };
            report::write_line(level, "record rejected", rejection);
        }
        processed.summary.log();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let function_name = &event.context.env_config.function_name;
        let emf = metrics::emf(
            &self.config.metrics_namespace,
            function_name,
            &processed.summary,
            now_ms,
        );
        report::write_line("INFO", "metrics", &emf);
        processed.verdict
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

        let (valid, rejected, events_received) = self.sort(records);

        let packing = if config.pack_events {
            Packing {
                max_bytes: config.max_record_bytes,
                max_events: config.max_events_per_record,
            }
        } else {
            Packing::UNPACKED
        };
        let packed = pack::pack(&valid, packing);
        let data: Vec<&[u8]> = packed.iter().map(|p| &p.data[..]).collect();
        let streams = &config.delivery_streams;
        let outcome = delivery::deliver(&self.firehose, streams, Rotation::random(streams.len()), policy, &data).await;

        let mut summary = Summary {
            outcome: Outcome::Delivered,
            records_received: records.len(),
            events_received,
            events_rejected: 0,
            events_delivered: 0,
            events_dead_lettered: 0,
            events_retried: 0,
            firehose_records: packed.len(),
            firehose_bytes: data.iter().map(|d| d.len()).sum(),
            firehose_billed_bytes: data.iter().map(|d| billed_bytes(d.len())).sum(),
            put_calls: outcome.calls,
            put_rounds: outcome.rounds,
            duration_ms: 0,
        };

        if !valid.is_empty() && outcome.delivered() == 0 {
            let (code, message) = outcome
                .fates
                .iter()
                .find_map(|f| match f {
                    Fate::Failed(failure) => Some((failure.code.clone(), failure.message.clone())),
                    Fate::Delivered { .. } => None,
                })
                .unwrap_or_default();
            summary.outcome = Outcome::Failed;
            summary.events_retried = events_received;
            summary.duration_ms = started.elapsed().as_millis() as u64;
            return Processed {
                summary,
                dead_letters: Vec::new(),
                rejections: Vec::new(),
                verdict: Err(NothingDelivered {
                    events: valid.len(),
                    code,
                    message,
                }),
            };
        }

        let mut response = KinesisEventResponse::default();
        let mut dead_letters = Vec::new();
        let mut lowest_undelivered: Option<&str> = None;
        for (record, fate) in packed.iter().zip(&outcome.fates) {
            let events = &valid[record.items.clone()];
            let failure = match fate {
                Fate::Delivered { .. } => {
                    summary.events_delivered += events.len();
                    continue;
                }
                Fate::Failed(failure) => failure,
            };
            summary.outcome = Outcome::Partial;
            match config.on_partial_failure {
                OnPartialFailure::Log => {
                    summary.events_dead_lettered += events.len();
                    let cause = dead_letter::Cause {
                        delivery_stream: &streams[failure.stream],
                        error_code: &failure.code,
                        error_message: &failure.message,
                    };
                    let sequence_of = |i: usize| sequence_number(records, events[i].origin).to_owned();
                    let group = format!("{request_id}/{}", record.items.start);
                    dead_letters.extend(DeadLetter::for_record(cause, &record.data, sequence_of, &group));
                }
                OnPartialFailure::Retry => {
                    summary.events_retried += events.len();
                    for event in events {
                        let seq = sequence_number(records, event.origin);
                        if lowest_undelivered.is_none_or(|low| record::compare_sequence_numbers(seq, low).is_lt()) {
                            lowest_undelivered = Some(seq);
                        }
                    }
                }
            }
        }
        if let Some(seq) = lowest_undelivered {
            response.add_failure(seq);
        }

        summary.events_rejected = rejected.len();
        let (rejections, reject_calls) = self.send_rejects(records, &rejected, packing, policy).await;
        summary.put_calls += reject_calls;
        summary.duration_ms = started.elapsed().as_millis() as u64;
        Processed {
            summary,
            dead_letters,
            rejections,
            verdict: Ok(response),
        }
    }

    /// Opens every record and checks every event against the contract.
    fn sort<'a, R: SourceRecord>(&self, records: &'a [R]) -> (Vec<Valid<'a>>, Vec<Rejected<'a>>, usize) {
        let mut valid = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        let mut received = 0;
        for (index, kinesis_record) in records.iter().enumerate() {
            match record::unpack(index, kinesis_record) {
                Unpacked::Rejected(incoming, reason) => {
                    received += 1;
                    rejected.push(Rejected { incoming, reason });
                }
                Unpacked::Event(incoming) => {
                    received += 1;
                    self.check_into(incoming, &mut valid, &mut rejected);
                }
                Unpacked::Events(events) => {
                    received += events.len();
                    for incoming in events {
                        self.check_into(incoming, &mut valid, &mut rejected);
                    }
                }
            }
        }
        (valid, rejected, received)
    }

    fn check_into<'a>(&self, incoming: Incoming<'a>, valid: &mut Vec<Valid<'a>>, rejected: &mut Vec<Rejected<'a>>) {
        match self.check(incoming) {
            Ok(event) => valid.push(event),
            Err(rejection) => rejected.push(rejection),
        }
    }

    fn check<'a>(&self, incoming: Incoming<'a>) -> Result<Valid<'a>, Rejected<'a>> {
        // `None`: the event is already its own line, so keep its bytes as
        // they came (borrowed from the batch, or the aggregate's own copy).
        let compacted = self.contract.check(&incoming.data).map(|line| match line {
            Cow::Borrowed(_) => None,
            Cow::Owned(compacted) => Some(compacted),
        });
        let origin = incoming.origin;
        match compacted {
            Err(reason) => Err(Rejected { incoming, reason }),
            Ok(None) => Ok(Valid {
                origin,
                line: incoming.data,
            }),
            Ok(Some(line)) => Ok(Valid {
                origin,
                line: Cow::Owned(line),
            }),
        }
    }

    /// Sends rejected records to the rejects stream, if there is one, and
    /// returns their log lines and the calls it took.
    async fn send_rejects<R: SourceRecord>(
        &self,
        records: &[R],
        rejected: &[Rejected<'_>],
        packing: Packing,
        policy: Policy,
    ) -> (Vec<RejectLog>, u32) {
        fn source<'r, R: SourceRecord>(records: &'r [R], r: &'r Rejected<'_>) -> reject::Source<'r> {
            let record = &records[r.incoming.origin.record];
            reject::Source {
                sequence_number: record.sequence_number(),
                sub_sequence_number: r.incoming.origin.sub_sequence_number,
                partition_key: &r.incoming.partition_key,
                approximate_arrival_timestamp: record.approximate_arrival_timestamp(),
            }
        }
        let log_all = |only_copy: &dyn Fn(usize) -> bool| {
            rejected
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    reject::log(
                        source(records, r),
                        &r.reason,
                        only_copy(i).then_some(&r.incoming.data[..]),
                    )
                })
                .collect::<Vec<_>>()
        };
        let Some(stream) = &self.config.rejects_delivery_stream else {
            return (log_all(&|_| true), 0);
        };
        if rejected.is_empty() {
            return (Vec::new(), 0);
        }
        let lines: Vec<(Vec<u8>, bool)> = rejected
            .iter()
            .map(|r| reject::line(source(records, r), &r.reason, &r.incoming.data))
            .collect();
        let line_bytes: Vec<&[u8]> = lines.iter().map(|(l, _)| &l[..]).collect();
        let packed = pack::pack(&line_bytes, packing);
        let data: Vec<&[u8]> = packed.iter().map(|p| &p.data[..]).collect();
        let streams = std::slice::from_ref(stream);
        let outcome = delivery::deliver(&self.firehose, streams, Rotation::new(1, 0), policy, &data).await;
        let mut only_copy: Vec<bool> = lines.iter().map(|(_, kept)| !kept).collect();
        for (record, fate) in packed.iter().zip(&outcome.fates) {
            if matches!(fate, Fate::Failed(_)) {
                only_copy[record.items.clone()].fill(true);
            }
        }
        (log_all(&|i| only_copy[i]), outcome.calls)
    }
}

fn sequence_number<R: SourceRecord>(records: &[R], origin: Origin) -> &str {
    records[origin.record].sequence_number()
}

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
    fn zero_past_or_impossible_deadlines_are_unknown() {
        assert_eq!(deadline_from_epoch_ms(0), None);
        // What `cargo lambda watch` sends: ten minutes after 1970.
        assert_eq!(deadline_from_epoch_ms(600_000), None);
        assert_eq!(deadline_from_epoch_ms(now_ms() + 3_600_000), None);
    }
}
