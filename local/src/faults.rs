//! What the fault proxy does to `PutRecordBatch` calls, parsed from a
//! spec like `throttle=0.3,down=analytics-events-1`.
//!
//! | item | effect |
//! | --- | --- |
//! | `throttle=P` | each entry fails with `ServiceUnavailableException` "Slow down." with probability P |
//! | `throttle=P:STREAM` | the same, for calls to STREAM only |
//! | `fail=P` | each call fails as a whole (HTTP 503, `ServiceUnavailableException`) with probability P |
//! | `down=STREAM` | every call to STREAM fails as a whole |
//! | `delay=MS` | every answer waits MS milliseconds (`250`, `250ms` or `2s`) |
//! | `outage=START+LENGTH` | every call fails as a whole from START after the proxy started, for LENGTH (`8s+4s`): HTTP 503, which the SDK retries |
//! | `missing=START+LENGTH` | the same window, but the delivery streams are missing: HTTP 400 `ResourceNotFoundException`, which the SDK does not retry, so every invocation in it fails at once (a poison stretch) |
//! | `quota=REGION`, `quota=other` | each delivery stream gets Firehose's published Direct PUT quota of that Region (or of the other Regions): over records/s or bytes/s an entry is refused "Slow down.", over requests/s the whole call ([`crate::quota`]) |
//! | `quota=records:N/requests:N/bytes:N` | an explicit quota per stream (any of the three; bytes may end in `KiB` or `MiB`) |
//! | `quota_scale=F` | the quota times F, e.g. `quota=us-east-1,quota_scale=0.001` (`docs/scale.md`) |
//!
//! The real `PutRecordBatch` limits are always enforced, faults or not.

use std::time::Duration;

use crate::quota::Quota;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    pub throttle: Vec<Throttle>,
    pub fail: f64,
    pub down: Vec<String>,
    pub delay: Duration,
    pub outage: Option<(Duration, Duration)>,
    pub missing: Option<(Duration, Duration)>,
    /// The quota of each delivery stream, scaled.
    pub quota: Option<Quota>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    pub share: f64,
    /// `None`: every stream.
    pub stream: Option<String>,
}

impl Faults {
    pub fn none() -> Self {
        Faults::default()
    }

    pub fn is_none(&self) -> bool {
        *self == Faults::default()
    }

    /// Share of entries to `stream` that are throttled.
    pub fn throttle_share(&self, stream: &str) -> f64 {
        self.throttle
            .iter()
            .filter(|t| t.stream.as_deref().is_none_or(|s| s == stream))
            .map(|t| t.share)
            .fold(0.0, f64::max)
    }

    /// Whether a whole-call outage (`outage` or `missing`) covers
    /// `elapsed` since the proxy started.
    pub fn in_outage(&self, elapsed: Duration) -> bool {
        within(self.outage, elapsed) || within(self.missing, elapsed)
    }

    /// Whether the streams are missing at `elapsed`.
    pub fn streams_missing(&self, elapsed: Duration) -> bool {
        within(self.missing, elapsed)
    }

    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut faults = Faults::default();
        let mut scale: Option<f64> = None;
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty() && *i != "none") {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("fault {item:?}: expected KEY=VALUE"))?;
            match key {
                "throttle" => {
                    let (share, stream) = match value.split_once(':') {
                        Some((share, stream)) => (share, Some(stream.to_owned())),
                        None => (value, None),
                    };
                    faults.throttle.push(Throttle {
                        share: share_of(key, share)?,
                        stream,
                    });
                }
                "fail" => faults.fail = share_of(key, value)?,
                "down" => faults.down.push(value.to_owned()),
                "delay" => faults.delay = duration(key, value)?,
                "outage" => faults.outage = Some(window(key, value)?),
                "missing" => faults.missing = Some(window(key, value)?),
                "quota" => faults.quota = Some(Quota::parse(value)?),
                "quota_scale" => {
                    scale = Some(
                        value
                            .parse::<f64>()
                            .ok()
                            .filter(|f| f.is_finite() && *f > 0.0)
                            .ok_or_else(|| format!("quota_scale={value:?}: expected a positive factor, e.g. 0.001"))?,
                    );
                }
                other => {
                    return Err(format!(
                        "unknown fault {other:?}: expected throttle, fail, down, delay, outage, missing, quota or \
                         quota_scale"
                    ));
                }
            }
        }
        if let Some(factor) = scale {
            let quota = faults
                .quota
                .ok_or_else(|| format!("quota_scale={factor}: scales a quota, but no quota= is given"))?;
            faults.quota = Some(quota.scaled(factor));
        }
        Ok(faults)
    }
}

