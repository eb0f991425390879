//! Firehose's per-stream Direct PUT quotas, enforced by the fault proxy:
//! records/s, requests/s and bytes/s, each a token bucket per delivery
//! stream, refused the way Firehose refuses.
//!
//! - An entry over the records or bytes quota is refused on its own:
//!   `ServiceUnavailableException` "Slow down." in its place of an HTTP 200
//!   answer, counted in `FailedPutCount`; the other entries of the call go on.
//! - A call over the requests quota is refused whole: HTTP 503
//!   `ServiceUnavailableException`.
//!
//! A quota is named (`us-east-1`, any other Region, or `other`: the two
//! published sets in [`kinesis_firehose_bridge::limits`]) or explicit
//! (`records:2000/requests:50/bytes:1MiB`; a missing one is unlimited), and
//! scaled by `quota_scale` (see `docs/scale.md`: this machine carries about
//! a thousandth of what one Region's streams take).
//!
//! ## The buckets
//!
//! Each bucket fills at its quota's rate and holds at most one second of
//! the quota as published: scaled by F, it fills F times slower but holds
//! as much, 1/F seconds of the scaled rate. What does not scale is the
//! size of what arrives (an invocation's records, up to 1,000 KiB each),
//! and a bucket of one scaled second would be twenty times coarser against
//! it than Firehose's is (`docs/scale.md`). A bucket starts with one second
//! of its rate. An entry passes while both its buckets hold anything, and
//! takes its whole cost, which may leave them in debt: over any stretch,
//! what passes is the rate times the stretch, plus at most what the bucket
//! held and one entry. A refused entry or call takes nothing.

use std::collections::HashMap;
use std::sync::Mutex;

use kinesis_firehose_bridge::limits::{
    DIRECT_PUT_QUOTA, DIRECT_PUT_QUOTA_OTHER_REGIONS, DIRECT_PUT_QUOTA_REGIONS, DirectPutQuota,
};
use tokio::time::Instant;

/// Commercial and GovCloud Regions with Firehose, other than
/// [`DIRECT_PUT_QUOTA_REGIONS`]: the "other AWS Regions" of the quota.
pub const OTHER_REGIONS: &[&str] = &[
    "us-east-2",
    "us-west-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "af-south-1",
    "ap-east-1",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "sa-east-1",
];

/// A delivery stream's quota, per second; `f64::INFINITY` where there is none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub records_per_s: f64,
    pub requests_per_s: f64,
    pub bytes_per_s: f64,
    /// Seconds of the rates a bucket holds: 1, or 1/F once scaled by F.
    pub burst_s: f64,
}

impl From<DirectPutQuota> for Quota {
    fn from(q: DirectPutQuota) -> Self {
        Quota {
            records_per_s: q.records_per_second as f64,
            requests_per_s: q.requests_per_second as f64,
            bytes_per_s: q.bytes_per_second as f64,
            burst_s: 1.0,
        }
    }
}

impl Quota {
    /// The published quota of `region`; `None` for a Region it does not know.
    pub fn in_region(region: &str) -> Option<Quota> {
        if DIRECT_PUT_QUOTA_REGIONS.contains(&region) {
            Some(DIRECT_PUT_QUOTA.into())
        } else if OTHER_REGIONS.contains(&region) {
            Some(DIRECT_PUT_QUOTA_OTHER_REGIONS.into())
        } else {
            None
        }
    }

    /// The quota `spec` names: a Region, `other`, or the explicit
    /// `records:N/requests:N/bytes:N[KiB|MiB]` (any of the three, in any
    /// order). The error names the spec and says what was expected.
    pub fn parse(spec: &str) -> Result<Quota, String> {
        let spec = spec.trim();
        if spec == "other" {
            return Ok(DIRECT_PUT_QUOTA_OTHER_REGIONS.into());
        }
        if let Some(quota) = Quota::in_region(spec) {
            return Ok(quota);
        }
        if !spec.contains(':') {
            return Err(format!(
                "quota={spec:?}: not a Region with a published Firehose quota, nor `other`, nor \
                 records:N/requests:N/bytes:N (e.g. quota=us-east-1, quota=other, \
                 quota=records:2000/requests:50/bytes:1MiB)"
            ));
        }
        let mut quota = Quota {
            records_per_s: f64::INFINITY,
            requests_per_s: f64::INFINITY,
            bytes_per_s: f64::INFINITY,
            burst_s: 1.0,
        };
        for part in spec.split('/') {
            let bad = |why: &str| format!("quota={spec:?}: {part:?} {why}");
            let (name, value) = part
                .split_once(':')
                .ok_or_else(|| bad("is not NAME:VALUE (records, requests or bytes)"))?;
            let (slot, value) = match name.trim() {
                "records" => (&mut quota.records_per_s, per_second(value)),
                "requests" => (&mut quota.requests_per_s, per_second(value)),
                "bytes" => (&mut quota.bytes_per_s, bytes(value)),
                _ => return Err(bad("names no quota: expected records, requests or bytes")),
            };
            *slot = value.ok_or_else(|| bad("is not a positive number (bytes may end in KiB or MiB)"))?;
        }
        Ok(quota)
    }

