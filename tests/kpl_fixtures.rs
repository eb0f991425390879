//! Deaggregation of records written by awslabs' own `aws_kinesis_agg`
//! (Python, 1.2.3), listed in `tests/fixtures/kpl/cases.json`.

use kinesis_firehose_bridge::kpl::{self, KplError};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize)]
struct Case {
    file: String,
    md5_valid: bool,
    user_records: Vec<UserRecord>,
}

#[derive(Deserialize)]
struct UserRecord {
    partition_key: String,
    explicit_hash_key: Option<String>,
    data: String,
}

#[test]
fn deaggregates_every_producer_fixture_exactly() {
    let dir = format!("{}/tests/fixtures/kpl", env!("CARGO_MANIFEST_DIR"));
    let cases: BTreeMap<String, Case> =
        serde_json::from_slice(&std::fs::read(format!("{dir}/cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 5);
    for (name, case) in cases {
        let bytes = std::fs::read(format!("{dir}/{}", case.file)).unwrap();
        assert!(kpl::is_aggregate(&bytes), "{name}");
        let result = kpl::deaggregate(&bytes, kpl::Bounds::DEFAULT);
        if !case.md5_valid {
            assert_eq!(result, Err(KplError::ChecksumMismatch), "{name}");
            continue;
        }
        let records = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(records.len(), case.user_records.len(), "{name}");
        for (got, want) in records.iter().zip(&case.user_records) {
            assert_eq!(got.partition_key, want.partition_key, "{name}");
            assert_eq!(got.explicit_hash_key, want.explicit_hash_key.as_deref(), "{name}");
            assert_eq!(got.data, want.data.as_bytes(), "{name}");
        }
    }
}
