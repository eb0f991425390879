//! Kinesis Producer Library (KPL) aggregated records.
//!
//! An aggregate is `magic (4 bytes) | protobuf AggregatedRecord | MD5 of the
//! protobuf (16 bytes)`, as written by the KPL and by awslabs'
//! `aws_kinesis_agg`. The format is described in the KPL's
//! `aggregation-format.md`; the messages below mirror its `messages.proto`.

use md5::{Digest, Md5};
use prost::Message;
use thiserror::Error;

/// First four bytes of every aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Record {
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    #[prost(bytes = "vec", required, tag = "3")]
    pub data: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// One user record taken out of an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

/// Why an aggregate could not be opened. The whole Kinesis record is
/// rejected with this reason: none of its user records can be trusted.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum KplError {
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
}

/// Whether `data` claims to be an aggregate (it may still be corrupt).
pub fn is_aggregate(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// Opens an aggregate: checks the MD5 trailer, decodes the protobuf and
/// resolves each user record's keys. Index `i` of the result is the user
/// record's sub-sequence number.
pub fn deaggregate(data: &[u8]) -> Result<Vec<UserRecord>, KplError> {
    if data.len() < MAGIC.len() + DIGEST_LEN || !is_aggregate(data) {
        return Err(KplError::Truncated(data.len()));
    }
    let (body, digest) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - DIGEST_LEN);
    if Md5::digest(body).as_slice() != digest {
        return Err(KplError::ChecksumMismatch);
    }
    let aggregate = AggregatedRecord::decode(body).map_err(|e| KplError::Malformed(e.to_string()))?;
    let AggregatedRecord {
        partition_key_table: keys,
        explicit_hash_key_table: hash_keys,
        records,
    } = aggregate;
    records
        .into_iter()
        .enumerate()
        .map(|(record, r)| {
            let partition_key = lookup(&keys, r.partition_key_index).ok_or(KplError::PartitionKeyOutOfRange {
                record,
                index: r.partition_key_index,
                len: keys.len(),
            })?;
            let explicit_hash_key = match r.explicit_hash_key_index {
                None => None,
                Some(index) => Some(lookup(&hash_keys, index).ok_or(KplError::ExplicitHashKeyOutOfRange {
                    record,
                    index,
                    len: hash_keys.len(),
                })?),
            };
            Ok(UserRecord {
                partition_key: partition_key.clone(),
                explicit_hash_key: explicit_hash_key.cloned(),
                data: r.data,
            })
        })
        .collect()
}

fn lookup(table: &[String], index: u64) -> Option<&String> {
    usize::try_from(index).ok().and_then(|i| table.get(i))
}

/// Builds an aggregate the way the KPL does. The bridge never writes
/// aggregates; tests, benchmarks and the local load generator do.
pub fn aggregate<'a>(records: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut keys: Vec<String> = Vec::new();
    let mut aggregate = AggregatedRecord::default();
    for (key, data) in records {
        let index = match keys.iter().position(|k| k == key) {
            Some(i) => i,
            None => {
                keys.push(key.to_owned());
                keys.len() - 1
            }
        };
        aggregate.records.push(Record {
            partition_key_index: index as u64,
            explicit_hash_key_index: None,
            data: data.to_vec(),
            tags: Vec::new(),
        });
    }
    aggregate.partition_key_table = keys;
    seal(&aggregate)
}

/// Frames an `AggregatedRecord` with the magic and MD5 trailer.
pub fn seal(aggregate: &AggregatedRecord) -> Vec<u8> {
    let body = aggregate.encode_to_vec();
    let mut out = Vec::with_capacity(MAGIC.len() + body.len() + DIGEST_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(Md5::digest(&body).as_slice());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_user_records_in_order() {
        let built = aggregate([("a", &b"one"[..]), ("b", b"two"), ("a", b"three")]);
        let records = deaggregate(&built).unwrap();
        let seen: Vec<(&str, &[u8])> = records
            .iter()
            .map(|r| (r.partition_key.as_str(), &r.data[..]))
            .collect();
        assert_eq!(seen, vec![("a", &b"one"[..]), ("b", b"two"), ("a", b"three")]);
    }

    #[test]
    fn shares_partition_keys_through_the_table() {
        let built = aggregate([("k", &b"1"[..]), ("k", b"2")]);
        let decoded = AggregatedRecord::decode(&built[4..built.len() - 16]).unwrap();
        assert_eq!(decoded.partition_key_table, vec!["k"]);
    }

    #[test]
    fn rejects_a_flipped_byte_by_checksum() {
        let mut built = aggregate([("a", &b"payload"[..])]);
        let middle = built.len() / 2;
        built[middle] ^= 0x01;
        assert_eq!(deaggregate(&built), Err(KplError::ChecksumMismatch));
    }

    #[test]
    fn rejects_truncated_aggregates() {
        let built = aggregate([("a", &b"payload"[..])]);
        assert_eq!(deaggregate(&built[..10]), Err(KplError::Truncated(10)));
        // Cut inside the body: the trailer no longer matches.
        assert_eq!(deaggregate(&built[..built.len() - 3]), Err(KplError::ChecksumMismatch));
    }

    #[test]
    fn rejects_a_body_that_is_not_protobuf_even_with_a_valid_checksum() {
        let body = [0xFFu8, 0xFF, 0xFF];
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(&body);
        framed.extend_from_slice(Md5::digest(body).as_slice());
        assert!(matches!(deaggregate(&framed), Err(KplError::Malformed(_))));
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
            deaggregate(&seal(&aggregate)),
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
            deaggregate(&seal(&aggregate)),
            Err(KplError::ExplicitHashKeyOutOfRange { .. })
        ));
    }

    #[test]
    fn an_empty_aggregate_holds_no_records() {
        assert_eq!(deaggregate(&seal(&AggregatedRecord::default())), Ok(vec![]));
    }
}