    /// This quota times `factor`: the three move together, as Firehose
    /// raises them; its buckets hold what they held (see the module docs).
    pub fn scaled(self, factor: f64) -> Quota {
        Quota {
            records_per_s: self.records_per_s * factor,
            requests_per_s: self.requests_per_s * factor,
            bytes_per_s: self.bytes_per_s * factor,
            burst_s: self.burst_s / factor,
        }
    }
}

fn per_second(value: &str) -> Option<f64> {
    value.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0)
}

fn bytes(value: &str) -> Option<f64> {
    let value = value.trim();
    let (number, unit) = [("KiB", 1024.0), ("MiB", 1024.0 * 1024.0)]
        .into_iter()
        .find_map(|(suffix, unit)| value.strip_suffix(suffix).map(|n| (n, unit)))
        .unwrap_or((value, 1.0));
    per_second(number).map(|n| n * unit)
}

/// A bucket of one quota, in debt when an entry took more than it held.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, burst_s: f64, now: Instant) -> Self {
        Bucket {
            rate,
            capacity: rate * burst_s.max(1.0),
            tokens: rate,
            at: now,
        }
    }

    fn fill(&mut self, now: Instant) {
        let seconds = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + self.rate * seconds).min(self.capacity);
        self.at = now;
    }

    fn has_any(&self) -> bool {
        self.tokens > 0.0
    }
}

#[derive(Debug, Clone, Copy)]
struct StreamBuckets {
    records: Bucket,
    requests: Bucket,
    bytes: Bucket,
}

/// What the quota lets through of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Over the requests quota: the whole call is refused.
    CallRefused,
    /// Per entry, in order: whether it is refused.
    Entries(Vec<bool>),
}

/// The buckets of every delivery stream, each stream with the same quota.
#[derive(Debug)]
pub struct Limiter {
    quota: Quota,
    streams: Mutex<HashMap<String, StreamBuckets>>,
}

