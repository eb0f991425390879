//! Test support: Kinesis events built from JSON (the event types are
//! `#[non_exhaustive]`), and a scripted, recording fake of the Firehose port.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use kinesis_firehose_bridge::batch::KinesisBatch;
use kinesis_firehose_bridge::batch::build::EventRecord;
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::{CallError, EntryError, EntryResults, Firehose};
use kinesis_firehose_bridge::log::LogSink;
use kinesis_firehose_bridge::store::{NoStore, Store, StoreError};
use kinesis_firehose_bridge::{Bridge, Config};

/// A valid analytics event with a distinguishing id.
pub fn event(id: usize) -> Vec<u8> {
    format!(r#"{{"event_id":"e-{id}","event_type":"page_view","timestamp":"2026-11-25T12:00:00Z","n":{id}}}"#)
        .into_bytes()
}

/// Sequence number of the `i`th record of a test batch: fixed width so that
/// string order and numeric order agree, like real ones.
pub fn seq(i: usize) -> String {
    format!("4959000000000000000000{i:06}")
}

/// A Kinesis record as Lambda sends it.
pub fn kinesis_record(sequence_number: &str, data: &[u8]) -> KinesisEventRecord {
    let record = EventRecord {
        shard_id: "shardId-000000000000",
        stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/events",
        partition_key: &format!("pk-{sequence_number}"),
        sequence_number,
        data,
        arrival: 1764072000.123,
    };
    serde_json::from_value(record.json()).expect("a valid Kinesis record")
}

/// Records `seq(0)..` carrying `payloads` in order.
pub fn records(payloads: &[Vec<u8>]) -> Vec<KinesisEventRecord> {
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| kinesis_record(&seq(i), p))
        .collect()
}

pub fn kinesis_event(records: Vec<KinesisEventRecord>) -> KinesisEvent {
    let records: Vec<serde_json::Value> = records.into_iter().map(|r| serde_json::to_value(r).unwrap()).collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
}

/// The same records as the handler reads them.
pub fn kinesis_batch(records: Vec<KinesisEventRecord>) -> KinesisBatch {
    serde_json::from_slice(&serde_json::to_vec(&kinesis_event(records)).unwrap()).unwrap()
}

/// A configuration from `pairs`, with `DELIVERY_STREAMS` defaulting to two
/// streams and backoff kept short.
pub fn config(pairs: &[(&str, &str)]) -> Config {
    let mut map: HashMap<&str, &str> = [
        ("DELIVERY_STREAMS", "s0,s1"),
        ("BACKOFF_BASE_MS", "1"),
        ("BACKOFF_MAX_MS", "5"),
    ]
    .into_iter()
    .collect();
    map.extend(pairs.iter().copied());
    Config::from_lookup(|k| map.get(k).map(|v| v.to_string())).expect("valid test config")
}

pub fn bridge(pairs: &[(&str, &str)], firehose: ScriptedFirehose) -> Bridge<ScriptedFirehose, NoStore> {
    Bridge::new(config(pairs), Contract::Default, firehose, NoStore)
}

/// The same with a store.
pub fn bridge_with_store<S: Store>(
    pairs: &[(&str, &str)],
    firehose: ScriptedFirehose,
    store: S,
) -> Bridge<ScriptedFirehose, S> {
    Bridge::new(config(pairs), Contract::Default, firehose, store)
}

/// The reject lines among log lines (a kept object's body, or a log).
pub fn reject_lines_in(
    lines: &kinesis_firehose_bridge::log::Lines,
) -> Vec<kinesis_firehose_bridge::reject::RejectLine> {
    lines
        .iter()
        .map(|l| serde_json::from_slice(l).expect("a reject log line"))
        .collect()
}

/// A log that keeps every line, or refuses every write when `broken`.
#[derive(Default)]
pub struct MemoryLog {
    pub lines: Mutex<Vec<Vec<u8>>>,
    pub broken: bool,
}

impl MemoryLog {
    pub fn broken() -> Self {
        MemoryLog {
            broken: true,
            ..MemoryLog::default()
        }
    }

    /// Every line as JSON.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| {
                serde_json::from_slice(l).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(l)))
            })
            .collect()
    }

    /// The lines of one `kind`.
    pub fn of_kind(&self, kind: &str) -> Vec<serde_json::Value> {
        self.json().into_iter().filter(|l| l["kind"] == kind).collect()
    }
}

impl LogSink for MemoryLog {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        if self.broken {
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stdout is closed"));
        }
        assert!(line.ends_with(b"\n") && line.iter().filter(|&&b| b == b'\n').count() == 1);
        self.lines.lock().unwrap().push(line.to_vec());
        Ok(())
    }
}

/// A store that keeps every object, or refuses every write when `broken`.
#[derive(Default)]
pub struct MemoryStore {
    pub objects: Mutex<Vec<(String, Vec<u8>)>>,
    pub broken: bool,
}

impl MemoryStore {
    pub fn broken() -> Self {
        MemoryStore {
            broken: true,
            ..MemoryStore::default()
        }
    }
}

impl Store for MemoryStore {
    async fn put(&self, key: &str, body: bytes::Bytes) -> Result<String, StoreError> {
        if self.broken {
            return Err(StoreError::Unreachable {
                bucket: "b".into(),
                key: key.into(),
                reason: "connection refused".into(),
            });
        }
        self.objects.lock().unwrap().push((key.to_owned(), body.to_vec()));
        Ok(format!("s3://b/{key}"))
    }
}

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub stream: String,
    pub records: Vec<Vec<u8>>,
    /// Indexes of the records it accepted.
    pub accepted: Vec<usize>,
}

