//! Sending records through the function again, as the event source mapping
//! does: from the lowest sequence number `batchItemFailures` hands back, and
//! a failed invocation again after a backoff. Replay runs what it reads
//! through [`redrive`]; the local event source mapping, which also bisects
//! and gives up as Lambda's does, takes [`resume`] and the [`Backoff`].

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::streams::KinesisEventResponse;
use tokio::time::{Instant, sleep};

use crate::backoff::{Backoff, Budget};
use crate::batch::SourceRecord;
use crate::record::compare_sequence_numbers;
use crate::report::Summary;

/// Where to go on after an invocation answered `response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Every record is done.
    Done,
    /// From this record on, again.
    From(usize),
    /// The answer names no record of the batch (or an empty one): Lambda
    /// treats that as a failure of the whole batch.
    Whole,
}

/// Lambda's rule: "If the batchItemFailures array contains multiple items,
/// Lambda uses the record with the lowest sequence number as the
/// checkpoint" (Lambda developer guide, "Handling partial batch failures").
/// `sequence_numbers` are the batch's, in order.
pub fn resume<'a>(sequence_numbers: impl IntoIterator<Item = &'a str>, response: &KinesisEventResponse) -> Resume {
    let mut lowest: Option<&str> = None;
    for failure in &response.batch_item_failures {
        match failure.item_identifier.as_deref() {
            None | Some("") => return Resume::Whole,
            Some(id) => {
                if lowest.is_none_or(|low| compare_sequence_numbers(id, low).is_lt()) {
                    lowest = Some(id);
                }
            }
        }
    }
    match lowest {
        None => Resume::Done,
        Some(id) => sequence_numbers
            .into_iter()
            .position(|s| s == id)
            .map_or(Resume::Whole, Resume::From),
    }
}

/// How often, and how long apart, to invoke again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Invocations that make no progress, before giving up.
    pub attempts: u32,
    pub backoff: Backoff,
}

/// What redriving a set of records came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redriven {
    pub invocations: u32,
    pub events_delivered: usize,
    pub events_rejected: usize,
    pub events_dead_lettered: usize,
    /// The first record not done, when the attempts or the time ran out.
    pub left_from: Option<usize>,
    pub last_error: Option<String>,
}

/// Invokes with `records`, then with what each answer hands back, until
/// all are done, `retry.attempts` invocations in a row make no progress, or
/// `budget` leaves no time. `invoke` gets the records still to do.
pub async fn redrive<'r, R, F, Fut, E>(records: &'r [R], retry: Retry, budget: Budget, mut invoke: F) -> Redriven
where
    R: SourceRecord,
    F: FnMut(&'r [R]) -> Fut,
    Fut: Future<Output = (Summary, Result<KinesisEventResponse, E>)>,
    E: std::fmt::Display,
{
    let mut redriven = Redriven::default();
    let (mut from, mut stalled) = (0, 0);
    while from < records.len() {
        let delay = if stalled > 0 {
            retry.backoff.cap(stalled)
        } else {
            Duration::ZERO
        };
        if stalled >= retry.attempts.max(1) || !budget.allows(Instant::now(), delay) {
            redriven.left_from = Some(from);
            break;
        }
        sleep(delay).await;
        redriven.invocations += 1;
        let (summary, verdict) = invoke(&records[from..]).await;
        redriven.events_delivered += summary.events_delivered;
        redriven.events_rejected += summary.events_rejected;
        redriven.events_dead_lettered += summary.events_dead_lettered;
        let next = match verdict {
            Ok(response) => resume(records[from..].iter().map(SourceRecord::sequence_number), &response),
            Err(error) => {
                redriven.last_error = Some(error.to_string());
                Resume::Whole
            }
        };
        match next {
            Resume::Done => from = records.len(),
            Resume::From(at) if at > 0 => {
                (from, stalled) = (from + at, 0);
            }
            Resume::From(_) | Resume::Whole => stalled += 1,
        }
    }
    redriven
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Payload, Record};

    fn records(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                kinesis: Payload {
                    sequence_number: format!("{}", 100 + i),
                    partition_key: String::new(),
                    approximate_arrival_timestamp: 0.0,
                    data: Vec::new(),
                },
            })
            .collect()
    }

    fn failing(ids: &[&str]) -> KinesisEventResponse {
        let mut response = KinesisEventResponse::default();
        for id in ids {
            response.add_failure(*id);
        }
        response
    }

    #[test]
    fn resumes_from_the_lowest_sequence_number_whatever_the_order() {
        let batch = ["100", "101", "102", "103", "104"];
        assert_eq!(resume(batch, &failing(&["103", "101", "104"])), Resume::From(1));
        assert_eq!(resume(batch, &KinesisEventResponse::default()), Resume::Done);
        assert_eq!(resume(batch, &failing(&["999"])), Resume::Whole);
        assert_eq!(resume(batch, &failing(&["102", ""])), Resume::Whole);
    }

    #[tokio::test(start_paused = true)]
    async fn follows_the_hand_backs_and_gives_up_after_the_attempts() {
        let batch = records(4);
        let retry = Retry {
            attempts: 3,
            backoff: Backoff {
                base: Duration::from_millis(10),
                max: Duration::from_millis(40),
            },
        };
        // Hands back from the third record once, then fails every time.
        let mut calls = 0;
        let redriven = redrive(&batch, retry, Budget::unbounded(), |rest: &[Record]| {
            calls += 1;
            let answer: Result<KinesisEventResponse, String> = match calls {
                1 => Ok(failing(&[rest[2].sequence_number()])),
                _ => Err("boom".to_owned()),
            };
            async move { (Summary::new(rest.len()), answer) }
        })
        .await;
        assert_eq!(redriven.invocations, 4);
        assert_eq!(redriven.left_from, Some(2));
        assert_eq!(redriven.last_error.as_deref(), Some("boom"));
    }
}
