//! Replay: dead letters delivered again, with the bridge's own code.
//!
//! The dead letters come from the bridge's log lines or `aws logs
//! filter-log-events` output ([`crate::logs`]); the bytes are put back
//! together by `dead_letter::reassemble` and sent by `delivery::deliver`,
//! with the same splitting into requests, resending of failed entries and
//! fail-over along the streams as in the function. Whatever still fails is
//! handed back as dead letters, with the latest error, so that nothing is
//! dropped by a replay either.

use std::collections::BTreeMap;

use kinesis_firehose_bridge::dead_letter::{self, DeadLetter};
use kinesis_firehose_bridge::delivery::{self, Fate, Policy};
use kinesis_firehose_bridge::firehose::Firehose;
use kinesis_firehose_bridge::route::Rotation;

#[derive(Debug, Default)]
pub struct Replayed {
    /// Records rebuilt from the dead letters, and how many were delivered.
    pub records: usize,
    pub records_delivered: usize,
    /// Event lines in the delivered records.
    pub events_delivered: usize,
    pub calls: u32,
    /// Dead letters that are still not delivered.
    pub failed: Vec<DeadLetter>,
}

/// Delivers the records `letters` carry over `streams`.
pub async fn replay<F: Firehose>(firehose: &F, streams: &[String], letters: &[DeadLetter], policy: Policy) -> Replayed {
    let mut replayed = Replayed::default();
    // A whole letter is a record; the parts of one line make one record.
    let mut units: Vec<Vec<DeadLetter>> = Vec::new();
    let mut groups: BTreeMap<String, Vec<DeadLetter>> = BTreeMap::new();
    for letter in letters {
        match &letter.part {
            None => units.push(vec![letter.clone()]),
            Some(part) => groups.entry(part.group.clone()).or_default().push(letter.clone()),
        }
    }
    units.extend(groups.into_values());

    let mut records = Vec::new();
    let mut sources = Vec::new();
    for unit in units {
        match dead_letter::reassemble(&unit) {
            Ok(mut rebuilt) if rebuilt.len() == 1 => {
                records.push(rebuilt.remove(0));
                sources.push(unit);
            }
            Ok(_) => replayed.failed.extend(unit),
            Err(e) => replayed.failed.extend(unit.into_iter().map(|mut l| {
                l.error_code = "NotReplayable".to_owned();
                l.error_message = e.to_string();
                l
            })),
        }
    }
    replayed.records = records.len();
    if records.is_empty() || streams.is_empty() {
        replayed.failed.extend(sources.into_iter().flatten());
        return replayed;
    }
    let data: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let outcome = delivery::deliver(firehose, streams, Rotation::new(streams.len(), 0), policy, &data).await;
    replayed.calls = outcome.calls;
    for ((record, fate), unit) in records.iter().zip(&outcome.fates).zip(sources) {
        match fate {
            Fate::Delivered { .. } => {
                replayed.records_delivered += 1;
                replayed.events_delivered += record.iter().filter(|&&b| b == b'\n').count();
            }
            Fate::Failed(failure) => replayed.failed.extend(unit.into_iter().map(|mut l| {
                l.delivery_stream = streams[failure.stream].clone();
                l.error_code = failure.code.clone();
                l.error_message = failure.message.clone();
                l
            })),
        }
    }
    replayed
}
