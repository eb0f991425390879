//! The AWS SDK adapter, and the bridge over it, against `aws-smithy-mocks`.

mod support;

use aws_sdk_firehose::Client;
use aws_sdk_firehose::operation::put_record_batch::{PutRecordBatchError, PutRecordBatchInput, PutRecordBatchOutput};
use aws_sdk_firehose::types::PutRecordBatchResponseEntry;
use aws_sdk_firehose::types::error::ServiceUnavailableException;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use kinesis_firehose_bridge::Bridge;
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::{CallError, EntryError, Firehose, SdkFirehose};
use kinesis_firehose_bridge::store::NoStore;
use std::sync::{Arc, Mutex};
use support::*;

/// A call as the mock saw it: stream and record data.
type SentCall = (String, Vec<Vec<u8>>);

fn accepted() -> PutRecordBatchResponseEntry {
    PutRecordBatchResponseEntry::builder().record_id("rid").build()
}

fn throttled() -> PutRecordBatchResponseEntry {
    PutRecordBatchResponseEntry::builder()
        .error_code("ServiceUnavailableException")
        .error_message("Slow down.")
        .build()
}

fn output(entries: Vec<PutRecordBatchResponseEntry>) -> PutRecordBatchOutput {
    let failed = entries.iter().filter(|e| e.error_code().is_some()).count() as i32;
    PutRecordBatchOutput::builder()
        .failed_put_count(failed)
        .set_request_responses(Some(entries))
        .build()
        .unwrap()
}

fn data_of(input: &PutRecordBatchInput) -> Vec<Vec<u8>> {
    input.records().iter().map(|r| r.data().as_ref().to_vec()).collect()
}

#[tokio::test]
async fn maps_each_response_entry_back_to_its_record_by_index() {
    let rule = mock!(Client::put_record_batch)
        .match_requests(|req| req.delivery_stream_name() == Some("s") && req.records().len() == 3)
        .then_output(|| output(vec![accepted(), throttled(), accepted()]));
    let firehose = SdkFirehose::new(mock_client!(aws_sdk_firehose, [&rule]));

    let results = firehose.put_record_batch("s", &[b"a", b"b", b"c"]).await.unwrap();
    assert_eq!(
        results,
        vec![
            None,
            Some(EntryError {
                code: "ServiceUnavailableException".into(),
                message: "Slow down.".into()
            }),
            None
        ]
    );
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn an_entry_without_an_answer_is_refused_not_assumed_delivered() {
    let rule = mock!(Client::put_record_batch).then_output(|| output(vec![accepted()]));
    let firehose = SdkFirehose::new(mock_client!(aws_sdk_firehose, [&rule]));
    let results = firehose.put_record_batch("s", &[b"a", b"b"]).await.unwrap();
    assert_eq!(results[0], None);
    assert_eq!(results[1].as_ref().unwrap().code, "MissingResponseEntry");
}

#[tokio::test]
async fn a_modeled_service_error_keeps_its_code_and_message() {
    let rule = mock!(Client::put_record_batch).then_error(|| {
        PutRecordBatchError::ServiceUnavailableException(
            ServiceUnavailableException::builder()
                .message("Slow down.")
                .meta(
                    ErrorMetadata::builder()
                        .code("ServiceUnavailableException")
                        .message("Slow down.")
                        .build(),
                )
                .build(),
        )
    });
    let firehose = SdkFirehose::new(mock_client!(aws_sdk_firehose, [&rule]));
    let error = firehose.put_record_batch("s", &[b"a"]).await.unwrap_err();
    assert_eq!(
        error,
        CallError::Service {
            code: "ServiceUnavailableException".into(),
            message: "Slow down.".into()
        }
    );
}

#[tokio::test]
async fn an_http_error_from_the_wire_is_a_whole_call_failure() {
    let rule = mock!(Client::put_record_batch).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
            SdkBody::from(r#"{"__type":"ResourceNotFoundException","message":"Firehose s not found."}"#),
        )
    });
    let firehose = SdkFirehose::new(mock_client!(aws_sdk_firehose, [&rule]));
    let error = firehose.put_record_batch("s", &[b"a"]).await.unwrap_err();
    assert_eq!(error.code(), "ResourceNotFoundException");
    assert_eq!(error.message(), "Firehose s not found.");
}

