//! The event source mapping: what Lambda runs in production between a
//! Kinesis stream and the function, with the settings `template.yaml`
//! deploys ([`crate::template`]).
//!
//! Every shard is polled on its own: GetShardIterator at TRIM_HORIZON, then
//! GetRecords, again at once while the shard has a backlog, otherwise after
//! `poll_interval` (Lambda polls once a second), and never more than five
//! times a second (the GetRecords limit). A batch is invoked when it holds
//! BatchSize records, when the next record would take its payload past the
//! 6 MB invocation limit, or when MaximumBatchingWindowInSeconds has passed
//! since its first record was read. One invocation is in flight per shard
//! (ParallelizationFactor 1).
//!
//! What follows an invocation (Lambda developer guide, "Using Lambda with
//! Kinesis" and "Configuring partial batch response"):
//! - success: the batch is done and the shard moves on;
//! - `batchItemFailures`: the records from the lowest reported sequence
//!   number on are sent again. With BisectBatchOnFunctionError that is a
//!   bisection at the returned sequence number and "splitting batches
//!   doesn't consume the retry quota"; without it, or when nothing before
//!   that record was done, it is a retry;
//! - a function error (an error, or no answer within the function's
//!   timeout): with BisectBatchOnFunctionError a batch of more than one
//!   record is split in two and each half processed in turn, consuming no
//!   retry; a single record, or any batch without bisect, is retried after
//!   a pause that doubles up to 5 s;
//! - more retries than MaximumRetryAttempts, or a record older than
//!   MaximumRecordAgeInSeconds: the batch is given up. Its invocation record,
//!   payload included, goes to the S3 on-failure destination
//!   ([`crate::on_failure`]), and the shard moves on.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::{Record, ShardIteratorType};
use kinesis_firehose_bridge::backoff::Backoff;
use kinesis_firehose_bridge::batch::build::EventRecord;
use kinesis_firehose_bridge::limits::{GET_RECORDS_PER_SHARD_PER_SECOND, MAX_INVOCATION_PAYLOAD};
use kinesis_firehose_bridge::redrive::{self, Resume};
use tokio::time::Instant;

use crate::Result;
use crate::invoke::{FunctionError, Invoker};
use crate::on_failure::{self, Condition, GivenUp};
use crate::setup::Shard;
use crate::template::Deployed;

/// The longest pause before a failed batch is invoked again.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// The shortest gap between two GetRecords of a shard: Kinesis's limit.
const MIN_POLL_GAP: Duration = Duration::from_millis(1000 / GET_RECORDS_PER_SHARD_PER_SECOND as u64);

#[derive(Debug, Clone)]
pub struct EsmConfig {
    /// Most records per invocation (BatchSize).
    pub batch_size: usize,
    /// MaximumBatchingWindowInSeconds.
    pub batching_window: Duration,
    /// Most bytes of invocation payload (Lambda's 6 MB).
    pub max_payload: usize,
    /// MaximumRetryAttempts.
    pub max_retry_attempts: u32,
    /// MaximumRecordAgeInSeconds.
    pub max_record_age: Duration,
    /// BisectBatchOnFunctionError.
    pub bisect_on_error: bool,
    /// FunctionResponseTypes has ReportBatchItemFailures.
    pub report_batch_item_failures: bool,
    pub poll_interval: Duration,
    /// First pause before a failed batch is retried; doubles up to 5 s.
    pub retry_delay: Duration,
}

impl EsmConfig {
    /// The mapping the template deploys.
    pub fn deployed(deployed: &Deployed) -> Self {
        EsmConfig {
            batch_size: deployed.batch_size,
            batching_window: deployed.maximum_batching_window,
            max_payload: MAX_INVOCATION_PAYLOAD,
            max_retry_attempts: deployed.maximum_retry_attempts,
            max_record_age: deployed.maximum_record_age,
            bisect_on_error: deployed.bisect_batch_on_function_error,
            report_batch_item_failures: deployed.report_batch_item_failures,
            poll_interval: Duration::from_secs(1),
            retry_delay: Duration::from_millis(200),
        }
    }
}