fn within(window: Option<(Duration, Duration)>, elapsed: Duration) -> bool {
    window.is_some_and(|(start, length)| elapsed >= start && elapsed < start + length)
}

fn window(key: &str, value: &str) -> Result<(Duration, Duration), String> {
    let (start, length) = value
        .split_once('+')
        .ok_or_else(|| format!("{key}={value:?}: expected START+LENGTH, e.g. 8s+4s"))?;
    Ok((duration(key, start)?, duration(key, length)?))
}

fn share_of(key: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{key}={value:?}: expected a share from 0 to 1")),
    }
}

fn duration(key: &str, value: &str) -> Result<Duration, String> {
    let bad = || format!("{key}={value:?}: expected a duration such as 250, 250ms or 2s");
    if let Some(seconds) = value.strip_suffix("ms") {
        return seconds.parse().map(Duration::from_millis).map_err(|_| bad());
    }
    if let Some(seconds) = value.strip_suffix('s') {
        return seconds
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(bad);
    }
    value.parse().map(Duration::from_millis).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_item() {
        let f = Faults::parse("throttle=0.3, down=s1,delay=250ms,fail=0.05,outage=8s+4s,throttle=0.9:s0").unwrap();
        assert_eq!(f.throttle_share("s0"), 0.9);
        assert_eq!(f.throttle_share("s2"), 0.3);
        assert_eq!(f.down, vec!["s1"]);
        assert_eq!(f.delay, Duration::from_millis(250));
        assert_eq!(f.fail, 0.05);
        assert!(!f.in_outage(Duration::from_secs(7)));
        assert!(f.in_outage(Duration::from_secs(9)));
        assert!(!f.in_outage(Duration::from_secs(12)));
    }

    #[test]
    fn empty_and_none_mean_no_faults() {
        assert!(Faults::parse("").unwrap().is_none());
        assert!(Faults::parse("none").unwrap().is_none());
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        assert!(Faults::parse("throttle=1.5").is_err());
        assert!(Faults::parse("slow=1").is_err());
        assert!(Faults::parse("outage=5s").is_err());
        assert!(Faults::parse("missing=soon+2s").is_err());
        let missing = Faults::parse("missing=1s+2s").unwrap();
        assert!(missing.streams_missing(Duration::from_millis(1_500)));
        assert!(missing.in_outage(Duration::from_millis(1_500)));
        assert!(!missing.streams_missing(Duration::from_secs(3)));
        assert!(Faults::parse("delay=soon").is_err());
    }

    #[test]
    fn reads_a_scaled_quota_in_either_order() {
        let f = Faults::parse("quota_scale=0.001,quota=us-east-1").unwrap();
        let q = f.quota.unwrap();
        assert_eq!((q.records_per_s, q.requests_per_s), (500.0, 2.0));
        assert!(!f.is_none());
        let error = Faults::parse("quota=records:2000/requests:fifty").unwrap_err();
        assert!(error.contains("requests:fifty"), "{error}");
        assert!(Faults::parse("quota_scale=0.5").unwrap_err().contains("no quota"));
        assert!(Faults::parse("quota=other,quota_scale=-1").is_err());
    }
}
