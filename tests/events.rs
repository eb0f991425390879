//! The shipped `events/` files: each parses as the `KinesisEvent` that
//! `cargo lambda invoke --data-file` sends, and delivers and rejects what
//! `events/expected.json` says (the file `make invoke` checks S3 against).
//! Together they hold every reason the default contract can reject for.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use aws_lambda_events::event::kinesis::KinesisEvent;
use kinesis_firehose_bridge::Bridge;
use kinesis_firehose_bridge::batch::{KinesisBatch, SourceRecord};
use kinesis_firehose_bridge::event::{Contract, Formats};
use kinesis_firehose_bridge::reason::Reason;
use kinesis_firehose_bridge::store::NoStore;
use serde::Deserialize;
use support::*;

#[derive(Deserialize)]
struct Expected {
    holds: String,
    /// A JSON Schema in events/ the file is meant for.
    schema: Option<String>,
    delivered: usize,
    rejected: BTreeMap<String, usize>,
}

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events")
}

fn expectations() -> BTreeMap<String, Expected> {
    let path = events_dir().join("expected.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parsed both as `aws_lambda_events`' `KinesisEvent` and as the handler's
/// own lean view; the two must agree record by record.
fn load(name: &str) -> KinesisEvent {
    let path = events_dir().join(name);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let event: KinesisEvent =
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{name} is not a KinesisEvent: {e}"));
    let lean: KinesisBatch = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
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
async fn every_event_file_delivers_and_rejects_what_expected_json_says() {
    let expectations = expectations();
    let mut files: BTreeSet<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json") && n != "expected.json" && n != "schema.json")
        .collect();
    for (name, expected) in &expectations {
        assert!(files.remove(name), "{name} is in expected.json but not in events/");
        let event = load(name);
        let contract = match &expected.schema {
            None => Contract::Default,
            Some(schema) => Contract::load(Some(&events_dir().join(schema)), Formats::Assert).unwrap(),
        };
        let bridge = Bridge::new(config(&[]), contract, ScriptedFirehose::healthy(), NoStore);
        let processed = bridge.process(&event.records, None, "req").await;
        let summary = &processed.summary;
        assert!(summary.is_balanced(), "{name}");
        assert!(processed.verdict.unwrap().batch_item_failures.is_empty(), "{name}");
        assert_eq!(
            summary.events_delivered, expected.delivered,
            "{name}: {}",
            expected.holds
        );
        let rejected: BTreeMap<String, usize> = summary
            .rejected_by_reason
            .iter()
            .map(|(reason, n)| (reason.to_string(), *n))
            .collect();
        assert_eq!(rejected, expected.rejected, "{name}: {}", expected.holds);
    }
    assert!(files.is_empty(), "event files without an expectation: {files:?}");
}

#[test]
fn the_event_files_hold_every_reason_the_contracts_can_reject_for() {
    let covered: BTreeSet<String> = expectations()
        .values()
        .flat_map(|e| e.rejected.keys().cloned())
        .collect();
    let every: BTreeSet<String> = Reason::CODES.iter().map(|c| c.to_string()).collect();
    assert_eq!(covered, every, "add an event file for the missing reasons");
}

#[tokio::test]
async fn the_pretty_printed_event_is_delivered_as_one_line() {
    let event = load("mixed-invalid.json");
    let bridge = bridge(&[], ScriptedFirehose::healthy());
    bridge.process(&event.records, None, "req").await;
    let lines = bridge.firehose.delivered_lines();
    assert!(
        lines.iter().any(|l| l.starts_with(br#"{"event_id":"evt-pretty""#)),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains(&b'\n')));
}
