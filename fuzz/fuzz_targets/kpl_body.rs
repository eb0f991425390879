//! A KPL aggregate's protobuf body, sealed with a valid MD5 trailer, through
//! the bridge's own decoder and `prost`'s. Holds: both give the same user
//! records, or both refuse the body (the bridge also refuses a key index
//! outside its table, which `prost` does not resolve).
#![no_main]

use kinesis_firehose_bridge::kpl::{self, AggregatedRecord, Bounds, KplError};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|body: &[u8]| {
    let sealed = kpl::seal_body(body);
    let ours = kpl::deaggregate(&sealed, Bounds::NONE);
    let reference = AggregatedRecord::decode(body);
    match (ours, reference) {
        (Ok(ours), Ok(reference)) => {
            assert_eq!(ours.len(), reference.records.len());
            for (u, r) in ours.iter().zip(&reference.records) {
                assert_eq!(u.data, &r.data[..]);
                assert_eq!(u.partition_key, reference.partition_key_table[r.partition_key_index as usize]);
                let hash_key = r
                    .explicit_hash_key_index
                    .map(|i| reference.explicit_hash_key_table[i as usize].as_str());
                assert_eq!(u.explicit_hash_key, hash_key);
            }
        }
        (Err(KplError::PartitionKeyOutOfRange { .. } | KplError::ExplicitHashKeyOutOfRange { .. }), Ok(_)) => {}
        (Err(_), Err(_)) => {}
        (ours, reference) => panic!("ours {ours:?}, prost {reference:?}"),
    }
});