/// What the mapping did, readable while it runs.
#[derive(Debug, Default)]
pub struct EsmStats {
    pub invocations: AtomicU64,
    pub function_errors: AtomicU64,
    /// Batches resumed from a `batchItemFailures` sequence number.
    pub partial_retries: AtomicU64,
    /// Batches split in two after a function error.
    pub bisects: AtomicU64,
    /// Invocations that consumed a retry.
    pub retries: AtomicU64,
    /// Batches given up on, and the records in them.
    pub batches_given_up: AtomicU64,
    pub records_given_up: AtomicU64,
    /// Records whose batch is done, given up on included (each counted once).
    pub records_done: AtomicU64,
    /// Records sent again after a function error or partial failure.
    pub records_resent: AtomicU64,
    pub get_records_errors: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl EsmStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn note_error(&self, error: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error);
        }
    }
}

/// Where given-up batches go: an S3 bucket, as the template deploys it.
#[derive(Debug, Clone)]
pub struct OnFailureDestination {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    /// The mapping's id, the first part of every object's key.
    pub mapping_uuid: String,
    pub function_arn: String,
}

/// The mapping of one stream to one function.
pub struct EventSourceMapping {
    pub kinesis: aws_sdk_kinesis::Client,
    pub stream: String,
    pub stream_arn: String,
    pub config: EsmConfig,
    pub invoker: Arc<Invoker>,
    pub on_failure: Option<OnFailureDestination>,
    pub stats: Arc<EsmStats>,
}

/// A record read, with its part of the invocation payload.
struct Read {
    record: Record,
    json: Vec<u8>,
}

/// What one invocation of a piece came to.
enum Answered {
    /// Every record is done.
    Done,
    /// The records before the one reported are done; the rest go again at
    /// once, consuming no retry (a bisection at that record).
    Resumed,
    /// The rest go again as a retry: after a function error (its message),
    /// or after `batchItemFailures` (`None`).
    Retry(Option<String>),
}

/// Records of one batch, and the retries they have consumed.
struct Piece {
    records: Vec<Read>,
    retries: u32,
}

