//! Why a record or event was rejected: the `reason` of every reject line,
//! and the key of the summary's `rejected_by_reason`.

use thiserror::Error;

use crate::kpl::KplError;
use crate::limits::MAX_RECORD_SIZE;

/// Why an incoming record or event was rejected. [`Reason::code`] is stable
/// for dashboards and queries; the message says what to fix.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Reason {
    #[error("{0}")]
    CorruptAggregate(KplError),
    #[error("{0}")]
    AggregateOverLimit(KplError),
    #[error("KPL aggregate holds no user records")]
    EmptyAggregate,
    #[error("event is not valid UTF-8 (first bad byte at offset {0})")]
    NotUtf8(usize),
    #[error("event is not valid JSON: {0}")]
    NotJson(String),
    #[error("event is JSON but not an object")]
    NotAnObject,
    #[error("event has no `event_type`")]
    MissingEventType,
    #[error("`event_type` must be a non-empty string")]
    InvalidEventType,
    #[error("event has no `timestamp`")]
    MissingTimestamp,
    #[error("`timestamp` must be an RFC 3339 date-time string, e.g. 2026-11-25T12:00:00Z")]
    InvalidTimestamp,
    #[error("field `{0}` appears more than once")]
    DuplicateField(&'static str),
    #[error("event does not match the schema: {0}")]
    SchemaViolation(String),
    #[error("event line is {0} bytes with its newline; a Firehose record holds at most {MAX_RECORD_SIZE}")]
    TooLarge(usize),
    #[error("event line is {0} bytes once compressed alone; a Firehose record holds at most {MAX_RECORD_SIZE}")]
    TooLargeCompressed(usize),
}

impl Reason {
    /// Every code [`Reason::code`] gives, once each, in the order of the
    /// variants.
    pub const CODES: &[&str] = &[
        "corrupt_aggregate",
        "aggregate_over_limit",
        "empty_aggregate",
        "not_utf8",
        "not_json",
        "not_an_object",
        "missing_event_type",
        "invalid_event_type",
        "missing_timestamp",
        "invalid_timestamp",
        "duplicate_field",
        "schema_violation",
        "too_large",
    ];

    pub fn code(&self) -> &'static str {
        match self {
            Reason::CorruptAggregate(_) => "corrupt_aggregate",
            Reason::AggregateOverLimit(_) => "aggregate_over_limit",
            Reason::EmptyAggregate => "empty_aggregate",
            Reason::NotUtf8(_) => "not_utf8",
            Reason::NotJson(_) => "not_json",
            Reason::NotAnObject => "not_an_object",
            Reason::MissingEventType => "missing_event_type",
            Reason::InvalidEventType => "invalid_event_type",
            Reason::MissingTimestamp => "missing_timestamp",
            Reason::InvalidTimestamp => "invalid_timestamp",
            Reason::DuplicateField(_) => "duplicate_field",
            Reason::SchemaViolation(_) => "schema_violation",
            Reason::TooLarge(_) | Reason::TooLargeCompressed(_) => "too_large",
        }
    }
}
