//! The shipped `events/` files: each parses as the `KinesisEvent` that
//! `cargo lambda invoke --data-file` sends, and does what its name says.

mod support;

use aws_lambda_events::event::kinesis::KinesisEvent;
use kinesis_firehose_bridge::batch::{KinesisBatch, SourceRecord};
use support::*;

/// Parsed both as `aws_lambda_events`' `KinesisEvent` and as the handler's
/// own lean view; the two must agree record by record.
fn load(name: &str) -> KinesisEvent {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let event: KinesisEvent =
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{path} is not a KinesisEvent: {e}"));
    let lean: KinesisBatch = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(lean.records.len(), event.records.len());
    for (a, b) in lean.records.iter().zip(&event.records) {
        assert_eq!(
            (a.sequence_number(), a.partition_key(), a.data()),
            (b.sequence_number(), b.partition_key(), b.data())
        );
    }
    event
}

#[tokio::test]
async fn valid_events_are_all_delivered() {
    let event = load("valid.json");
    let bridge = bridge(&[], ScriptedFirehose::healthy());
    let processed = bridge.process(&event.records, None, "req").await;
    assert_eq!(processed.summary.records_received, 10);
    assert_eq!(processed.summary.events_delivered, 10);
    assert!(processed.unsent_rejects.is_empty());
}

#[tokio::test]
async fn mixed_invalid_events_are_rejected_each_with_its_reason() {
    let event = load("mixed-invalid.json");
    let bridge = bridge(&[], ScriptedFirehose::healthy());
    let processed = bridge.process(&event.records, None, "req").await;
    let lines = reject_lines_in(&processed.unsent_rejects);
    let reasons: Vec<&str> = lines.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "not_json",
            "missing_timestamp",
            "invalid_event_type",
            "invalid_timestamp",
            "not_an_object",
            "not_utf8"
        ]
    );
    assert_eq!(processed.summary.events_delivered, 3);
    assert!(processed.summary.is_balanced());
    assert!(processed.verdict.unwrap().batch_item_failures.is_empty());
}

#[tokio::test]
async fn kpl_aggregated_events_are_deaggregated() {
    let event = load("kpl-aggregated.json");
    let bridge = bridge(&[], ScriptedFirehose::healthy());
    let processed = bridge.process(&event.records, None, "req").await;
    assert_eq!(processed.summary.records_received, 4);
    assert_eq!(processed.summary.events_delivered, 9);
    let lines = reject_lines_in(&processed.unsent_rejects);
    let rejected: Vec<_> = lines.iter().map(|r| r.reason.as_str()).collect();
    assert_eq!(rejected, vec!["corrupt_aggregate"]);
}
