//! Builds KPL aggregates as the KPL does: the `prost` messages of its
//! protobuf, framed with the magic and the MD5 trailer. The bridge never
//! writes aggregates; tests, benchmarks, the fuzzers and the local load
//! generator do (the `builders` feature).

use md5::{Digest, Md5};
use prost::Message;

use super::{DIGEST_LEN, MAGIC};

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
    seal_body(&aggregate.encode_to_vec())
}

/// Frames protobuf bytes, valid or not, with the magic and MD5 trailer.
pub fn seal_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + body.len() + DIGEST_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(body);
    out.extend_from_slice(Md5::digest(body).as_slice());
    out
}