type Script = dyn Fn(&str, usize, &[&[u8]]) -> Result<EntryResults, CallError> + Send + Sync;

/// A Firehose that answers each call by a script (given the stream, the
/// call's number from 0, and the records) and records everything.
pub struct ScriptedFirehose {
    script: Box<Script>,
    calls: Mutex<Vec<Call>>,
    delay: Duration,
}

impl ScriptedFirehose {
    pub fn new(
        script: impl Fn(&str, usize, &[&[u8]]) -> Result<EntryResults, CallError> + Send + Sync + 'static,
    ) -> Self {
        ScriptedFirehose {
            script: Box::new(script),
            calls: Mutex::new(Vec::new()),
            delay: Duration::ZERO,
        }
    }

    /// Accepts everything.
    pub fn healthy() -> Self {
        Self::new(|_, _, records| Ok(vec![None; records.len()]))
    }

    /// Each answer takes `delay` (of tokio time).
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// Every record accepted, in the order accepted.
    pub fn delivered(&self) -> Vec<Vec<u8>> {
        self.calls()
            .into_iter()
            .flat_map(|c| c.accepted.iter().map(|&i| c.records[i].clone()).collect::<Vec<_>>())
            .collect()
    }

    /// Every accepted line (event), split out of the records (gzip
    /// members decompressed).
    pub fn delivered_lines(&self) -> Vec<Vec<u8>> {
        self.delivered().iter().flat_map(|r| lines_of(r)).collect()
    }
}

/// The lines of a Firehose record: newline-delimited, or a gzip member of
/// them, read with flate2's standard multi-member reader.
pub fn lines_of(record: &[u8]) -> Vec<Vec<u8>> {
    use std::io::Read;
    let plain = if kinesis_firehose_bridge::compress::is_gzip(record) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(record)
            .read_to_end(&mut out)
            .expect("a gzip member");
        out
    } else {
        record.to_vec()
    };
    plain
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

pub fn slow_down() -> EntryError {
    EntryError {
        code: "ServiceUnavailableException".to_owned(),
        message: "Slow down.".to_owned(),
    }
}

impl Firehose for ScriptedFirehose {
    async fn put_record_batch(&self, stream: &str, records: &[&[u8]]) -> Result<EntryResults, CallError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let number = self.calls.lock().unwrap().len();
        let answer = (self.script)(stream, number, records);
        let accepted = match &answer {
            Ok(entries) => entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.is_none())
                .map(|(i, _)| i)
                .collect(),
            Err(_) => Vec::new(),
        };
        self.calls.lock().unwrap().push(Call {
            stream: stream.to_owned(),
            records: records.iter().map(|r| r.to_vec()).collect(),
            accepted,
        });
        answer
    }
}

/// A bucket in memory: keys in order, listed `page` at a time, with
/// conditional writes; every write can be refused with `broken`.
pub struct MemoryBucket {
    pub objects: Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
    pub page: usize,
}

impl Default for MemoryBucket {
    fn default() -> Self {
        MemoryBucket {
            objects: Mutex::default(),
            page: 2,
        }
    }
}

impl MemoryBucket {
    pub fn with(objects: &[(&str, Vec<u8>)]) -> Self {
        let bucket = MemoryBucket::default();
        for (key, body) in objects {
            bucket.objects.lock().unwrap().insert((*key).to_owned(), body.clone());
        }
        bucket
    }

    pub fn keys_under(&self, prefix: &str) -> Vec<String> {
        self.objects
            .lock()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl Store for MemoryBucket {
    async fn put(&self, key: &str, body: bytes::Bytes) -> Result<String, StoreError> {
        self.objects.lock().unwrap().insert(key.to_owned(), body.to_vec());
        Ok(format!("s3://b/{key}"))
    }
}

impl kinesis_firehose_bridge::store::Bucket for MemoryBucket {
    async fn list(
        &self,
        prefix: &str,
        page: Option<String>,
    ) -> Result<kinesis_firehose_bridge::store::Listing, StoreError> {
        let keys = self.keys_under(prefix);
        let start: usize = page.and_then(|p| p.parse().ok()).unwrap_or(0);
        let end = (start + self.page).min(keys.len());
        Ok(kinesis_firehose_bridge::store::Listing {
            keys: keys[start.min(end)..end].to_vec(),
            next: (end < keys.len()).then(|| end.to_string()),
        })
    }

    async fn get(&self, key: &str) -> Result<bytes::Bytes, StoreError> {
        self.objects
            .lock()
            .unwrap()
            .get(key)
            .map(|b| bytes::Bytes::from(b.clone()))
            .ok_or_else(|| StoreError::Refused {
                bucket: "b".into(),
                key: key.into(),
                code: "NoSuchKey".into(),
                message: "no such key".into(),
            })
    }

    async fn put_new(&self, key: &str, body: bytes::Bytes) -> Result<bool, StoreError> {
        let mut objects = self.objects.lock().unwrap();
        if objects.contains_key(key) {
            return Ok(false);
        }
        objects.insert(key.to_owned(), body.to_vec());
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }
}
