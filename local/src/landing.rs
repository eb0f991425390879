//! When each S3 object was written, to the millisecond.
//!
//! moto reports an object's `LastModified` to the second only, too coarse
//! for a delivery delay. But moto's Firehose writes one object per
//! `PutRecordBatch` call, synchronously, holding exactly the bytes of the
//! records it accepted, in order; and S3's ETag of such an object is the
//! MD5 of those bytes. So [`Clocked`], wrapped around the bridge's Firehose
//! port, notes the MD5 of what each call got accepted and when the answer
//! came; the verifier looks objects up by ETag, and falls back to
//! `LastModified` for objects written by anything else (a `cargo lambda`
//! function, a replay run from another process).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use kinesis_firehose_bridge::firehose::{CallError, EntryResults, Firehose};
use md5::{Digest, Md5};

/// Acknowledged writes: object ETag (hex MD5) to the time it was answered.
#[derive(Debug, Default)]
pub struct Landings {
    by_etag: Mutex<HashMap<String, u64>>,
    lines: AtomicU64,
}

impl Landings {
    /// Notes a write of `lines` event lines; the first note of an ETag wins.
    pub fn note(&self, etag: String, at_ms: u64, lines: u64) {
        self.lines.fetch_add(lines, Ordering::Relaxed);
        if let Ok(mut map) = self.by_etag.lock() {
            map.entry(etag).or_insert(at_ms);
        }
    }

    /// When the object with `etag` (quoted or not) was written, if known.
    pub fn at(&self, etag: &str) -> Option<u64> {
        let etag = etag.trim_matches('"');
        self.by_etag.lock().ok()?.get(etag).copied()
    }

    /// Lines (events, or rejects) Firehose has accepted so far.
    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }
}

/// A Firehose port that notes every accepted write in [`Landings`].
#[derive(Debug)]
pub struct Clocked<F> {
    pub inner: F,
    pub landings: std::sync::Arc<Landings>,
}

impl<F: Firehose> Firehose for Clocked<F> {
    async fn put_record_batch(&self, stream: &str, records: &[&[u8]]) -> Result<EntryResults, CallError> {
        let answer = self.inner.put_record_batch(stream, records).await;
        if let Ok(entries) = &answer {
            let at = crate::now_ms();
            let mut digest = Md5::new();
            let mut lines = 0;
            let mut accepted = false;
            for (record, entry) in records.iter().zip(entries) {
                if entry.is_none() {
                    digest.update(record);
                    lines += kinesis_firehose_bridge::compress::open(record, u64::MAX)
                        .map_or(0, |r| r.iter().filter(|&&b| b == b'\n').count() as u64);
                    accepted = true;
                }
            }
            if accepted {
                self.landings.note(hex(&digest.finalize()), at, lines);
            }
        }
        answer
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
