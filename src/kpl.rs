//! Kinesis Producer Library (KPL) aggregated records.
//!
//! An aggregate is `magic (4 bytes) | protobuf AggregatedRecord | MD5 of the
//! protobuf (16 bytes)`, as written by the KPL and by awslabs'
//! `aws_kinesis_agg`. The format is described in the KPL's
//! `aggregation-format.md`; the messages below mirror its `messages.proto`.
//!
//! [`deaggregate`] reads the protobuf itself, without copying: every user
//! record's data and keys are slices of the aggregate, so a partition key
//! shared by thousands of user records is held once, however long it is.
//! It counts the user records before decoding any of them and checks what
//! they expand to against [`Bounds`], so that a small hostile aggregate
//! cannot turn into gigabytes. Building aggregates ([`build`], with `prost`'s
//! messages, also the reference decoder the tests compare against) is for
//! tests, benchmarks and the local load generator: behind the `builders`
//! feature, so the function does not carry it.

use md5::{Digest, Md5};
use thiserror::Error;

use crate::limits::{MAX_AGGREGATE_EXPANSION, MAX_USER_RECORDS_PER_INVOCATION};

/// First four bytes of every aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
pub(crate) const DIGEST_LEN: usize = 16;

#[cfg(any(test, feature = "builders"))]
mod build;
#[cfg(any(test, feature = "builders"))]
pub use build::{AggregatedRecord, Record, Tag, aggregate, seal, seal_body};

/// One user record taken out of an aggregate, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRecord<'a> {
    pub partition_key: &'a str,
    pub explicit_hash_key: Option<&'a str>,
    pub data: &'a [u8],
}

/// How far one aggregate may expand before it is rejected whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most user records.
    pub max_user_records: usize,
    /// Most bytes of data and keys, counted per user record.
    pub max_expansion: usize,
}

impl Bounds {
    /// The bridge's limits for an aggregate alone in its invocation.
    pub const DEFAULT: Bounds = Bounds {
        max_user_records: MAX_USER_RECORDS_PER_INVOCATION,
        max_expansion: MAX_AGGREGATE_EXPANSION,
    };

    /// No bounds: what the format allows.
    pub const NONE: Bounds = Bounds {
        max_user_records: usize::MAX,
        max_expansion: usize::MAX,
    };
}

/// Why an aggregate could not be opened. The whole Kinesis record is
/// rejected with this reason: none of its user records can be trusted.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum KplError {
    #[error("record does not start with the KPL magic bytes")]
    NotAnAggregate,
    #[error("KPL aggregate of {0} bytes is shorter than its magic and MD5 trailer")]
    Truncated(usize),
    #[error("KPL aggregate's MD5 trailer does not match its body")]
    ChecksumMismatch,
    #[error("KPL aggregate body is not a valid AggregatedRecord: {0}")]
    Malformed(String),
    #[error("KPL user record {record} points at partition key {index}, but the table has {len}")]
    PartitionKeyOutOfRange { record: usize, index: u64, len: usize },
    #[error("KPL user record {record} points at explicit hash key {index}, but the table has {len}")]
    ExplicitHashKeyOutOfRange { record: usize, index: u64, len: usize },
    #[error(
        "KPL aggregate holds {count} user records, more than the {limit} one invocation takes; rejected whole, \
         without decoding them"
    )]
    TooManyUserRecords { count: usize, limit: usize },
    #[error("KPL aggregate's user records and their keys come to more than {limit} bytes; rejected whole")]
    ExpandsTooFar { limit: usize },
}

impl KplError {
    /// Whether the aggregate is well-formed but beyond the bridge's bounds.
    pub fn is_over_limit(&self) -> bool {
        matches!(
            self,
            KplError::TooManyUserRecords { .. } | KplError::ExpandsTooFar { .. }
        )
    }
}

/// Whether `data` claims to be an aggregate (it may still be corrupt).
pub fn is_aggregate(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// Opens an aggregate: checks the MD5 trailer, counts the user records,
/// then decodes them and resolves their keys, within `bounds`. Index `i`
/// of the result is the user record's sub-sequence number.
pub fn deaggregate(data: &[u8], bounds: Bounds) -> Result<Vec<UserRecord<'_>>, KplError> {
    decode(body(data)?, bounds)
}

