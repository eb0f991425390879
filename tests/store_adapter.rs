//! The S3 adapter, and the bridge keeping dead letters through it, against
//! `aws-smithy-mocks`.

mod support;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use kinesis_firehose_bridge::Bridge;
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::store::{S3Store, Store, StoreError};
use kinesis_firehose_bridge::undelivered::DEAD_LETTERS_PREFIX;
use std::sync::{Arc, Mutex};
use support::*;

/// Objects as the mock saw them: bucket, key, body.
type Seen = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

#[tokio::test]
async fn puts_the_body_under_the_key_and_answers_its_address() {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let rule = mock!(Client::put_object).then_compute_output(move |req| {
        let body = req.body().bytes().unwrap_or_default().to_vec();
        record.lock().unwrap().push((
            req.bucket().unwrap_or_default().to_owned(),
            req.key().unwrap_or_default().to_owned(),
            body,
        ));
        PutObjectOutput::builder().e_tag("\"e\"").build()
    });
    let store = S3Store::new(mock_client!(aws_sdk_s3, [&rule]), "archive");
    let address = store
        .put("dead-letters/x.ndjson", Bytes::from_static(b"{}\n"))
        .await
        .unwrap();
    assert_eq!(address, "s3://archive/dead-letters/x.ndjson");
    assert_eq!(
        seen.lock().unwrap().clone(),
        vec![(
            "archive".to_owned(),
            "dead-letters/x.ndjson".to_owned(),
            b"{}\n".to_vec()
        )]
    );
}

#[tokio::test]
async fn a_refusal_keeps_s3_s_code_and_message() {
    let rule = mock!(Client::put_object).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(403).unwrap(),
            SdkBody::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>\
                 <Message>Access Denied</Message></Error>",
            ),
        )
    });
    let store = S3Store::new(mock_client!(aws_sdk_s3, [&rule]), "archive");
    let error = store.put("k", Bytes::new()).await.unwrap_err();
    assert_eq!(
        error,
        StoreError::Refused {
            bucket: "archive".into(),
            key: "k".into(),
            code: "AccessDenied".into(),
            message: "Access Denied".into(),
        }
    );
}

#[tokio::test]
async fn no_bucket_configured_is_its_own_answer() {
    let none: Option<S3Store> = None;
    assert_eq!(none.put("k", Bytes::new()).await, Err(StoreError::NotConfigured));
}

/// The bridge over the real adapter: a record Firehose refuses lands in
/// `dead-letters/` as the lines `replay` reads, and the log names it.
#[tokio::test]
async fn bridge_keeps_dead_letters_in_s3_through_the_sdk() {
    let bodies: Seen = Arc::default();
    let record = bodies.clone();
    let rule = mock!(Client::put_object).then_compute_output(move |req| {
        let body = req.body().bytes().unwrap_or_default().to_vec();
        record.lock().unwrap().push((
            req.bucket().unwrap_or_default().to_owned(),
            req.key().unwrap_or_default().to_owned(),
            body,
        ));
        PutObjectOutput::builder().build()
    });
    let firehose = ScriptedFirehose::new(|_, _, records| Ok(vec![Some(slow_down()); records.len()]));
    let store = Some(S3Store::new(
        mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&rule]),
        "archive",
    ));
    let bridge = Bridge::new(
        config(&[("MAX_PUT_ATTEMPTS", "1"), ("REJECTS_DELIVERY_STREAM", "rejects")]),
        Contract::Default,
        firehose,
        store,
    );
    let log = MemoryLog::default();
    let (summary, verdict) = bridge
        .invoke(&records(&[event(0), event(1)]), None, "req-1", "fn", &log)
        .await;
    // Nothing was delivered: the invocation fails and keeps no dead letter.
    assert!(verdict.is_err());
    assert_eq!(summary.events_kept_in_s3, 0);
    assert!(bodies.lock().unwrap().is_empty());

    // One stream refuses, the other takes: a partial failure.
    let firehose =
        ScriptedFirehose::new(|stream, _, records| Ok(vec![(stream == "s0").then(slow_down); records.len()]));
    let bridge = Bridge::new(
        config(&[("MAX_PUT_ATTEMPTS", "1"), ("PACK_EVENTS", "false")]),
        Contract::Default,
        firehose,
        bridge.store,
    );
    let (summary, verdict) = bridge
        .invoke(
            &records(&(0..4).map(event).collect::<Vec<_>>()),
            None,
            "req-2",
            "fn",
            &log,
        )
        .await;
    assert!(verdict.is_ok());
    assert_eq!(summary.events_dead_lettered, 2);
    assert_eq!(summary.events_kept_in_s3, 2);
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 1);
    let (_, key, body) = &bodies[0];
    assert!(
        key.starts_with(DEAD_LETTERS_PREFIX) && key.ends_with("/req-2.ndjson"),
        "{key}"
    );
    let letters: Vec<kinesis_firehose_bridge::dead_letter::DeadLetter> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 2);
    assert_eq!(log.of_kind("stored")[0]["object"], format!("s3://archive/{key}"));
}