impl EventSourceMapping {
    /// Polls every shard until `stop` is set; a batch in progress is
    /// finished first, unless the function keeps failing.
    pub async fn run(self: Arc<Self>, shards: Vec<Shard>, stop: Arc<AtomicBool>) -> Result<()> {
        let mut tasks = Vec::new();
        for shard in shards {
            let mapping = self.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move { mapping.poll(shard, stop).await }));
        }
        for task in tasks {
            task.await.map_err(|e| format!("a shard poller panicked: {e}"))??;
        }
        Ok(())
    }

    async fn poll(&self, shard: Shard, stop: Arc<AtomicBool>) -> Result<()> {
        let config = &self.config;
        let mut iterator = Some(self.iterator(&shard, None).await?);
        let mut pending: VecDeque<Read> = VecDeque::new();
        let mut pending_bytes = 0;
        let mut window_ends: Option<Instant> = None;
        let mut last_read: Option<String> = None;
        let mut invocation = 0u64;
        let mut last_poll: Option<Instant> = None;
        let mut backlog = false;
        while !stop.load(Ordering::Relaxed) {
            let full = pending.len() >= config.batch_size || pending_bytes >= config.max_payload;
            let window_over = window_ends.is_some_and(|end| Instant::now() >= end) || iterator.is_none();
            if !pending.is_empty() && (full || window_over) {
                let batch = take_batch(&mut pending, &mut pending_bytes, config);
                window_ends = (!pending.is_empty()).then(|| Instant::now() + config.batching_window);
                self.deliver(&shard, batch, &mut invocation, &stop).await;
                continue;
            }
            let Some(current) = iterator.clone() else {
                break; // the shard was closed and is read to its end
            };
            if let Some(at) = last_poll {
                let mut gap = if backlog { MIN_POLL_GAP } else { config.poll_interval };
                if let Some(end) = window_ends {
                    gap = gap.min(end.saturating_duration_since(at)).max(MIN_POLL_GAP);
                }
                tokio::time::sleep_until(at + gap).await;
            }
            last_poll = Some(Instant::now());
            let read = self
                .kinesis
                .get_records()
                .shard_iterator(&current)
                .limit(config.batch_size as i32)
                .send()
                .await;
            let output = match read {
                Ok(output) => output,
                Err(e) => {
                    self.stats.get_records_errors.fetch_add(1, Ordering::Relaxed);
                    self.stats.note_error(format!("GetRecords {}: {e:?}", shard.id));
                    if e.code() == Some("ExpiredIteratorException") {
                        iterator = Some(self.iterator(&shard, last_read.as_deref()).await?);
                    }
                    continue;
                }
            };
            let records = output.records();
            backlog = records.len() >= config.batch_size;
            if window_ends.is_none() && !records.is_empty() {
                window_ends = Some(Instant::now() + config.batching_window);
            }
            for record in records {
                let json = record_json(record, &shard.id, &self.stream_arn);
                pending_bytes += json.len() + 1;
                pending.push_back(Read {
                    record: record.clone(),
                    json,
                });
            }
            if let Some(last) = records.last() {
                last_read = Some(last.sequence_number().to_owned());
            }
            iterator = output.next_shard_iterator().map(str::to_owned);
        }
        Ok(())
    }

    /// Runs one batch to completion under Lambda's failure handling.
    async fn deliver(&self, shard: &Shard, batch: Vec<Read>, invocation: &mut u64, stop: &AtomicBool) {
        let config = &self.config;
        let stats = &self.stats;
        let mut pieces = VecDeque::from([Piece {
            records: batch,
            retries: 0,
        }]);
        let mut invocations_of_batch = 0;
        while let Some(mut piece) = pieces.pop_front() {
            let backoff = Backoff {
                base: config.retry_delay,
                max: MAX_RETRY_PAUSE,
            };
            let mut pauses = 0;
            loop {
                if piece.records.is_empty() {
                    break;
                }
                if oldest_age(&piece.records) > config.max_record_age {
                    self.give_up(
                        shard,
                        piece,
                        Condition::RecordAgeExceeded,
                        invocations_of_batch,
                        invocation,
                    )
                    .await;
                    break;
                }
                invocations_of_batch += 1;
                let failure = match self.invoke_once(shard, &mut piece, invocation).await {
                    Answered::Done => break,
                    Answered::Resumed => continue, // a bisection: no retry consumed
                    Answered::Retry(failure) => failure,
                };
                if failure.is_some() && config.bisect_on_error && piece.records.len() > 1 {
                    stats.bisects.fetch_add(1, Ordering::Relaxed);
                    let second = piece.records.split_off(piece.records.len() / 2);
                    EsmStats::add(&stats.records_resent, piece.records.len() + second.len());
                    pieces.push_front(Piece {
                        records: second,
                        retries: piece.retries,
                    });
                    pieces.push_front(piece);
                    break;
                }
                piece.retries += 1;
                stats.retries.fetch_add(1, Ordering::Relaxed);
                if piece.retries > config.max_retry_attempts {
                    self.give_up(
                        shard,
                        piece,
                        Condition::RetryAttemptsExhausted,
                        invocations_of_batch,
                        invocation,
                    )
                    .await;
                    break;
                }
                if failure.is_some() {
                    EsmStats::add(&stats.records_resent, piece.records.len());
                }
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                pauses += 1;
                tokio::time::sleep(backoff.cap(pauses)).await;
            }
        }
    }

    /// Invokes the function once with `piece`'s records and applies the
    /// answer: what is done leaves the piece.
    async fn invoke_once(&self, shard: &Shard, piece: &mut Piece, invocation: &mut u64) -> Answered {
        let stats = &self.stats;
        *invocation += 1;
        let request_id = format!("{}-{invocation}", shard.id);
        stats.invocations.fetch_add(1, Ordering::Relaxed);
        let event = event_json(&piece.records);
        let failed = |message: String| {
            stats.function_errors.fetch_add(1, Ordering::Relaxed);
            stats.note_error(format!("{request_id}: {message}"));
            Answered::Retry(Some(message))
        };
        let response = match self.invoker.invoke(&event, &request_id).await {
            // With ReportBatchItemFailures off, Lambda ignores the list.
            Ok(_) if !self.config.report_batch_item_failures => {
                EsmStats::add(&stats.records_done, piece.records.len());
                return Answered::Done;
            }
            Ok(response) => response,
            Err(FunctionError(message)) => return failed(message),
        };
        match redrive::resume(piece.records.iter().map(|r| r.record.sequence_number()), &response) {
            Resume::Done => {
                EsmStats::add(&stats.records_done, piece.records.len());
                Answered::Done
            }
            Resume::From(at) => {
                stats.partial_retries.fetch_add(1, Ordering::Relaxed);
                EsmStats::add(&stats.records_done, at);
                piece.records.drain(..at);
                EsmStats::add(&stats.records_resent, piece.records.len());
                match self.config.bisect_on_error && at > 0 {
                    true => Answered::Resumed,
                    false => Answered::Retry(None),
                }
            }
            // "An itemIdentifier with a bad key name" is a complete failure.
            Resume::Whole => {
                failed("batchItemFailures names no record of the batch (or an empty itemIdentifier)".to_owned())
            }
        }
    }

    /// Writes the invocation record to the on-failure destination; the
    /// shard moves on.
    async fn give_up(&self, shard: &Shard, piece: Piece, condition: Condition, invocations: u64, invocation: &u64) {
        let stats = &self.stats;
        let records = &piece.records;
        stats.batches_given_up.fetch_add(1, Ordering::Relaxed);
        EsmStats::add(&stats.records_given_up, records.len());
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return;
        };
        let arrival = |r: &Read| {
            r.record
                .approximate_arrival_timestamp()
                .map_or(0.0, |t| t.as_secs_f64())
        };
        let event = event_json(records);
        let request_id = format!("{}-{invocation}", shard.id);
        let written = match &self.on_failure {
            None => Err("no on-failure destination is configured".to_owned()),
            Some(destination) => {
                let record = on_failure::record(&GivenUp {
                    shard_id: &shard.id,
                    stream_arn: &self.stream_arn,
                    function_arn: &destination.function_arn,
                    condition,
                    invocations,
                    last_request_id: &request_id,
                    first_sequence: first.record.sequence_number(),
                    last_sequence: last.record.sequence_number(),
                    first_arrival: arrival(first),
                    last_arrival: arrival(last),
                    records: records.len(),
                    event: &event,
                });
                let key = on_failure::key(&record, &destination.mapping_uuid);
                match serde_json::to_vec(&record) {
                    Err(e) => Err(e.to_string()),
                    Ok(body) => destination
                        .s3
                        .put_object()
                        .bucket(&destination.bucket)
                        .key(&key)
                        .body(body.into())
                        .send()
                        .await
                        .map(drop)
                        .map_err(|e| format!("s3://{}/{key}: {e:?}", destination.bucket)),
                }
            }
        };
        if let Err(e) = written {
            // Lambda, too, moves on; the records stay in the stream until
            // its retention ends. Say so loudly.
            stats.note_error(format!("{request_id}: a given-up batch could not be written: {e}"));
            eprintln!(
                "event source mapping: a batch given up on could not be written to the on-failure destination: {e}"
            );
        }
        EsmStats::add(&stats.records_done, records.len());
    }

    async fn iterator(&self, shard: &Shard, after: Option<&str>) -> Result<String> {
        let request = self
            .kinesis
            .get_shard_iterator()
            .stream_name(&self.stream)
            .shard_id(&shard.id);
        let request = match after {
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence),
        };
        let output = request
            .send()
            .await
            .map_err(|e| format!("GetShardIterator {}: {e:?}", shard.id))?;
        output
            .shard_iterator()
            .map(str::to_owned)
            .ok_or_else(|| format!("GetShardIterator {} returned no iterator", shard.id).into())
    }
}

