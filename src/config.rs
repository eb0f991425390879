//! The function's configuration, read once at cold start.
//!
//! [`Config::from_lookup`] takes any `Fn(&str) -> Option<String>`, so tests
//! build configurations from a map and never touch the process environment;
//! [`Config::from_env`] is the same with `std::env::var`. Every error names
//! the variable, so a bad deployment fails at init with a message the
//! operator can act on.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::event::Formats;
use crate::limits::{BUCKET_NAME_LENGTH, DEFAULT_MAX_EVENTS_PER_RECORD, MAX_DELIVERY_STREAM_NAME, MAX_RECORD_SIZE};

/// Names of every environment variable the bridge reads. The deployment
/// template is checked against this list, so it is the one place to add one.
pub mod vars {
    pub const DELIVERY_STREAMS: &str = "DELIVERY_STREAMS";
    pub const REJECTS_DELIVERY_STREAM: &str = "REJECTS_DELIVERY_STREAM";
    pub const EVENT_SCHEMA_FILE: &str = "EVENT_SCHEMA_FILE";
    pub const EVENT_SCHEMA_FORMATS: &str = "EVENT_SCHEMA_FORMATS";
    pub const PACK_EVENTS: &str = "PACK_EVENTS";
    pub const MAX_RECORD_BYTES: &str = "MAX_RECORD_BYTES";
    pub const MAX_EVENTS_PER_RECORD: &str = "MAX_EVENTS_PER_RECORD";
    pub const MAX_PUT_ATTEMPTS: &str = "MAX_PUT_ATTEMPTS";
    pub const ON_PARTIAL_FAILURE: &str = "ON_PARTIAL_FAILURE";
    pub const METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
    pub const DEADLINE_SAFETY_MARGIN_MS: &str = "DEADLINE_SAFETY_MARGIN_MS";
    pub const BACKOFF_BASE_MS: &str = "BACKOFF_BASE_MS";
    pub const BACKOFF_MAX_MS: &str = "BACKOFF_MAX_MS";
    pub const UNDELIVERED_BUCKET: &str = "UNDELIVERED_BUCKET";
    pub const COMPRESSION: &str = "COMPRESSION";

    /// All of the above, in the order docs/configuration.md lists them.
    pub const ALL: &[&str] = &[
        DELIVERY_STREAMS,
        REJECTS_DELIVERY_STREAM,
        UNDELIVERED_BUCKET,
        EVENT_SCHEMA_FILE,
        EVENT_SCHEMA_FORMATS,
        COMPRESSION,
        PACK_EVENTS,
        MAX_RECORD_BYTES,
        MAX_EVENTS_PER_RECORD,
        MAX_PUT_ATTEMPTS,
        ON_PARTIAL_FAILURE,
        METRICS_NAMESPACE,
        DEADLINE_SAFETY_MARGIN_MS,
        BACKOFF_BASE_MS,
        BACKOFF_MAX_MS,
    ];
}

/// How the events of a Firehose record are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Newline-delimited JSON as it is; the delivery streams compress.
    None,
    /// Each record one gzip member of whole lines: Firehose bills and
    /// throttles on the compressed bytes. `MAX_EVENTS_PER_RECORD` does not
    /// apply (it exists for dynamic partitioning, which cannot read gzip).
    Gzip,
}