/// The bridge over the real adapter: stream `hot` throttles every other
/// entry; `cool` accepts everything. Each record goes out once per attempt,
/// and resends carry only the throttled ones, to the other stream.
#[tokio::test]
async fn bridge_resends_only_failed_entries_to_the_next_stream_through_the_sdk() {
    let sent: Arc<Mutex<Vec<SentCall>>> = Arc::default();
    let log_hot = sent.clone();
    let log_cool = sent.clone();
    let hot = mock!(Client::put_record_batch)
        .match_requests(|req| req.delivery_stream_name() == Some("hot"))
        .then_compute_output(move |req| {
            let data = data_of(req);
            log_hot.lock().unwrap().push(("hot".into(), data.clone()));
            output(
                (0..data.len())
                    .map(|i| if i % 2 == 0 { throttled() } else { accepted() })
                    .collect(),
            )
        });
    let cool = mock!(Client::put_record_batch)
        .match_requests(|req| req.delivery_stream_name() == Some("cool"))
        .then_compute_output(move |req| {
            let data = data_of(req);
            log_cool.lock().unwrap().push(("cool".into(), data.clone()));
            output(data.iter().map(|_| accepted()).collect())
        });
    let client = mock_client!(aws_sdk_firehose, RuleMode::MatchAny, [&hot, &cool]);
    let bridge = Bridge::new(
        config(&[("DELIVERY_STREAMS", "hot,cool"), ("PACK_EVENTS", "false")]),
        Contract::Default,
        SdkFirehose::new(client),
        NoStore,
    );
    let payloads: Vec<Vec<u8>> = (0..8).map(event).collect();
    let processed = bridge.process(&records(&payloads), None, "req").await;

    assert_eq!(processed.summary.events_delivered, 8);
    assert!(processed.summary.is_balanced());
    let sent = sent.lock().unwrap();
    let first_hot = sent.iter().find(|(s, _)| s == "hot").unwrap().1.clone();
    let throttled: Vec<Vec<u8>> = first_hot.iter().step_by(2).cloned().collect();
    let resent: Vec<Vec<u8>> = sent
        .iter()
        .skip(2)
        .flat_map(|(s, d)| {
            assert_eq!(s, "cool", "resends go to the next stream");
            d.clone()
        })
        .collect();
    assert_eq!(resent, throttled, "only the throttled entries are resent");
}

#[tokio::test]
async fn retry_mode_over_the_sdk_returns_the_lowest_undelivered_sequence_number() {
    // Every entry whose event id is e-3 or e-5 is refused, every time.
    let rule = mock!(Client::put_record_batch).then_compute_output(|req| {
        output(
            data_of(req)
                .iter()
                .map(|d| {
                    let text = String::from_utf8_lossy(d);
                    if text.contains("\"e-3\"") || text.contains("\"e-5\"") {
                        throttled()
                    } else {
                        accepted()
                    }
                })
                .collect(),
        )
    });
    let client = mock_client!(aws_sdk_firehose, RuleMode::MatchAny, [&rule]);
    let bridge = Bridge::new(
        config(&[
            ("DELIVERY_STREAMS", "s"),
            ("PACK_EVENTS", "false"),
            ("ON_PARTIAL_FAILURE", "retry"),
            ("MAX_PUT_ATTEMPTS", "3"),
        ]),
        Contract::Default,
        SdkFirehose::new(client),
        NoStore,
    );
    let processed = bridge
        .process(&records(&(0..8).map(event).collect::<Vec<_>>()), None, "req")
        .await;
    let response = processed.verdict.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some(seq(3).as_str())
    );
    assert_eq!(rule.num_calls(), 3);
    assert_eq!(processed.summary.events_retried, 2);
}
