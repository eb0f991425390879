//! The event source mapping: what Lambda runs in production between a
//! Kinesis stream and the function.
//!
//! Every shard is polled on its own (GetShardIterator from TRIM_HORIZON,
//! then GetRecords), at most `batch_size` records per batch, with one
//! invocation in flight per shard (ParallelizationFactor 1). A shard is
//! polled again at once while it has a backlog (the last read was a full
//! batch), otherwise after `poll_interval` (Lambda's base rate is once per
//! second), and never more than five times a second (the GetRecords limit).
//!
//! Lambda's semantics for each batch:
//! - the function failed (an error, a timeout): the same batch again, after
//!   a growing pause, until it succeeds (MaximumRetryAttempts -1; the
//!   deployed template bounds retries and bisects, which this does not);
//! - `batchItemFailures`: the lowest reported sequence number and what
//!   follows it are sent again; what precedes it is done;
//! - otherwise the batch is done and the shard advances.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::{Record, ShardIteratorType};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kinesis_firehose_bridge::record::compare_sequence_numbers;
use serde_json::json;
use tokio::time::Instant;

use crate::Result;
use crate::aws::{ACCOUNT, REGION};
use crate::invoke::{FunctionError, Invoker};
use crate::setup::Shard;

#[derive(Debug, Clone)]
pub struct EsmConfig {
    /// Most records per invocation (Lambda's BatchSize; 500 in the template).
    pub batch_size: usize,
    pub poll_interval: Duration,
    /// First pause before a failed batch is retried; doubles up to 5 s.
    pub retry_delay: Duration,
}

impl Default for EsmConfig {
    fn default() -> Self {
        EsmConfig {
            batch_size: 500,
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
    /// Records whose batch is done (each counted once).
    pub records_done: AtomicU64,
    /// Records sent again after a function error or partial failure.
    pub records_resent: AtomicU64,
    pub get_records_errors: AtomicU64,
    /// The largest `MillisBehindLatest` of the last read of every shard.
    pub millis_behind: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl EsmStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn note_error(&self, error: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(error);
        }
    }
}

/// The mapping of one stream to one function.
pub struct EventSourceMapping {
    pub kinesis: aws_sdk_kinesis::Client,
    pub stream: String,
    pub stream_arn: String,
    pub config: EsmConfig,
    pub invoker: Arc<Invoker>,
    pub stats: Arc<EsmStats>,
}

impl EventSourceMapping {
    /// Polls every shard until `stop` is set; a batch in progress is
    /// finished first, unless the function keeps failing.
    pub async fn run(self: Arc<Self>, shards: Vec<Shard>, stop: Arc<AtomicBool>) -> Result<()> {
        let behind: Arc<Vec<AtomicU64>> = Arc::new(shards.iter().map(|_| AtomicU64::new(0)).collect());
        let mut tasks = Vec::new();
        for (index, shard) in shards.into_iter().enumerate() {
            let mapping = self.clone();
            let stop = stop.clone();
            let behind = behind.clone();
            tasks.push(tokio::spawn(
                async move { mapping.poll(index, shard, stop, behind).await },
            ));
        }
        for task in tasks {
            task.await.map_err(|e| format!("a shard poller panicked: {e}"))??;
        }
        Ok(())
    }