/// What to do with records that still fail after every resend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnPartialFailure {
    /// Keep each as a dead letter in an S3 object the function writes
    /// (`dead-letters/`, replayable), and move on; what S3 does not take is
    /// handed back to Kinesis.
    Log,
    /// Report the lowest undelivered sequence number in `batchItemFailures`,
    /// so the event source mapping retries from there.
    Retry,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The Firehose delivery streams the events are spread over (at least one).
    pub delivery_streams: Vec<String>,
    /// Where rejected records go, one JSON line each; `None` keeps them
    /// with the undelivered ones (S3, else the log).
    pub rejects_delivery_stream: Option<String>,
    /// The bucket whose `dead-letters/` and `rejects-unsent/` prefixes keep
    /// what could not be delivered; `None` keeps it in the log only.
    pub undelivered_bucket: Option<String>,
    /// A JSON Schema replacing the default event contract.
    pub event_schema_file: Option<PathBuf>,
    /// Whether that schema's `format` keywords are checked.
    pub event_schema_formats: Formats,
    /// How records are written.
    pub compression: Compression,
    /// Pack many events into each Firehose record.
    pub pack_events: bool,
    /// Most bytes a packed record holds (newlines included).
    pub max_record_bytes: usize,
    /// Most events a packed record holds.
    pub max_events_per_record: usize,
    /// Calls per record, the first included, before it is a dead letter.
    pub max_put_attempts: u32,
    pub on_partial_failure: OnPartialFailure,
    pub metrics_namespace: String,
    /// Calls stop this long before the invocation deadline (the time left
    /// for S3 and the answer); none starts with less than
    /// [`crate::limits::MIN_CALL_TIME`] left before that point.
    pub deadline_safety_margin: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is required: set it to a comma-separated list of Firehose delivery stream names")]
    Missing(&'static str),
    #[error("{var} is {value:?}: {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        expected: String,
    },
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`; unset and empty are the same.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        use vars::*;
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());

        let delivery_streams = parse_stream_list(get(DELIVERY_STREAMS))?;
        let rejects_delivery_stream = rejects_stream(get(REJECTS_DELIVERY_STREAM), &delivery_streams)?;
        let undelivered_bucket = get(UNDELIVERED_BUCKET);
        if let Some(bucket) = &undelivered_bucket {
            check_bucket_name(bucket)?;
        }
        let on_partial_failure = on_partial_failure(get(ON_PARTIAL_FAILURE))?;
        let event_schema_formats = formats(get(EVENT_SCHEMA_FORMATS))?;
        let compression = compression(get(COMPRESSION))?;
        let pack_events = flag(get(PACK_EVENTS), PACK_EVENTS, true)?;
        let backoff_base = millis(get(BACKOFF_BASE_MS), BACKOFF_BASE_MS, 50, 1..=60_000)?;
        let backoff_max = millis(get(BACKOFF_MAX_MS), BACKOFF_MAX_MS, 2_000, 1..=600_000)?;
        if backoff_max < backoff_base {
            return Err(invalid(
                BACKOFF_MAX_MS,
                &backoff_max.as_millis().to_string(),
                &format!("expected at least {BACKOFF_BASE_MS} ({})", backoff_base.as_millis()),
            ));
        }

        Ok(Config {
            delivery_streams,
            rejects_delivery_stream,
            undelivered_bucket,
            event_schema_file: get(EVENT_SCHEMA_FILE).map(PathBuf::from),
            event_schema_formats,
            compression,
            pack_events,
            max_record_bytes: number(
                get(MAX_RECORD_BYTES),
                MAX_RECORD_BYTES,
                MAX_RECORD_SIZE,
                1..=MAX_RECORD_SIZE,
            )?,
            max_events_per_record: number(
                get(MAX_EVENTS_PER_RECORD),
                MAX_EVENTS_PER_RECORD,
                DEFAULT_MAX_EVENTS_PER_RECORD,
                1..=DEFAULT_MAX_EVENTS_PER_RECORD,
            )?,
            max_put_attempts: number(get(MAX_PUT_ATTEMPTS), MAX_PUT_ATTEMPTS, 5, 1..=20)?,
            on_partial_failure,
            metrics_namespace: get(METRICS_NAMESPACE).unwrap_or_else(|| "KinesisFirehoseBridge".to_owned()),
            deadline_safety_margin: millis(
                get(DEADLINE_SAFETY_MARGIN_MS),
                DEADLINE_SAFETY_MARGIN_MS,
                1_000,
                0..=60_000,
            )?,
            backoff_base,
            backoff_max,
        })
    }
}

/// The rejects stream, which must not be one of the delivery streams.
fn rejects_stream(value: Option<String>, delivery_streams: &[String]) -> Result<Option<String>, ConfigError> {
    let Some(rejects) = value else { return Ok(None) };
    check_stream_name(vars::REJECTS_DELIVERY_STREAM, &rejects, &rejects)?;
    if delivery_streams.contains(&rejects) {
        return Err(invalid(
            vars::REJECTS_DELIVERY_STREAM,
            &rejects,
            &format!(
                "it is also in {}; reject lines would land among the events. Give rejects a delivery stream \
                 of their own",
                vars::DELIVERY_STREAMS
            ),
        ));
    }
    Ok(Some(rejects))
}

fn on_partial_failure(value: Option<String>) -> Result<OnPartialFailure, ConfigError> {
    match value.as_deref() {
        None | Some("log") => Ok(OnPartialFailure::Log),
        Some("retry") => Ok(OnPartialFailure::Retry),
        Some(other) => Err(invalid(vars::ON_PARTIAL_FAILURE, other, "expected `log` or `retry`")),
    }
}

fn formats(value: Option<String>) -> Result<Formats, ConfigError> {
    match value.as_deref() {
        None | Some("assert") => Ok(Formats::Assert),
        Some("annotate") => Ok(Formats::Annotate),
        Some(other) => Err(invalid(
            vars::EVENT_SCHEMA_FORMATS,
            other,
            "expected `assert` (a value that breaks its `format` is rejected) or `annotate`",
        )),
    }
}

fn compression(value: Option<String>) -> Result<Compression, ConfigError> {
    match value.as_deref() {
        None | Some("none") => Ok(Compression::None),
        Some("gzip") => Ok(Compression::Gzip),
        Some(other) => Err(invalid(vars::COMPRESSION, other, "expected `gzip` or `none`")),
    }
}

fn flag(value: Option<String>, var: &'static str, default: bool) -> Result<bool, ConfigError> {
    match value.as_deref() {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(invalid(var, other, "expected `true` or `false`")),
    }
}

/// Delivery stream names: 1 to 64 characters of `[a-zA-Z0-9_.-]`
/// (Firehose API reference, `DeliveryStreamName`).
fn parse_stream_list(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let value = value.ok_or(ConfigError::Missing(vars::DELIVERY_STREAMS))?;
    let streams: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
    for name in &streams {
        check_stream_name(vars::DELIVERY_STREAMS, &value, name)?;
    }
    Ok(streams)
}

fn check_stream_name(var: &'static str, value: &str, name: &str) -> Result<(), ConfigError> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if name.is_empty() || name.len() > MAX_DELIVERY_STREAM_NAME || !name.chars().all(valid_char) {
        return Err(invalid(
            var,
            value,
            &format!("{name:?} is not a delivery stream name (1-64 characters of a-z A-Z 0-9 _ . -)"),
        ));
    }
    Ok(())
}

/// S3 general purpose bucket names: 3 to 63 characters of lowercase
/// letters, digits, dots and hyphens, beginning and ending with a letter or
/// digit (S3 User Guide, "Bucket naming rules").
fn check_bucket_name(name: &str) -> Result<(), ConfigError> {
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-');
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !BUCKET_NAME_LENGTH.contains(&name.len())
        || !name.chars().all(valid_char)
        || !edge(name.chars().next())
        || !edge(name.chars().last())
    {
        return Err(invalid(
            vars::UNDELIVERED_BUCKET,
            name,
            "expected an S3 bucket name (3-63 characters of a-z 0-9 . -, starting and ending with a letter or digit)",
        ));
    }
    Ok(())
}

fn number<T>(
    value: Option<String>,
    var: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let Some(value) = value else { return Ok(default) };
    match value.parse::<T>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(invalid(
            var,
            &value,
            &format!("expected a whole number from {} to {}", range.start(), range.end()),
        )),
    }
}

fn millis(
    value: Option<String>,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    number(value, var, default, range).map(Duration::from_millis)
}

fn invalid(var: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_documented_values() {
        let c = config(&[("DELIVERY_STREAMS", "a")]).unwrap();
        assert_eq!(c.delivery_streams, vec!["a"]);
        assert!(c.pack_events);
        assert_eq!(c.max_record_bytes, 1_024_000);
        assert_eq!(c.max_events_per_record, 500);
        assert_eq!(c.max_put_attempts, 5);
        assert_eq!(c.on_partial_failure, OnPartialFailure::Log);
        assert_eq!(c.metrics_namespace, "KinesisFirehoseBridge");
        assert_eq!(c.rejects_delivery_stream, None);
        assert_eq!(c.event_schema_formats, Formats::Assert);
    }

    #[test]
    fn compression_is_gzip_or_none() {
        assert_eq!(
            config(&[("DELIVERY_STREAMS", "a")]).unwrap().compression,
            Compression::None
        );
        let c = config(&[("DELIVERY_STREAMS", "a"), ("COMPRESSION", "gzip")]).unwrap();
        assert_eq!(c.compression, Compression::Gzip);
        let err = config(&[("DELIVERY_STREAMS", "a"), ("COMPRESSION", "zstd")]).unwrap_err();
        assert!(err.to_string().starts_with("COMPRESSION is \"zstd\""), "{err}");
    }

    #[test]
    fn schema_formats_are_asserted_unless_annotated() {
        let c = config(&[("DELIVERY_STREAMS", "a"), ("EVENT_SCHEMA_FORMATS", "annotate")]).unwrap();
        assert_eq!(c.event_schema_formats, Formats::Annotate);
        let err = config(&[("DELIVERY_STREAMS", "a"), ("EVENT_SCHEMA_FORMATS", "yes")]).unwrap_err();
        assert!(err.to_string().starts_with("EVENT_SCHEMA_FORMATS"), "{err}");
    }

    #[test]
    fn missing_delivery_streams_names_the_variable() {
        let err = config(&[]).unwrap_err();
        assert!(err.to_string().starts_with("DELIVERY_STREAMS is required"), "{err}");
    }

    #[test]
    fn splits_and_trims_stream_list() {
        let c = config(&[("DELIVERY_STREAMS", " one, two ,three")]).unwrap();
        assert_eq!(c.delivery_streams, vec!["one", "two", "three"]);
    }

    #[test]
    fn rejects_empty_stream_name_in_list() {
        let err = config(&[("DELIVERY_STREAMS", "one,,two")]).unwrap_err();
        assert!(err.to_string().starts_with("DELIVERY_STREAMS is"), "{err}");
    }

    #[test]
    fn record_bytes_above_firehose_limit_is_an_error_naming_the_variable() {
        let err = config(&[("DELIVERY_STREAMS", "a"), ("MAX_RECORD_BYTES", "1024001")]).unwrap_err();
        assert!(err.to_string().starts_with("MAX_RECORD_BYTES is \"1024001\""), "{err}");
    }

    #[test]
    fn rejects_unknown_partial_failure_mode() {
        let err = config(&[("DELIVERY_STREAMS", "a"), ("ON_PARTIAL_FAILURE", "drop")]).unwrap_err();
        assert!(err.to_string().contains("ON_PARTIAL_FAILURE"), "{err}");
        let c = config(&[("DELIVERY_STREAMS", "a"), ("ON_PARTIAL_FAILURE", "retry")]).unwrap();
        assert_eq!(c.on_partial_failure, OnPartialFailure::Retry);
    }

    #[test]
    fn parses_pack_events_and_bounds_events_per_record() {
        let c = config(&[("DELIVERY_STREAMS", "a"), ("PACK_EVENTS", "FALSE")]).unwrap();
        assert!(!c.pack_events);
        assert!(config(&[("DELIVERY_STREAMS", "a"), ("PACK_EVENTS", "yes")]).is_err());
        assert!(config(&[("DELIVERY_STREAMS", "a"), ("MAX_EVENTS_PER_RECORD", "0")]).is_err());
        assert!(config(&[("DELIVERY_STREAMS", "a"), ("MAX_EVENTS_PER_RECORD", "501")]).is_err());
    }

    #[test]
    fn a_rejects_stream_among_the_delivery_streams_is_an_error_naming_both() {
        let err = config(&[("DELIVERY_STREAMS", "a,b"), ("REJECTS_DELIVERY_STREAM", "b")]).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("REJECTS_DELIVERY_STREAM is \"b\""), "{message}");
        assert!(message.contains("DELIVERY_STREAMS"), "{message}");
    }

    #[test]
    fn the_rejects_stream_follows_firehose_name_rules() {
        let err = config(&[("DELIVERY_STREAMS", "a"), ("REJECTS_DELIVERY_STREAM", "re jects")]).unwrap_err();
        assert!(err.to_string().starts_with("REJECTS_DELIVERY_STREAM"), "{err}");
        let c = config(&[("DELIVERY_STREAMS", "a"), ("REJECTS_DELIVERY_STREAM", "rejects")]).unwrap();
        assert_eq!(c.rejects_delivery_stream.as_deref(), Some("rejects"));
    }

    #[test]
    fn the_undelivered_bucket_follows_s3_name_rules() {
        for bad in ["Bucket", "ab", "-bucket", "bucket-", "bu_cket"] {
            let err = config(&[("DELIVERY_STREAMS", "a"), ("UNDELIVERED_BUCKET", bad)]).unwrap_err();
            assert!(err.to_string().starts_with("UNDELIVERED_BUCKET"), "{bad}: {err}");
        }
        let c = config(&[("DELIVERY_STREAMS", "a"), ("UNDELIVERED_BUCKET", "my.bucket-1")]).unwrap();
        assert_eq!(c.undelivered_bucket.as_deref(), Some("my.bucket-1"));
    }

    #[test]
    fn backoff_cap_below_base_is_an_error() {
        let err = config(&[
            ("DELIVERY_STREAMS", "a"),
            ("BACKOFF_BASE_MS", "500"),
            ("BACKOFF_MAX_MS", "100"),
        ])
        .unwrap_err();
        assert!(err.to_string().starts_with("BACKOFF_MAX_MS"), "{err}");
    }
}
