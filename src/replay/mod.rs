//! Replay: what the stack set aside, run through the bridge again with the
//! stack's own settings, each object at most once.
//!
//! A request names a prefix under a recovery prefix ([`RECOVERY_PREFIXES`]).
//! The objects under it are listed a page at a time and taken one at a
//! time: claimed ([`claim`]), read strictly as their kind ([`object`]), and
//! their records sent through [`Bridge::invoke`] as the event source mapping
//! would ([`redrive`]), so that they are validated, packed, compressed and
//! delivered exactly as the function does, and what Firehose still refuses
//! becomes a new dead-letter object named for this replay. An object whose
//! records Firehose refused whole, after every attempt, is released for a
//! later replay. Before each object the time left is checked; a replay that
//! stops early answers `done: false`, and invoking it again continues.

pub mod claim;
pub mod object;
pub mod request;

use std::time::Duration;

use tokio::time::Instant;

use crate::Bridge;
use crate::backoff::{Backoff, Budget};
use crate::batch::Record;
use crate::config::{Config, OnPartialFailure};
use crate::firehose::Firehose;
use crate::log::LogSink;
use crate::redrive::{self, Redriven, Retry};
use crate::store::{Bucket, Store, StoreError};

pub use request::{Answer, RECOVERY_PREFIXES, Request, RequestError, Unreadable};

use object::Kind;

/// Records sent through the bridge at a time: the most the event source
/// mapping sends this function (`template.yaml`, `BatchSize`).
pub const RECORDS_PER_INVOCATION: usize = 500;

/// Invocations in a row that deliver nothing, before an object is released.
pub const ATTEMPTS: u32 = 5;

/// Time an object is given at the least: no object starts with less left.
pub const MIN_OBJECT_TIME: Duration = Duration::from_secs(10);

/// Why a replay could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("listing the objects failed: {0}")]
    List(StoreError),
}

/// What became of one object.
enum Outcome {
    Replayed(Redriven, usize),
    Skipped,
    Released(Redriven, usize),
    Unreadable(String),
}

/// Replays the objects under `request.prefix` of `bucket`, within
/// `deadline` less the bridge's safety margin. `replay_id` names the
/// claims and any new dead letters.
pub async fn run<F: Firehose, S: Store, B: Bucket>(
    bridge: &Bridge<F, S>,
    bucket: &B,
    request: &Request,
    deadline: Option<Instant>,
    replay_id: &str,
    log: &impl LogSink,
) -> Result<Answer, ReplayError> {
    request.check()?;
    let budget = Budget::new(deadline, bridge.config.deadline_safety_margin);
    let mut answer = Answer {
        dry_run: request.dry_run,
        ..Answer::default()
    };
    let mut page = None;
    let mut longest = MIN_OBJECT_TIME;
    loop {
        let listing = bucket
            .list(&request.prefix, page.take())
            .await
            .map_err(ReplayError::List)?;
        for key in &listing.keys {
            if !budget.allows(Instant::now(), longest) {
                return Ok(answer);
            }
            let started = Instant::now();
            let outcome = if request.dry_run {
                count(bucket, key).await
            } else {
                replay_object(bridge, bucket, key, budget, replay_id, log).await
            };
            add(&mut answer, key, outcome);
            longest = longest.max(started.elapsed());
        }
        match listing.next {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    answer.done = true;
    Ok(answer)
}

fn add(answer: &mut Answer, key: &str, outcome: Outcome) {
    match outcome {
        Outcome::Replayed(redriven, events) => {
            answer.objects_replayed += 1;
            answer.records_found += events;
            answer.events_delivered += redriven.events_delivered;
            answer.events_rejected += redriven.events_rejected;
            answer.events_still_failing += redriven.events_dead_lettered;
        }
        Outcome::Released(redriven, events) => {
            answer.objects_released += 1;
            answer.records_found += events;
            answer.events_delivered += redriven.events_delivered;
            answer.events_rejected += redriven.events_rejected;
            answer.events_still_failing += events.saturating_sub(redriven.events_delivered + redriven.events_rejected);
        }
        Outcome::Skipped => answer.objects_skipped += 1,
        Outcome::Unreadable(reason) => answer.unreadable.push(Unreadable {
            key: key.to_owned(),
            reason,
        }),
    }
}

/// A dry run's look at one object: read and counted, nothing claimed.
async fn count<B: Bucket>(bucket: &B, key: &str) -> Outcome {
    match read(bucket, key).await {
        Ok(records) => Outcome::Replayed(Redriven::default(), records.len()),
        Err(reason) => Outcome::Unreadable(reason),
    }
}

async fn read<B: Bucket>(bucket: &B, key: &str) -> Result<Vec<Record>, String> {
    let kind = Kind::of(key).ok_or_else(|| "not under a recovery prefix".to_owned())?;
    let body = bucket.get(key).await.map_err(|e| e.to_string())?;
    object::records(kind, &body)
}

async fn replay_object<F: Firehose, S: Store, B: Bucket>(
    bridge: &Bridge<F, S>,
    bucket: &B,
    key: &str,
    budget: Budget,
    replay_id: &str,
    log: &impl LogSink,
) -> Outcome {
    match claim::claim(bucket, key, replay_id).await {
        Ok(true) => {}
        Ok(false) => return Outcome::Skipped,
        Err(e) => return Outcome::Unreadable(format!("could not claim it: {e}")),
    }
    let records = match read(bucket, key).await {
        Ok(records) => records,
        Err(reason) => {
            // Unclaimed, so that it can be replayed once it can be read.
            let _ = claim::release(bucket, key).await;
            return Outcome::Unreadable(reason);
        }
    };
    let mut total = Redriven::default();
    for (n, chunk) in records.chunks(RECORDS_PER_INVOCATION).enumerate() {
        let redriven = send(bridge, chunk, budget, &format!("{replay_id}-{n}"), log).await;
        total.events_delivered += redriven.events_delivered;
        total.events_rejected += redriven.events_rejected;
        total.events_dead_lettered += redriven.events_dead_lettered;
        if redriven.left_from.is_some() {
            let _ = claim::release(bucket, key).await;
            return Outcome::Released(total, records.len());
        }
    }
    // Should the mark fail, the claim still keeps other replays off.
    let _ = claim::done(bucket, key, replay_id).await;
    Outcome::Replayed(total, records.len())
}

/// The bridge settings a replay runs with: the stack's, except that what
/// Firehose still refuses is dead-lettered (a new object named for the
/// replay) rather than handed back to a Kinesis that is not there.
pub fn settings(mut config: Config) -> Config {
    config.on_partial_failure = OnPartialFailure::Log;
    config
}

/// One chunk through the bridge, following its hand-backs.
async fn send<F: Firehose, S: Store>(
    bridge: &Bridge<F, S>,
    records: &[Record],
    budget: Budget,
    request_id: &str,
    log: &impl LogSink,
) -> Redriven {
    let config = &bridge.config;
    let retry = Retry {
        attempts: ATTEMPTS,
        backoff: Backoff {
            base: config.backoff_base,
            max: config.backoff_max,
        },
    };
    let deadline = budget.until.map(|until| until + config.deadline_safety_margin);
    let mut invocation = 0;
    redrive::redrive(records, retry, budget, |rest| {
        invocation += 1;
        let id = format!("{request_id}-{invocation}");
        async move { bridge.invoke(rest, deadline, &id, "replay", log).await }
    })
    .await
}
