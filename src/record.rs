//! From Kinesis records to the events they carry.
//!
//! A plain record carries one event; a KPL aggregate carries many, each
//! known by its parent's sequence number and its sub-sequence index. A
//! corrupt aggregate, or one beyond the bridge's bounds, is one rejected
//! record: none of its contents can be trusted, and its bytes are kept
//! whole for the rejects stream. Events borrow their bytes and keys from
//! the batch, aggregates included.

use crate::batch::SourceRecord;
use crate::kpl::{self, Bounds, KplError};
use crate::limits::{MAX_AGGREGATE_EXPANSION, MAX_USER_RECORDS_PER_INVOCATION};
use crate::reason::Reason;

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// Index of the Kinesis record in the invocation's batch.
    pub record: usize,
    /// Index inside a KPL aggregate; `None` for a plain record.
    pub sub_sequence_number: Option<u64>,
}

/// One event as it came in, before validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming<'a> {
    pub origin: Origin,
    pub partition_key: &'a str,
    pub data: &'a [u8],
}

/// What a Kinesis record turned out to hold.
#[derive(Debug)]
pub enum Unpacked<'a> {
    /// A plain record: one event, its bytes borrowed from the batch.
    Event(Incoming<'a>),
    /// The user records of a KPL aggregate.
    Events(Vec<Incoming<'a>>),
    /// The record as a whole could not be opened.
    Rejected(Incoming<'a>, Reason),
    /// An aggregate with more user records than the invocation can still
    /// take, though not more than one invocation takes: it waits for the
    /// next invocation.
    Deferred,
}

/// Opens the record at `index` of the batch. An aggregate may give at most
/// `user_records_left` user records.
pub fn unpack<R: SourceRecord>(index: usize, record: &R, user_records_left: usize) -> Unpacked<'_> {
    let data = record.data();
    let partition_key = record.partition_key();
    let whole = Incoming {
        origin: Origin {
            record: index,
            sub_sequence_number: None,
        },
        partition_key,
        data,
    };
    if !kpl::is_aggregate(data) {
        return Unpacked::Event(whole);
    }
    let bounds = Bounds {
        max_user_records: user_records_left.min(MAX_USER_RECORDS_PER_INVOCATION),
        max_expansion: MAX_AGGREGATE_EXPANSION,
    };
    match kpl::deaggregate(data, bounds) {
        Err(KplError::TooManyUserRecords { count, .. }) if count <= MAX_USER_RECORDS_PER_INVOCATION => {
            Unpacked::Deferred
        }
        Err(KplError::TooManyUserRecords { count, .. }) => Unpacked::Rejected(
            whole,
            Reason::AggregateOverLimit(KplError::TooManyUserRecords {
                count,
                limit: MAX_USER_RECORDS_PER_INVOCATION,
            }),
        ),
        Err(e) if e.is_over_limit() => Unpacked::Rejected(whole, Reason::AggregateOverLimit(e)),
        Err(e) => Unpacked::Rejected(whole, Reason::CorruptAggregate(e)),
        Ok(users) if users.is_empty() => Unpacked::Rejected(whole, Reason::EmptyAggregate),
        Ok(users) => Unpacked::Events(
            users
                .into_iter()
                .enumerate()
                .map(|(sub, user)| Incoming {
                    origin: Origin {
                        record: index,
                        sub_sequence_number: Some(sub as u64),
                    },
                    partition_key: user.partition_key,
                    data: user.data,
                })
                .collect(),
        ),
    }
}

/// Orders Kinesis sequence numbers: decimal strings of up to 128 digits,
/// too long for any integer type.
pub fn compare_sequence_numbers(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// The lower by sequence number of two records, either possibly absent.
pub fn lowest_of<R: SourceRecord>(records: &[R], a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => {
            let order = compare_sequence_numbers(records[b].sequence_number(), records[a].sequence_number());
            Some(if order.is_lt() { b } else { a })
        }
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    fn record(data: &[u8]) -> aws_lambda_events::event::kinesis::KinesisEventRecord {
        let b64 = base64_simd::STANDARD.encode_to_string(data);
        serde_json::from_value(serde_json::json!({
            "kinesis": {
                "partitionKey": "pk",
                "sequenceNumber": "4959",
                "data": b64,
                "approximateArrivalTimestamp": 1764072000.5,
                "kinesisSchemaVersion": "1.0"
            },
            "eventSource": "aws:kinesis",
            "eventID": "shardId-000000000000:4959"
        }))
        .unwrap()
    }

    #[test]
    fn plain_record_is_one_event_borrowing_its_bytes() {
        let r = record(b"{}");
        let Unpacked::Event(event) = unpack(7, &r, usize::MAX) else {
            panic!("not a plain event")
        };
        let origin = Origin {
            record: 7,
            sub_sequence_number: None,
        };
        assert_eq!(event.origin, origin);
        assert_eq!(event.data, b"{}");
        assert_eq!(event.data.as_ptr(), r.data().as_ptr(), "borrowed, not copied");
    }

    #[test]
    fn aggregate_yields_user_records_with_sub_sequence_numbers() {
        let r = record(&kpl::aggregate([("a", &b"1"[..]), ("b", b"2")]));
        let Unpacked::Events(events) = unpack(0, &r, usize::MAX) else {
            panic!("rejected")
        };
        let subs: Vec<_> = events
            .iter()
            .map(|e| (e.origin.sub_sequence_number, e.partition_key))
            .collect();
        assert_eq!(subs, vec![(Some(0), "a"), (Some(1), "b")]);
    }

    #[test]
    fn corrupt_aggregate_is_rejected_whole_with_its_bytes() {
        let mut bytes = kpl::aggregate([("a", &b"1"[..])]);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let r = record(&bytes);
        let Unpacked::Rejected(incoming, reason) = unpack(0, &r, usize::MAX) else {
            panic!("accepted")
        };
        assert_eq!(reason.code(), "corrupt_aggregate");
        assert_eq!(incoming.data, &bytes[..]);
    }

    #[test]
    fn an_aggregate_too_large_for_any_invocation_is_rejected_whole_with_its_own_reason() {
        let users = MAX_USER_RECORDS_PER_INVOCATION + 1;
        let bytes = kpl::aggregate((0..users).map(|_| ("k", &b""[..])));
        let r = record(&bytes);
        let Unpacked::Rejected(incoming, reason) = unpack(3, &r, usize::MAX) else {
            panic!("accepted")
        };
        assert_eq!(reason.code(), "aggregate_over_limit");
        assert_eq!(incoming.data, &bytes[..]);
        assert_eq!(incoming.origin.sub_sequence_number, None);
    }

    #[test]
    fn an_aggregate_too_large_for_what_is_left_of_the_invocation_waits_for_the_next() {
        let bytes = kpl::aggregate((0..10).map(|_| ("k", &b"{}"[..])));
        let r = record(&bytes);
        assert!(matches!(unpack(0, &r, 9), Unpacked::Deferred));
        assert!(matches!(unpack(0, &r, 10), Unpacked::Events(e) if e.len() == 10));
    }

    #[test]
    fn empty_aggregate_is_rejected_not_dropped() {
        let r = record(&kpl::aggregate([]));
        assert!(matches!(
            unpack(0, &r, usize::MAX),
            Unpacked::Rejected(_, Reason::EmptyAggregate)
        ));
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(compare_sequence_numbers("9", "10"), Ordering::Less);
        assert_eq!(
            compare_sequence_numbers(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692538361571095921575989136588899"
            ),
            Ordering::Less
        );
        assert_eq!(compare_sequence_numbers("007", "7"), Ordering::Equal);
    }
}