/// The next batch from `pending`: at most `batch_size` records and, past
/// the first record, at most `max_payload` bytes of invocation payload.
fn take_batch(pending: &mut VecDeque<Read>, pending_bytes: &mut usize, config: &EsmConfig) -> Vec<Read> {
    let mut batch = Vec::new();
    let mut size = EVENT_BYTES_FIXED;
    while let Some(next) = pending.front() {
        let next_size = next.json.len() + 1;
        if batch.len() == config.batch_size || (!batch.is_empty() && size + next_size > config.max_payload) {
            break;
        }
        size += next_size;
        *pending_bytes -= next_size;
        batch.extend(pending.pop_front());
    }
    batch
}

/// `{"Records":[` and `]}`.
const EVENT_BYTES_FIXED: usize = r#"{"Records":[]}"#.len();

fn oldest_age(records: &[Read]) -> Duration {
    let now = crate::now_ms() as f64 / 1000.0;
    records
        .iter()
        .filter_map(|r| r.record.approximate_arrival_timestamp())
        .map(|t| t.as_secs_f64())
        .reduce(f64::min)
        .map_or(Duration::ZERO, |oldest| {
            Duration::from_secs_f64((now - oldest).max(0.0))
        })
}

/// One record in its exact Lambda `KinesisEvent` JSON shape.
fn record_json(r: &Record, shard_id: &str, stream_arn: &str) -> Vec<u8> {
    let record = EventRecord {
        shard_id,
        stream_arn,
        partition_key: r.partition_key().unwrap_or_default(),
        sequence_number: r.sequence_number(),
        data: r.data().as_ref(),
        arrival: r.approximate_arrival_timestamp().map_or(0.0, |t| t.as_secs_f64()),
    };
    serde_json::to_vec(&record.json()).unwrap_or_default()
}