    async fn poll(&self, index: usize, shard: Shard, stop: Arc<AtomicBool>, behind: Arc<Vec<AtomicU64>>) -> Result<()> {
        let mut iterator = self.iterator(&shard, None).await?;
        let mut last_done: Option<String> = None;
        let mut invocation = 0u64;
        let mut last_poll: Option<Instant> = None;
        let mut backlog = false;
        while !stop.load(Ordering::Relaxed) {
            if let Some(at) = last_poll {
                let gap = if backlog {
                    Duration::from_millis(200)
                } else {
                    self.config.poll_interval
                };
                tokio::time::sleep_until(at + gap).await;
            }
            last_poll = Some(Instant::now());
            let read = self
                .kinesis
                .get_records()
                .shard_iterator(&iterator)
                .limit(self.config.batch_size as i32)
                .send()
                .await;
            let output = match read {
                Ok(output) => output,
                Err(e) => {
                    self.stats.get_records_errors.fetch_add(1, Ordering::Relaxed);
                    self.stats.note_error(format!("GetRecords {}: {e:?}", shard.id));
                    if e.code() == Some("ExpiredIteratorException") {
                        iterator = self.iterator(&shard, last_done.as_deref()).await?;
                    }
                    continue;
                }
            };
            behind[index].store(output.millis_behind_latest().unwrap_or(0) as u64, Ordering::Relaxed);
            self.stats.millis_behind.store(
                behind.iter().map(|b| b.load(Ordering::Relaxed)).max().unwrap_or(0),
                Ordering::Relaxed,
            );
            let records = output.records();
            backlog = records.len() >= self.config.batch_size;
            if !records.is_empty() {
                self.deliver(&shard, records, &mut invocation, &stop).await;
                last_done = records.last().map(|r| r.sequence_number().to_owned());
            }
            match output.next_shard_iterator() {
                Some(next) => iterator = next.to_owned(),
                None => break, // the shard was closed and is read to its end
            }
        }
        Ok(())
    }

    /// Runs one batch to completion under Lambda's retry semantics.
    async fn deliver(&self, shard: &Shard, records: &[Record], invocation: &mut u64, stop: &AtomicBool) {
        let mut batch = records;
        let mut pause = self.config.retry_delay;
        loop {
            *invocation += 1;
            let request_id = format!("{}-{invocation}", shard.id);
            let event = event_json(batch, &shard.id, &self.stream_arn);
            self.stats.invocations.fetch_add(1, Ordering::Relaxed);
            let failure = match self.invoker.invoke(&event, &request_id).await {
                Ok(response) => {
                    let lowest = response
                        .batch_item_failures
                        .iter()
                        .filter_map(|f| f.item_identifier.as_deref())
                        .min_by(|a, b| compare_sequence_numbers(a, b));
                    match lowest {
                        None => {
                            self.stats.records_done.fetch_add(batch.len() as u64, Ordering::Relaxed);
                            return;
                        }
                        Some(sequence) => match batch.iter().position(|r| r.sequence_number() == sequence) {
                            Some(at) => {
                                self.stats.partial_retries.fetch_add(1, Ordering::Relaxed);
                                self.stats.records_done.fetch_add(at as u64, Ordering::Relaxed);
                                batch = &batch[at..];
                                None
                            }
                            // Lambda treats an identifier outside the batch
                            // as a failure of the whole batch.
                            None => Some(format!("batchItemFailures names {sequence}, which is not in the batch")),
                        },
                    }
                }
                Err(FunctionError(message)) => Some(message),
            };
            if let Some(message) = failure {
                self.stats.function_errors.fetch_add(1, Ordering::Relaxed);
                self.stats.note_error(format!("{request_id}: {message}"));
            }
            self.stats
                .records_resent
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            if stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
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

/// The batch as Lambda sends it: a `KinesisEvent` in its exact JSON shape.
pub fn event_json(records: &[Record], shard_id: &str, stream_arn: &str) -> Vec<u8> {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let sequence = r.sequence_number();
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key(),
                    "sequenceNumber": sequence,
                    "data": STANDARD.encode(r.data().as_ref()),
                    "approximateArrivalTimestamp": r
                        .approximate_arrival_timestamp()
                        .map_or(0.0, |t| t.as_secs_f64()),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{shard_id}:{sequence}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": format!("arn:aws:iam::{ACCOUNT}:role/kinesis-firehose-bridge"),
                "awsRegion": REGION,
                "eventSourceARN": stream_arn,
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).unwrap_or_default()
}