/// The protobuf inside the magic and the MD5 trailer, checked.
pub fn body(data: &[u8]) -> Result<&[u8], KplError> {
    if !is_aggregate(data) {
        return Err(KplError::NotAnAggregate);
    }
    if data.len() < MAGIC.len() + DIGEST_LEN {
        return Err(KplError::Truncated(data.len()));
    }
    let (body, digest) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - DIGEST_LEN);
    if Md5::digest(body).as_slice() != digest {
        return Err(KplError::ChecksumMismatch);
    }
    Ok(body)
}

/// Decodes an `AggregatedRecord` body, as `prost` would, within `bounds`.
pub fn decode(body: &[u8], bounds: Bounds) -> Result<Vec<UserRecord<'_>>, KplError> {
    let mut keys: Vec<&str> = Vec::new();
    let mut hash_keys: Vec<&str> = Vec::new();
    let mut messages: Vec<&[u8]> = Vec::new();
    let mut count = 0usize;
    let mut wire = Wire::new(body);
    while !wire.is_empty() {
        match wire.key()? {
            (1, LEN) => keys.push(wire.string()?),
            (2, LEN) => hash_keys.push(wire.string()?),
            (3, LEN) => {
                let message = wire.bytes()?;
                count += 1;
                if count <= bounds.max_user_records {
                    messages.push(message);
                }
            }
            (field @ 1..=3, kind) => return Err(wrong_wire_type("AggregatedRecord", field, kind)),
            (field, kind) => wire.skip(field, kind, 0)?,
        }
    }
    if count > bounds.max_user_records {
        return Err(KplError::TooManyUserRecords {
            count,
            limit: bounds.max_user_records,
        });
    }

    let mut records = Vec::with_capacity(messages.len());
    let mut expansion = 0usize;
    for (record, message) in messages.into_iter().enumerate() {
        let (key_index, hash_key_index, data) = user_record(message)?;
        let partition_key = lookup(&keys, key_index).ok_or(KplError::PartitionKeyOutOfRange {
            record,
            index: key_index,
            len: keys.len(),
        })?;
        let explicit_hash_key = match hash_key_index {
            None => None,
            Some(index) => Some(lookup(&hash_keys, index).ok_or(KplError::ExplicitHashKeyOutOfRange {
                record,
                index,
                len: hash_keys.len(),
            })?),
        };
        expansion = expansion
            .saturating_add(data.len())
            .saturating_add(partition_key.len())
            .saturating_add(explicit_hash_key.map_or(0, str::len));
        if expansion > bounds.max_expansion {
            return Err(KplError::ExpandsTooFar {
                limit: bounds.max_expansion,
            });
        }
        records.push(UserRecord {
            partition_key,
            explicit_hash_key,
            data,
        });
    }
    Ok(records)
}

/// One `Record` message: partition key index, explicit hash key index, data.
fn user_record(message: &[u8]) -> Result<(u64, Option<u64>, &[u8]), KplError> {
    let (mut key_index, mut hash_key_index, mut data) = (0, None, &[][..]);
    let mut wire = Wire::new(message);
    while !wire.is_empty() {
        match wire.key()? {
            (1, VARINT) => key_index = wire.varint()?,
            (2, VARINT) => hash_key_index = Some(wire.varint()?),
            (3, LEN) => data = wire.bytes()?,
            (4, LEN) => tag(wire.bytes()?)?,
            (field @ 1..=4, kind) => return Err(wrong_wire_type("Record", field, kind)),
            (field, kind) => wire.skip(field, kind, 0)?,
        }
    }
    Ok((key_index, hash_key_index, data))
}

/// A `Tag` message: the bridge ignores tags, but like `prost` it refuses a
/// malformed one.
fn tag(message: &[u8]) -> Result<(), KplError> {
    let mut wire = Wire::new(message);
    while !wire.is_empty() {
        match wire.key()? {
            (1 | 2, LEN) => drop(wire.string()?),
            (field @ 1..=2, kind) => return Err(wrong_wire_type("Tag", field, kind)),
            (field, kind) => wire.skip(field, kind, 0)?,
        }
    }
    Ok(())
}