impl Limiter {
    pub fn new(quota: Quota) -> Self {
        Limiter {
            quota,
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// Admits a call to `stream` with entries of `sizes` bytes, at `now`.
    pub fn admit(&self, stream: &str, sizes: &[usize], now: Instant) -> Admission {
        let Ok(mut streams) = self.streams.lock() else {
            return Admission::Entries(vec![false; sizes.len()]);
        };
        let q = self.quota;
        let buckets = streams.entry(stream.to_owned()).or_insert_with(|| StreamBuckets {
            records: Bucket::new(q.records_per_s, q.burst_s, now),
            requests: Bucket::new(q.requests_per_s, q.burst_s, now),
            bytes: Bucket::new(q.bytes_per_s, q.burst_s, now),
        });
        for bucket in [&mut buckets.records, &mut buckets.requests, &mut buckets.bytes] {
            bucket.fill(now);
        }
        if !buckets.requests.has_any() {
            return Admission::CallRefused;
        }
        buckets.requests.tokens -= 1.0;
        let refused = sizes
            .iter()
            .map(|&size| {
                if buckets.records.has_any() && buckets.bytes.has_any() {
                    buckets.records.tokens -= 1.0;
                    buckets.bytes.tokens -= size as f64;
                    false
                } else {
                    true
                }
            })
            .collect();
        Admission::Entries(refused)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn names_the_two_published_sets() {
        let large = Quota::parse("us-east-1").unwrap();
        assert_eq!(large.records_per_s, 500_000.0);
        assert_eq!(large.requests_per_s, 2_000.0);
        assert_eq!(large.bytes_per_s, 5.0 * 1024.0 * 1024.0);
        assert_eq!(Quota::parse("eu-west-1").unwrap(), large);
        let other = Quota::parse("other").unwrap();
        assert_eq!(
            (other.records_per_s, other.requests_per_s, other.bytes_per_s),
            (100_000.0, 1_000.0, 1024.0 * 1024.0)
        );
        assert_eq!(Quota::parse("eu-central-1").unwrap(), other);
    }

    #[test]
    fn reads_the_explicit_form_and_leaves_the_rest_unlimited() {
        let q = Quota::parse("records:2000/requests:50/bytes:1MiB").unwrap();
        assert_eq!(
            (q.records_per_s, q.requests_per_s, q.bytes_per_s),
            (2000.0, 50.0, 1048576.0)
        );
        let q = Quota::parse("bytes:30KiB").unwrap();
        assert_eq!(q.bytes_per_s, 30.0 * 1024.0);
        assert!(q.records_per_s.is_infinite() && q.requests_per_s.is_infinite());
        let scaled = Quota::parse("us-east-1").unwrap().scaled(0.001);
        assert_eq!(scaled.records_per_s, 500.0);
        assert_eq!(scaled.requests_per_s, 2.0);
    }

    #[test]
    fn a_malformed_spec_is_an_error_naming_it() {
        for spec in [
            "mars-north-1",
            "records:lots",
            "records:-5",
            "speed:10",
            "bytes:1GB",
            "records=5",
        ] {
            let error = Quota::parse(spec).unwrap_err();
            assert!(error.contains(spec), "{spec}: {error}");
        }
    }

    #[test]
    fn refuses_entries_over_the_records_quota_and_refills_with_time() {
        let limiter = Limiter::new(Quota::parse("records:10").unwrap());
        let t0 = Instant::now();
        let Admission::Entries(refused) = limiter.admit("s", &[1; 15], t0) else {
            panic!("the call is admitted");
        };
        assert_eq!(refused.iter().filter(|r| !**r).count(), 10);
        assert!(refused[10..].iter().all(|r| *r), "the first ten pass, in order");
        let Admission::Entries(refused) = limiter.admit("s", &[1; 15], t0 + Duration::from_millis(500)) else {
            panic!("the call is admitted");
        };
        assert_eq!(refused.iter().filter(|r| !**r).count(), 5, "half a second refills half");
        let Admission::Entries(other) = limiter.admit("t", &[1; 15], t0) else {
            panic!("another stream has its own buckets");
        };
        assert_eq!(other.iter().filter(|r| !**r).count(), 10);
    }

    #[test]
    fn a_record_larger_than_a_second_passes_into_debt_which_later_entries_repay() {
        let limiter = Limiter::new(Quota::parse("bytes:1000").unwrap());
        let t0 = Instant::now();
        assert_eq!(
            limiter.admit("s", &[5_000, 1], t0),
            Admission::Entries(vec![false, true])
        );
        // 4,000 bytes of debt: nothing passes for four seconds.
        assert_eq!(
            limiter.admit("s", &[1], t0 + Duration::from_millis(3_900)),
            Admission::Entries(vec![true])
        );
        assert_eq!(
            limiter.admit("s", &[1], t0 + Duration::from_millis(4_100)),
            Admission::Entries(vec![false])
        );
    }

    #[test]
    fn a_scaled_bucket_fills_slower_and_holds_a_second_of_the_published_quota() {
        let quota = Quota::parse("bytes:1000").unwrap().scaled(0.1);
        assert_eq!((quota.bytes_per_s, quota.burst_s), (100.0, 10.0));
        let limiter = Limiter::new(quota);
        let t0 = Instant::now();
        // It starts with a second of the scaled rate; left unused for 30 s
        // it holds 1,000 bytes, the published quota's second, not 3,000.
        assert_eq!(limiter.admit("s", &[100, 1], t0), Admission::Entries(vec![false, true]));
        let later = t0 + Duration::from_secs(30);
        let Admission::Entries(refused) = limiter.admit("s", &[100; 12], later) else {
            panic!("the call is admitted");
        };
        assert_eq!(refused.iter().filter(|r| !**r).count(), 10);
    }

    #[test]
    fn over_the_requests_quota_the_whole_call_is_refused() {
        let limiter = Limiter::new(Quota::parse("requests:2").unwrap());
        let t0 = Instant::now();
        assert!(matches!(limiter.admit("s", &[1], t0), Admission::Entries(_)));
        assert!(matches!(limiter.admit("s", &[1], t0), Admission::Entries(_)));
        assert_eq!(limiter.admit("s", &[1], t0), Admission::CallRefused);
        assert!(matches!(
            limiter.admit("s", &[1], t0 + Duration::from_millis(600)),
            Admission::Entries(_)
        ));
    }

    #[test]
    fn over_a_long_stretch_what_passes_is_the_quota() {
        let limiter = Limiter::new(Quota::parse("bytes:10000").unwrap());
        let t0 = Instant::now();
        let mut passed = 0;
        // A call of ten 700-byte entries every 10 ms for 20 s: 700 KB/s offered.
        for tick in 0..2_000u64 {
            if let Admission::Entries(refused) = limiter.admit("s", &[700; 10], t0 + Duration::from_millis(tick * 10)) {
                passed += refused.iter().filter(|r| !**r).count() * 700;
            }
        }
        let rate = passed as f64 / 20.0;
        assert!((rate - 10_000.0).abs() <= 10_000.0 * 0.06, "{rate} bytes/s");
    }
}
