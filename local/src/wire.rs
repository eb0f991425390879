//! What a sample of events weighs once the bridge has packed it: the
//! records and bytes Firehose receives and bills for them, measured by
//! running the sample through the bridge itself (`Bridge::process`, so its
//! own validation, `pack::pack` or `compress::pack`) in batches of the
//! event source mapping's `BatchSize`, against a Firehose that takes
//! everything. The capacity plan sizes delivery streams by it, and
//! `make scale` sets its quota from it.

use kinesis_firehose_bridge::Config;
use kinesis_firehose_bridge::batch::SourceRecord;
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::{CallError, EntryResults, Firehose};
use kinesis_firehose_bridge::report::Summary;
use kinesis_firehose_bridge::store::NoStore;
use kinesis_firehose_bridge::{Bridge, config::vars};

use crate::Result;
use crate::events::EventShape;

/// The bridge's output for a sample, added up over its batches.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WireSize {
    pub batches: usize,
    /// Events the bridge took as valid, and rejected.
    pub events: usize,
    pub rejected: usize,
    /// The valid events' lines, newlines included.
    pub event_bytes: usize,
    /// Firehose records, their bytes as sent, and the bytes billed.
    pub records: usize,
    pub bytes: usize,
    pub billed_bytes: usize,
}

impl WireSize {
    /// Bytes Firehose receives per valid event: what its bytes quota counts.
    pub fn bytes_per_event(&self) -> f64 {
        self.bytes as f64 / self.events.max(1) as f64
    }

    /// Bytes Firehose bills per valid event.
    pub fn billed_per_event(&self) -> f64 {
        self.billed_bytes as f64 / self.events.max(1) as f64
    }

    /// Firehose records per valid event.
    pub fn records_per_event(&self) -> f64 {
        self.records as f64 / self.events.max(1) as f64
    }

    /// Bytes sent per byte of events: the compression ratio (about 1 when
    /// the function does not compress).
    pub fn ratio(&self) -> f64 {
        self.bytes as f64 / self.event_bytes.max(1) as f64
    }

    /// Firehose records of one full batch.
    pub fn records_per_batch(&self) -> f64 {
        self.records as f64 / self.batches.max(1) as f64
    }

    fn add(&mut self, s: &Summary) {
        self.batches += 1;
        self.events += s.events_delivered;
        self.rejected += s.events_rejected;
        self.event_bytes += s.event_bytes;
        self.records += s.firehose_records;
        self.bytes += s.firehose_bytes;
        self.billed_bytes += s.firehose_billed_bytes;
    }
}

/// Runs `events` through the bridge in batches of `batch_size` with the
/// bridge settings `settings` (e.g. `COMPRESSION=gzip`).
pub async fn measure(events: &[Vec<u8>], batch_size: usize, settings: &[(&str, &str)]) -> Result<WireSize> {
    let config = Config::from_lookup(|name| {
        if name == vars::DELIVERY_STREAMS {
            return Some("plan".to_owned());
        }
        settings.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    })?;
    let bridge = Bridge::new(config, Contract::Default, TakesEverything, NoStore);
    let mut size = WireSize::default();
    for (b, batch) in events.chunks(batch_size.max(1)).enumerate() {
        let records: Vec<SampleRecord> = batch
            .iter()
            .enumerate()
            .map(|(i, data)| SampleRecord {
                sequence: format!("{}", b * batch_size + i + 1),
                data,
            })
            .collect();
        let processed = bridge.process(&records, None, "wire").await;
        size.add(&processed.summary);
    }
    if size.events == 0 {
        return Err(format!(
            "none of the {} sample events is valid under the bridge's default contract (an object with \
             event_id, event_type and an RFC 3339 timestamp); {} rejected",
            events.len(),
            size.rejected
        )
        .into());
    }
    Ok(size)
}

/// Valid events of about `size` bytes, as the load generator sends them.
pub fn demo_events(count: usize, size: usize) -> Vec<Vec<u8>> {
    let shape = EventShape { size };
    let mut rng = rand::rng();
    (0..count)
        .map(|i| shape.valid(&format!("plan-{i}"), &mut rng))
        .collect()
}

/// A sample file: one event per line (NDJSON); blank lines skipped.
pub fn read_sample(path: &std::path::Path) -> Result<Vec<Vec<u8>>> {
    let text = std::fs::read(path).map_err(|e| format!("SAMPLE {}: {e}", path.display()))?;
    let events: Vec<Vec<u8>> = text
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect();
    if events.is_empty() {
        return Err(format!("SAMPLE {}: no events in it (one JSON event per line)", path.display()).into());
    }
    Ok(events)
}

struct SampleRecord<'a> {
    sequence: String,
    data: &'a [u8],
}

impl SourceRecord for SampleRecord<'_> {
    fn sequence_number(&self) -> &str {
        &self.sequence
    }
    fn partition_key(&self) -> &str {
        "plan"
    }
    fn data(&self) -> &[u8] {
        self.data
    }
    fn approximate_arrival_timestamp(&self) -> f64 {
        0.0
    }
}

/// A Firehose that takes every record.
struct TakesEverything;

impl Firehose for TakesEverything {
    async fn put_record_batch(&self, _stream: &str, records: &[&[u8]]) -> Result<EntryResults, CallError> {
        Ok(vec![None; records.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gzip_sends_a_fraction_of_the_event_bytes_and_none_about_all() {
        let events = demo_events(1_000, 300);
        let gzip = measure(&events, 500, &[(vars::COMPRESSION, "gzip")]).await.unwrap();
        assert_eq!((gzip.batches, gzip.events, gzip.rejected), (2, 1_000, 0));
        assert_eq!(gzip.records, 2, "one gzip member holds a whole batch");
        assert!(gzip.ratio() < 0.5, "{}", gzip.ratio());
        let none = measure(&events, 500, &[(vars::COMPRESSION, "none")]).await.unwrap();
        assert!(none.ratio() >= 1.0 && none.ratio() < 1.01, "{}", none.ratio());
        assert!(none.bytes_per_event() > 290.0);
        assert!(gzip.billed_per_event() >= gzip.bytes_per_event());
    }

    #[tokio::test]
    async fn a_sample_of_nothing_valid_is_an_error() {
        let error = measure(&[b"{}".to_vec()], 500, &[]).await.unwrap_err();
        assert!(error.to_string().contains("none of the 1 sample events"), "{error}");
    }
}
