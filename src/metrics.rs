//! CloudWatch metrics, written as one Embedded Metric Format log line per
//! invocation: no API call, no extra latency, and CloudWatch extracts them.
//! Format: CloudWatch User Guide, "Embedded metric format specification".

use serde_json::{Map, Value, json};

use crate::report::Summary;

/// The metric names, as alarms and dashboards refer to them.
pub const NAMES: &[&str] = &[
    "RecordsReceived",
    "EventsReceived",
    "EventsRejected",
    "EventsDelivered",
    "EventsDeadLettered",
    "EventsRetried",
    "RecordsDeferred",
    "EventBytes",
    "FirehoseRecords",
    "FirehoseBytes",
    "FirehoseBilledBytes",
    "PutCalls",
    "EventsKeptInS3",
];

/// The EMF document for `summary`. Metrics carry one dimension,
/// `FunctionName`, so that alarms can be scoped to one deployment.
pub fn emf(namespace: &str, function_name: &str, summary: &Summary, timestamp_ms: u64) -> Value {
    // As many values as names, or this does not compile.
    let values: [u64; NAMES.len()] = [
        summary.records_received as u64,
        summary.events_received as u64,
        summary.events_rejected as u64,
        summary.events_delivered as u64,
        summary.events_dead_lettered as u64,
        summary.events_retried as u64,
        summary.records_deferred as u64,
        summary.event_bytes as u64,
        summary.firehose_records as u64,
        summary.firehose_bytes as u64,
        summary.firehose_billed_bytes as u64,
        u64::from(summary.put_calls),
        summary.events_kept_in_s3 as u64,
    ];
    let definitions: Vec<Value> = NAMES
        .iter()
        .map(|&name| {
            let unit = if name.ends_with("Bytes") { "Bytes" } else { "Count" };
            json!({"Name": name, "Unit": unit})
        })
        .collect();
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["FunctionName"]],
                "Metrics": definitions,
            }]
        }),
    );
    doc.insert("FunctionName".into(), json!(function_name));
    for (name, value) in NAMES.iter().zip(values) {
        doc.insert((*name).into(), json!(value));
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_metric_has_a_definition_and_a_value() {
        let summary = Summary {
            records_received: 10,
            events_received: 12,
            events_rejected: 1,
            events_delivered: 9,
            events_dead_lettered: 2,
            firehose_records: 3,
            firehose_bytes: 4000,
            firehose_billed_bytes: 15360,
            put_calls: 4,
            put_rounds: 2,
            events_kept_in_s3: 2,
            ..Summary::new(10)
        };
        let doc = emf("Ns", "fn", &summary, 1_764_072_000_000);
        let metrics = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(metrics["Namespace"], "Ns");
        assert_eq!(metrics["Metrics"].as_array().unwrap().len(), NAMES.len());
        assert_eq!(doc["EventsDeadLettered"], 2);
        assert_eq!(doc["FirehoseBilledBytes"], 15360);
        assert_eq!(doc["PutCalls"], 4);
        assert_eq!(doc["EventsKeptInS3"], 2);
        assert!(doc.get("EventsKeptOnlyInLog").is_none());
        assert_eq!(doc["FunctionName"], "fn");
        assert_eq!(metrics["Metrics"][9]["Unit"], "Bytes");
    }
}