fn lookup<'a>(table: &[&'a str], index: u64) -> Option<&'a str> {
    usize::try_from(index).ok().and_then(|i| table.get(i)).copied()
}

fn wrong_wire_type(message: &str, field: u32, kind: u8) -> KplError {
    KplError::Malformed(format!("{message} field {field} has wire type {kind}"))
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;
/// `prost`'s recursion limit, which also bounds nested groups.
const MAX_DEPTH: u32 = 100;

/// The protobuf wire format, read from a slice (protobuf.dev, "Encoding").
struct Wire<'a> {
    rest: &'a [u8],
}

impl<'a> Wire<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Wire { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn varint(&mut self) -> Result<u64, KplError> {
        let mut value = 0u64;
        for (i, &byte) in self.rest.iter().enumerate().take(10) {
            // The tenth byte holds the 64th bit only.
            if i == 9 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7F) << (7 * i);
            if byte < 0x80 {
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        Err(KplError::Malformed("invalid varint".to_owned()))
    }

    /// A field's number and wire type.
    fn key(&mut self) -> Result<(u32, u8), KplError> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| KplError::Malformed(format!("invalid key value: {key}")))?;
        let kind = (key & 7) as u8;
        if kind > FIXED32 {
            return Err(KplError::Malformed(format!("invalid wire type value: {kind}")));
        }
        let field = key >> 3;
        if field == 0 {
            return Err(KplError::Malformed("invalid tag value: 0".to_owned()));
        }
        Ok((field, kind))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], KplError> {
        if n > self.rest.len() {
            return Err(KplError::Malformed("buffer underflow".to_owned()));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn bytes(&mut self) -> Result<&'a [u8], KplError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| KplError::Malformed("buffer underflow".to_owned()))?;
        self.take(len)
    }

    fn string(&mut self) -> Result<&'a str, KplError> {
        let bytes = self.bytes()?;
        std::str::from_utf8(bytes)
            .map_err(|_| KplError::Malformed("invalid string value: data is not UTF-8 encoded".to_owned()))
    }

    /// Skips a field the bridge does not read, groups included.
    fn skip(&mut self, field: u32, kind: u8, depth: u32) -> Result<(), KplError> {
        match kind {
            VARINT => drop(self.varint()?),
            FIXED64 => drop(self.take(8)?),
            LEN => drop(self.bytes()?),
            FIXED32 => drop(self.take(4)?),
            START_GROUP => {
                if depth >= MAX_DEPTH {
                    return Err(KplError::Malformed("recursion limit reached".to_owned()));
                }
                loop {
                    if self.is_empty() {
                        return Err(KplError::Malformed("unterminated group".to_owned()));
                    }
                    match self.key()? {
                        (end, END_GROUP) if end == field => break,
                        (_, END_GROUP) => return Err(KplError::Malformed("unexpected end group tag".to_owned())),
                        (inner, inner_kind) => self.skip(inner, inner_kind, depth + 1)?,
                    }
                }
            }
            _ => return Err(KplError::Malformed("unexpected end group tag".to_owned())),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;

    fn open(data: &[u8]) -> Result<Vec<UserRecord<'_>>, KplError> {
        deaggregate(data, Bounds::NONE)
    }

    #[test]
    fn round_trips_user_records_in_order() {
        let built = aggregate([("a", &b"one"[..]), ("b", b"two"), ("a", b"three")]);
        let records = open(&built).unwrap();
        let seen: Vec<(&str, &[u8])> = records.iter().map(|r| (r.partition_key, r.data)).collect();
        assert_eq!(seen, vec![("a", &b"one"[..]), ("b", b"two"), ("a", b"three")]);
    }

    #[test]
    fn user_records_borrow_one_shared_key_from_the_table() {
        let key = "k".repeat(20_000);
        let built = aggregate((0..3).map(|_| (key.as_str(), &b""[..])));
        let records = open(&built).unwrap();
        let body = &built[MAGIC.len()..built.len() - DIGEST_LEN];
        let inside = body.as_ptr_range();
        for r in &records {
            assert!(
                inside.contains(&r.partition_key.as_ptr()),
                "the key is a slice of the aggregate"
            );
            assert_eq!(r.partition_key.as_ptr(), records[0].partition_key.as_ptr());
        }
    }

    #[test]
    fn rejects_a_flipped_byte_by_checksum() {
        let mut built = aggregate([("a", &b"payload"[..])]);
        let middle = built.len() / 2;
        built[middle] ^= 0x01;
        assert_eq!(open(&built), Err(KplError::ChecksumMismatch));
    }

    #[test]
    fn rejects_truncated_aggregates_and_records_without_the_magic() {
        let built = aggregate([("a", &b"payload"[..])]);
        assert_eq!(open(&built[..10]), Err(KplError::Truncated(10)));
        // Cut inside the body: the trailer no longer matches.
        assert_eq!(open(&built[..built.len() - 3]), Err(KplError::ChecksumMismatch));
        assert_eq!(open(b"{\"a\":1}"), Err(KplError::NotAnAggregate));
        assert_eq!(open(&MAGIC[..3]), Err(KplError::NotAnAggregate));
    }

    #[test]
    fn rejects_a_body_that_is_not_protobuf_even_with_a_valid_checksum() {
        assert!(matches!(
            open(&seal_body(&[0xFF, 0xFF, 0xFF])),
            Err(KplError::Malformed(_))
        ));
    }

    #[test]
    fn rejects_partition_key_index_outside_the_table() {
        let aggregate = AggregatedRecord {
            partition_key_table: vec!["only".into()],
            explicit_hash_key_table: vec![],
            records: vec![Record {
                partition_key_index: 3,
                explicit_hash_key_index: None,
                data: b"x".to_vec(),
                tags: vec![],
            }],
        };
        assert_eq!(
            open(&seal(&aggregate)),
            Err(KplError::PartitionKeyOutOfRange {
                record: 0,
                index: 3,
                len: 1
            })
        );
    }

    #[test]
    fn rejects_explicit_hash_key_index_outside_the_table() {
        let aggregate = AggregatedRecord {
            partition_key_table: vec!["pk".into()],
            explicit_hash_key_table: vec![],
            records: vec![Record {
                partition_key_index: 0,
                explicit_hash_key_index: Some(0),
                data: b"x".to_vec(),
                tags: vec![],
            }],
        };
        assert!(matches!(
            open(&seal(&aggregate)),
            Err(KplError::ExplicitHashKeyOutOfRange { .. })
        ));
    }

    #[test]
    fn an_empty_aggregate_holds_no_records() {
        assert_eq!(open(&seal(&AggregatedRecord::default())), Ok(vec![]));
    }

    #[test]
    fn too_many_user_records_are_refused_before_any_is_decoded() {
        let built = aggregate((0..1_000).map(|_| ("k", &b""[..])));
        let bounds = Bounds {
            max_user_records: 999,
            max_expansion: usize::MAX,
        };
        assert_eq!(
            deaggregate(&built, bounds),
            Err(KplError::TooManyUserRecords {
                count: 1_000,
                limit: 999
            })
        );
        let within = Bounds {
            max_user_records: 1_000,
            ..bounds
        };
        assert_eq!(deaggregate(&built, within).unwrap().len(), 1_000);
    }

    #[test]
    fn a_shared_key_counts_once_per_user_record_against_the_expansion_bound() {
        let key = "k".repeat(1_000);
        let built = aggregate((0..10).map(|_| (key.as_str(), &b"xx"[..])));
        let at = |max_expansion| Bounds {
            max_user_records: usize::MAX,
            max_expansion,
        };
        assert!(deaggregate(&built, at(10 * 1_002)).is_ok());
        assert_eq!(
            deaggregate(&built, at(10 * 1_002 - 1)),
            Err(KplError::ExpandsTooFar { limit: 10_019 })
        );
        assert!(KplError::ExpandsTooFar { limit: 1 }.is_over_limit());
        assert!(!KplError::ChecksumMismatch.is_over_limit());
    }

    #[test]
    fn skips_unknown_fields_and_groups_like_prost() {
        // Field 9 as a varint, a fixed64, a group holding a field, then a record.
        let mut body = vec![0x48, 0x01, 0x49, 0, 0, 0, 0, 0, 0, 0, 0, 0x4B, 0x50, 0x05, 0x4C];
        body.extend(
            AggregatedRecord {
                partition_key_table: vec!["pk".into()],
                explicit_hash_key_table: vec![],
                records: vec![Record {
                    partition_key_index: 0,
                    explicit_hash_key_index: None,
                    data: b"x".to_vec(),
                    tags: vec![Tag {
                        key: "t".into(),
                        value: None,
                    }],
                }],
            }
            .encode_to_vec(),
        );
        let ours = decode(&body, Bounds::NONE).unwrap();
        let reference = AggregatedRecord::decode(&body[..]).unwrap();
        assert_eq!(ours.len(), reference.records.len());
        assert_eq!(ours[0].data, b"x");
        // An end-group tag with no group open is malformed for both.
        assert!(decode(&[0x4C], Bounds::NONE).is_err());
        assert!(AggregatedRecord::decode(&[0x4Cu8][..]).is_err());
    }

    /// Protobuf bodies: well-formed aggregates, some with their bytes
    /// mutated or cut.
    fn bodies() -> impl Strategy<Value = Vec<u8>> {
        let key = || proptest::string::string_regex("[a-z\u{e9}]{0,6}").unwrap();
        let record = (
            0u64..4,
            proptest::option::of(0u64..3),
            proptest::collection::vec(any::<u8>(), 0..20),
        )
            .prop_map(|(pk, ehk, data)| Record {
                partition_key_index: pk,
                explicit_hash_key_index: ehk,
                data,
                tags: vec![],
            });
        let aggregate = (
            proptest::collection::vec(key(), 0..4),
            proptest::collection::vec(key(), 0..3),
            proptest::collection::vec(record, 0..8),
        )
            .prop_map(|(keys, hash_keys, records)| {
                AggregatedRecord {
                    partition_key_table: keys,
                    explicit_hash_key_table: hash_keys,
                    records,
                }
                .encode_to_vec()
            });
        (
            aggregate,
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
            any::<Option<usize>>(),
        )
            .prop_map(|(mut body, flips, cut)| {
                if !body.is_empty() {
                    for (at, byte) in flips {
                        let at = at % body.len();
                        body[at] = byte;
                    }
                }
                if let Some(cut) = cut {
                    body.truncate(cut % (body.len() + 1));
                }
                body
            })
    }

    /// A user record as data: partition key, explicit hash key, data.
    type Resolved = (String, Option<String>, Vec<u8>);

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

        /// The hand-written decoder agrees with `prost` on every body:
        /// the same user records, or an error from both.
        #[test]
        fn decodes_exactly_as_prost_does(body in bodies()) {
            let ours = decode(&body, Bounds::NONE);
            let reference = AggregatedRecord::decode(&body[..]);
            match (ours, reference) {
                (Ok(ours), Ok(reference)) => {
                    let resolved: Option<Vec<Resolved>> = reference
                        .records
                        .iter()
                        .map(|r| {
                            let key = reference.partition_key_table.get(r.partition_key_index as usize)?.clone();
                            let hash_key = match r.explicit_hash_key_index {
                                None => None,
                                Some(i) => Some(reference.explicit_hash_key_table.get(i as usize)?.clone()),
                            };
                            Some((key, hash_key, r.data.clone()))
                        })
                        .collect();
                    let resolved = resolved.expect("indexes resolved by ours resolve in prost's too");
                    let ours: Vec<Resolved> = ours
                        .iter()
                        .map(|r| (r.partition_key.to_owned(), r.explicit_hash_key.map(str::to_owned), r.data.to_vec()))
                        .collect();
                    prop_assert_eq!(ours, resolved);
                }
                (Err(KplError::PartitionKeyOutOfRange { .. } | KplError::ExplicitHashKeyOutOfRange { .. }), Ok(_)) => {}
                (Err(_), Err(_)) => {}
                (ours, reference) => prop_assert!(false, "ours {:?}, prost {:?}", ours, reference),
            }
        }
    }
}