/// The batch as Lambda sends it: a `KinesisEvent` document.
fn event_json(records: &[Read]) -> Vec<u8> {
    let mut event = Vec::with_capacity(EVENT_BYTES_FIXED + records.iter().map(|r| r.json.len() + 1).sum::<usize>());
    event.extend_from_slice(br#"{"Records":["#);
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            event.push(b',');
        }
        event.extend_from_slice(&r.json);
    }
    event.extend_from_slice(b"]}");
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::primitives::{Blob, DateTime};

    fn read(i: usize, size: usize) -> Read {
        let record = Record::builder()
            .sequence_number(format!("{i:05}"))
            .partition_key("k")
            .data(Blob::new(vec![b'x'; size]))
            .approximate_arrival_timestamp(DateTime::from_secs(1_764_072_000))
            .build()
            .unwrap();
        let json = record_json(&record, "shardId-0", "arn");
        Read { record, json }
    }

    fn config() -> EsmConfig {
        EsmConfig {
            batch_size: 500,
            batching_window: Duration::ZERO,
            max_payload: MAX_INVOCATION_PAYLOAD,
            max_retry_attempts: 2,
            max_record_age: Duration::from_secs(60),
            bisect_on_error: true,
            report_batch_item_failures: true,
            poll_interval: Duration::from_secs(1),
            retry_delay: Duration::from_millis(1),
        }
    }

    #[test]
    fn a_batch_ends_before_the_record_that_would_pass_six_megabytes() {
        // Records of 900 KB of data (1.2 MB as base64 in the payload).
        let mut pending: VecDeque<Read> = (0..8).map(|i| read(i, 900_000)).collect();
        let mut bytes: usize = pending.iter().map(|r| r.json.len() + 1).sum();
        let batch = take_batch(&mut pending, &mut bytes, &config());
        let size = event_json(&batch).len();
        assert!(size <= MAX_INVOCATION_PAYLOAD, "{size}");
        assert_eq!(batch.len(), 5);
        let next = pending.front().unwrap().json.len() + 1;
        assert!(size + next > MAX_INVOCATION_PAYLOAD, "the next record would not fit");
        assert_eq!(bytes, pending.iter().map(|r| r.json.len() + 1).sum::<usize>());
    }

    #[test]
    fn a_batch_holds_at_most_batch_size_records() {
        let mut pending: VecDeque<Read> = (0..12).map(|i| read(i, 10)).collect();
        let mut bytes = 0;
        for r in &pending {
            bytes += r.json.len() + 1;
        }
        let config = EsmConfig {
            batch_size: 5,
            ..config()
        };
        assert_eq!(take_batch(&mut pending, &mut bytes, &config).len(), 5);
        assert_eq!(pending.len(), 7);
    }

    #[test]
    fn the_event_is_the_records_json_in_a_kinesis_event() {
        let records = vec![read(1, 3), read(2, 3)];
        let event: kinesis_firehose_bridge::batch::KinesisBatch =
            serde_json::from_slice(&event_json(&records)).unwrap();
        assert_eq!(event.records.len(), 2);
        assert_eq!(event.records[1].kinesis.sequence_number, "00002");
        assert_eq!(event.records[0].kinesis.data, b"xxx");
    }
}
