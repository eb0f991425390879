//! Putting records into Firehose, resending only what failed.
//!
//! Each round sends every pending record, grouped by stream and split into
//! requests within the `PutRecordBatch` limits, with all requests in flight
//! at once. Entries Firehose refused (or whole calls that failed) are sent
//! again in the next round, to the next stream of the rotation, after a
//! jittered backoff, until they are accepted, the attempts run out, or the
//! invocation's time does: no call starts with less than
//! [`MIN_CALL_TIME`](crate::limits::MIN_CALL_TIME) before the limit, the
//! first included. What is left is reported as failed, with the last error
//! seen (the caller decides whether that is a dead letter or a retry), or as
//! unsent when not even its first attempt could start.

use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::{Instant, sleep, timeout};

use crate::backoff::{Backoff, Budget};
use crate::firehose::{CallError, Firehose};
use crate::request;
use crate::route::Rotation;

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Calls per record, the first included.
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub budget: Budget,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Delivered {
        stream: usize,
    },
    /// Sent, and refused on every attempt made.
    Failed(Failure),
    /// Never sent: no time was left for a first attempt.
    Unsent,
}

/// A record that was not delivered: the stream last tried and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stream: usize,
    pub code: String,
    pub message: String,
}

/// What delivering a set of records did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// One per input record, in input order.
    pub fates: Vec<Fate>,
    /// `PutRecordBatch` calls made, resends included.
    pub calls: u32,
    /// Rounds made; 1 when nothing had to be resent.
    pub rounds: u32,
    /// Records delivered to another stream than the one first tried: a
    /// refusal moved them along the rotation, to a stream with headroom.
    pub failed_over: usize,
}

impl Delivery {
    pub fn delivered(&self) -> usize {
        self.fates
            .iter()
            .filter(|f| matches!(f, Fate::Delivered { .. }))
            .count()
    }
}

/// Delivers `records` over `streams`.
pub async fn deliver<F: Firehose>(
    firehose: &F,
    streams: &[String],
    rotation: Rotation,
    policy: Policy,
    records: &[&[u8]],
) -> Delivery {
    let mut stream_of: Vec<usize> = (0..records.len()).map(|i| rotation.first(i)).collect();
    let mut last_error: Vec<Option<(String, String)>> = vec![None; records.len()];
    let mut delivered = vec![false; records.len()];
    let mut pending: Vec<usize> = (0..records.len()).collect();
    let (mut calls, mut rounds) = (0, 0);

    for attempt in 1..=policy.max_attempts.max(1) {
        if pending.is_empty() {
            break;
        }
        let delay = if attempt > 1 {
            policy.backoff.delay(attempt - 1)
        } else {
            Duration::ZERO
        };
        if !policy.budget.allows(Instant::now(), delay) {
            break;
        }
        if attempt > 1 {
            sleep(delay).await;
            for &i in &pending {
                stream_of[i] = rotation.next(stream_of[i]);
            }
        }
        rounds += 1;

        let requests = plan(streams, &stream_of, &pending, records);
        calls += requests.len() as u32;
        let answers = join_all(requests.iter().map(|(stream, members)| {
            let data: Vec<&[u8]> = members.iter().map(|&i| records[i]).collect();
            put_within(firehose, &streams[*stream], data, policy.budget)
        }))
        .await;

        pending.clear();
        for ((stream, members), answer) in requests.iter().zip(answers) {
            let taken = take_answer(answer, members, &mut last_error, &mut pending);
            for i in taken {
                delivered[i] = true;
                stream_of[i] = *stream;
            }
        }
        pending.sort_unstable();
    }

    let failed_over = (0..records.len())
        .filter(|&i| delivered[i] && stream_of[i] != rotation.first(i))
        .count();
    let fates = (0..records.len())
        .map(|i| match (delivered[i], last_error[i].take()) {
            (true, _) => Fate::Delivered { stream: stream_of[i] },
            (false, Some((code, message))) => Fate::Failed(Failure {
                stream: stream_of[i],
                code,
                message,
            }),
            (false, None) => Fate::Unsent,
        })
        .collect();
    Delivery {
        fates,
        calls,
        rounds,
        failed_over,
    }
}

/// Reads one call's answer for `members`: returns those delivered, puts
/// the rest back in `pending` with their error.
fn take_answer(
    answer: Result<crate::firehose::EntryResults, CallError>,
    members: &[usize],
    last_error: &mut [Option<(String, String)>],
    pending: &mut Vec<usize>,
) -> Vec<usize> {
    let mut taken = Vec::with_capacity(members.len());
    match answer {
        Ok(entries) => {
            for (k, &i) in members.iter().enumerate() {
                match entries.get(k) {
                    Some(None) => taken.push(i),
                    Some(Some(refused)) => {
                        last_error[i] = Some((refused.code.clone(), refused.message.clone()));
                        pending.push(i);
                    }
                    None => {
                        last_error[i] = Some(("MissingResponseEntry".into(), "no answer for this entry".into()));
                        pending.push(i);
                    }
                }
            }
        }
        Err(error) => {
            for &i in members {
                last_error[i] = Some((error.code().to_owned(), error.message()));
                pending.push(i);
            }
        }
    }
    taken
}

/// The requests of one round: for each, the stream and the records' indexes.
fn plan(streams: &[String], stream_of: &[usize], pending: &[usize], records: &[&[u8]]) -> Vec<(usize, Vec<usize>)> {
    let mut requests = Vec::new();
    for (stream, name) in streams.iter().enumerate() {
        let members: Vec<usize> = pending.iter().copied().filter(|&i| stream_of[i] == stream).collect();
        let lengths: Vec<usize> = members.iter().map(|&i| records[i].len()).collect();
        for range in request::split(name, &lengths) {
            requests.push((stream, members[range].to_vec()));
        }
    }
    requests
}

async fn put_within<F: Firehose>(
    firehose: &F,
    stream: &str,
    data: Vec<&[u8]>,
    budget: Budget,
) -> Result<crate::firehose::EntryResults, CallError> {
    let put = firehose.put_record_batch(stream, &data);
    match budget.left(Instant::now()) {
        None => put.await,
        Some(left) => timeout(left, put).await.unwrap_or(Err(CallError::DeadlineExceeded)),
    }
}
