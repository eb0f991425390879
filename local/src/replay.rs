//! Replay: what was not delivered, delivered again with the bridge's own
//! code. It deletes nothing, and says what it delivered and what it could
//! not.
//!
//! - **Dead letters** (from the function's log lines, `aws logs
//!   filter-log-events` output, or its `dead-letters/` objects): the exact
//!   record bytes, put back together by `dead_letter::reassemble`, sent by
//!   `delivery::deliver` with the same splitting into requests, resending of
//!   failed entries and fail-over along the streams as in the function.
//!   Whatever still fails is handed back as dead letters, with the latest
//!   error.
//! - **Batches the event source mapping gave up on** (its `aws/lambda/`
//!   on-failure objects): the invocation's records, through the bridge
//!   itself (`Bridge::invoke`), valid events delivered and invalid ones
//!   rejected as usual, following `batchItemFailures` as the mapping would.
//! - **Rejected records** (rejection lines from the log, `rejects-unsent/`
//!   or `rejects/` objects): put back together byte for byte
//!   (`reject::recover`), then written to files, or handed to the bridge
//!   again once the contract is fixed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use kinesis_firehose_bridge::Bridge;
use kinesis_firehose_bridge::batch::{KinesisBatch, Payload, Record};
use kinesis_firehose_bridge::dead_letter::{self, DeadLetter};
use kinesis_firehose_bridge::delivery::{self, Fate, Policy};
use kinesis_firehose_bridge::firehose::Firehose;
use kinesis_firehose_bridge::reject::Recovered;
use kinesis_firehose_bridge::report::LogSink;
use kinesis_firehose_bridge::route::Rotation;
use kinesis_firehose_bridge::store::Store;
use tokio::time::Instant;

use crate::Result;

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
    let delivery = delivery::deliver(firehose, streams, Rotation::new(streams.len(), 0), policy, &data).await;
    replayed.calls = delivery.calls;
    for ((record, fate), unit) in records.iter().zip(&delivery.fates).zip(sources) {
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
            Fate::Unsent => replayed.failed.extend(unit.into_iter().map(|mut l| {
                l.error_code = "NotAttempted".to_owned();
                l.error_message = "no time was left to send this record".to_owned();
                l
            })),
        }
    }
    replayed
}

/// What running batches through the bridge again did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Redriven {
    pub batches: usize,
    pub records: usize,
    pub invocations: usize,
    pub events_delivered: usize,
    pub events_rejected: usize,
    pub events_dead_lettered: usize,
    /// Batches that could not be done, with why.
    pub failed: Vec<String>,
}

/// Runs each batch through the bridge as the event source mapping would:
/// from a `batchItemFailures` sequence number on again, a failed
/// invocation again after a pause, up to `attempts` times. The bridge
/// writes what it could not deliver (dead letters, rejections) to `log` and
/// its store, as the function does.
pub async fn through_bridge<F: Firehose, S: Store>(
    bridge: &Bridge<F, S>,
    batches: &[(String, KinesisBatch)],
    log: &impl LogSink,
    attempts: u32,
) -> Redriven {
    let mut redriven = Redriven::default();
    for (name, batch) in batches {
        redriven.batches += 1;
        redriven.records += batch.records.len();
        let mut from = 0;
        let mut failures = 0;
        let mut pause = Duration::from_millis(200);
        while from < batch.records.len() {
            redriven.invocations += 1;
            let request_id = format!("replay-{}-{}", redriven.batches, redriven.invocations);
            let deadline = Instant::now() + Duration::from_secs(60);
            let (summary, verdict) = bridge
                .invoke(&batch.records[from..], Some(deadline), &request_id, "replay", log)
                .await;
            redriven.events_delivered += summary.events_delivered;
            redriven.events_rejected += summary.events_rejected;
            redriven.events_dead_lettered += summary.events_dead_lettered;
            match verdict {
                Ok(response) => match response
                    .batch_item_failures
                    .first()
                    .and_then(|f| f.item_identifier.clone())
                {
                    None => break,
                    Some(sequence) => match batch.records[from..]
                        .iter()
                        .position(|r| r.kinesis.sequence_number == sequence)
                    {
                        Some(at) if at > 0 => from += at,
                        _ => {
                            failures += 1;
                            if failures >= attempts {
                                redriven
                                    .failed
                                    .push(format!("{name}: no progress from sequence number {sequence}"));
                                break;
                            }
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(Duration::from_secs(5));
                        }
                    },
                },
                Err(error) => {
                    failures += 1;
                    if failures >= attempts {
                        redriven.failed.push(format!("{name}: {error}"));
                        break;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
    redriven
}

/// Rejected payloads as a batch of their own, each as the Kinesis record
/// (or KPL user record) it was, to run through the bridge again.
pub fn rejects_as_batch(recovered: &[Recovered]) -> KinesisBatch {
    KinesisBatch {
        records: recovered
            .iter()
            .map(|r| Record {
                kinesis: Payload {
                    sequence_number: r.line.sequence_number.clone(),
                    partition_key: r.line.partition_key.clone(),
                    approximate_arrival_timestamp: r.line.approximate_arrival_timestamp,
                    data: r.payload.clone(),
                },
            })
            .collect(),
    }
}

/// Writes each rejected payload to a file of its own in `dir`, named for
/// its sequence number (and sub-sequence number); returns the paths.
pub fn rejects_to_files(recovered: &[Recovered], dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    for r in recovered {
        let mut name: String = r
            .line
            .sequence_number
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        if let Some(sub) = r.line.sub_sequence_number {
            name.push_str(&format!("-{sub}"));
        }
        let path = dir.join(format!("{name}.{}.bin", r.line.reason));
        std::fs::write(&path, &r.payload).map_err(|e| format!("{}: {e}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinesis_firehose_bridge::event::Reason;
    use kinesis_firehose_bridge::reject;

    #[test]
    fn a_rejected_payload_comes_back_whole_as_a_file_and_as_a_record() {
        let payload: Vec<u8> = (0..400_000u32).map(|i| (i % 253) as u8).collect();
        let source = reject::Source {
            sequence_number: "49590000000000000000000000000000000000000000000000000007",
            sub_sequence_number: Some(3),
            partition_key: "pk",
            approximate_arrival_timestamp: 1.5,
        };
        let lines = reject::lines(source, &Reason::TooLarge(400_001), &payload);
        assert!(lines.len() > 1);
        let recovered = reject::recover(lines).unwrap();
        let dir = std::env::temp_dir().join(format!("bridge-local-replay-{}", std::process::id()));
        let paths = rejects_to_files(&recovered, &dir).unwrap();
        assert_eq!(std::fs::read(&paths[0]).unwrap(), payload);
        assert!(paths[0].to_string_lossy().ends_with("-3.too_large.bin"));
        let batch = rejects_as_batch(&recovered);
        assert_eq!(batch.records[0].kinesis.data, payload);
        assert_eq!(batch.records[0].kinesis.partition_key, "pk");
    }
}
