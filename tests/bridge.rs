//! Behaviour of one invocation against a scripted Firehose.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kinesis_firehose_bridge::firehose::CallError;
use kinesis_firehose_bridge::kpl;
use kinesis_firehose_bridge::report::Status;
use support::*;
use tokio::time::Instant;

fn events(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(event).collect()
}

#[tokio::test]
async fn delivers_every_valid_event_once_packed_into_one_record() {
    let bridge = bridge(&[], ScriptedFirehose::healthy());
    let batch = records(&events(500));
    let processed = bridge.process(&batch, None, "req").await;

    let response = processed.verdict.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(processed.summary.status, Status::Delivered);
    assert_eq!(processed.summary.events_delivered, 500);
    assert_eq!(processed.summary.firehose_records, 1);
    assert!(processed.summary.is_balanced());
    let mut expected: Vec<Vec<u8>> = events(500);
    let mut got = bridge.firehose.delivered_lines();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn unpacked_mode_sends_one_event_per_record_spread_over_streams() {
    let bridge = bridge(
        &[("PACK_EVENTS", "false"), ("DELIVERY_STREAMS", "a,b,c")],
        ScriptedFirehose::healthy(),
    );
    let processed = bridge.process(&records(&events(30)), None, "req").await;
    assert_eq!(processed.summary.firehose_records, 30);
    let calls = bridge.firehose.calls();
    let mut per_stream = std::collections::BTreeMap::new();
    for call in &calls {
        *per_stream.entry(call.stream.clone()).or_insert(0) += call.records.len();
    }
    assert_eq!(per_stream.values().copied().collect::<Vec<_>>(), vec![10, 10, 10]);
}

#[tokio::test]
async fn invalid_events_are_rejected_and_never_block_the_rest() {
    let mut payloads = events(4);
    payloads.insert(1, b"not json".to_vec());
    payloads.insert(3, br#"{"event_type":"x"}"#.to_vec());
    let bridge = bridge(&[("REJECTS_DELIVERY_STREAM", "rejects")], ScriptedFirehose::healthy());
    let batch = records(&payloads);
    let processed = bridge.process(&batch, None, "req").await;

    assert!(processed.verdict.unwrap().batch_item_failures.is_empty());
    assert_eq!(processed.summary.events_delivered, 4);
    assert_eq!(processed.summary.events_rejected, 2);
    assert!(processed.summary.is_balanced());
    assert_eq!(processed.summary.rejected_by_reason["not_json"], 1);
    assert_eq!(processed.summary.rejected_by_reason["missing_timestamp"], 1);
    // The rejects stream has them: nothing is left to keep elsewhere.
    assert!(processed.unsent_rejects.is_empty());
    assert_eq!(processed.unsent_rejected_events, 0);

    let rejects: Vec<serde_json::Value> = bridge
        .firehose
        .calls()
        .iter()
        .filter(|c| c.stream == "rejects")
        .flat_map(|c| c.records.clone())
        .flat_map(|r| {
            r.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .map(|line| serde_json::from_slice(&line).unwrap())
        .collect();
    assert_eq!(rejects.len(), 2);
    assert_eq!(rejects[0]["reason"], "not_json");
    assert_eq!(rejects[0]["sequence_number"], seq(1));
    assert_eq!(rejects[0]["partition_key"], format!("pk-{}", seq(1)));
    assert_eq!(rejects[0]["approximate_arrival_timestamp"], 1764072000.123);
    assert_eq!(
        STANDARD.decode(rejects[0]["data"].as_str().unwrap()).unwrap(),
        b"not json"
    );
}

#[tokio::test]
async fn without_a_rejects_stream_the_rejection_is_kept_with_its_payload() {
    let bridge = bridge(&[], ScriptedFirehose::healthy());
    let processed = bridge.process(&records(&[b"[]".to_vec()]), None, "req").await;
    assert_eq!(processed.unsent_rejects.len(), 1);
    assert_eq!(processed.unsent_rejected_events, 1);
    assert_eq!(reject_lines_in(&processed.unsent_rejects)[0].data, "W10=");
    assert!(processed.verdict.is_ok());
}

#[tokio::test]
async fn a_failed_rejects_delivery_leaves_the_payload_in_the_log() {
    let firehose = ScriptedFirehose::new(|stream, _, records| {
        if stream == "rejects" {
            Err(CallError::Transport("connection refused".into()))
        } else {
            Ok(vec![None; records.len()])
        }
    });
    let bridge = bridge(
        &[("REJECTS_DELIVERY_STREAM", "rejects"), ("MAX_PUT_ATTEMPTS", "2")],
        firehose,
    );
    let processed = bridge.process(&records(&[event(0), b"{}".to_vec()]), None, "req").await;
    assert!(processed.verdict.is_ok());
    assert_eq!(
        STANDARD
            .decode(&reject_lines_in(&processed.unsent_rejects)[0].data)
            .unwrap(),
        b"{}"
    );
    assert_eq!(processed.unsent_rejected_events, 1);
}

#[tokio::test]
async fn resends_only_failed_entries_to_the_next_stream() {
    // Stream s0 refuses its second entry the first time; all else succeeds.
    let firehose = ScriptedFirehose::new(|stream, call, records| {
        let mut answer = vec![None; records.len()];
        if stream == "s0" && call < 2 && records.len() > 1 {
            answer[1] = Some(slow_down());
        }
        Ok(answer)
    });
    let bridge = bridge(&[("PACK_EVENTS", "false")], firehose);
    let processed = bridge.process(&records(&events(6)), None, "req").await;

    assert_eq!(processed.summary.events_delivered, 6);
    assert_eq!(processed.summary.put_rounds, 2);
    assert_eq!(
        processed.summary.records_failed_over, 1,
        "the refused entry moved to s1"
    );
    let calls = bridge.firehose.calls();
    let first_s0 = calls.iter().find(|c| c.stream == "s0").unwrap();
    let resend = calls.last().unwrap();
    assert_eq!(resend.stream, "s1", "a resend moves to the next stream");
    assert_eq!(
        resend.records,
        vec![first_s0.records[1].clone()],
        "only the refused entry is resent"
    );
    let lines = bridge.firehose.delivered_lines();
    assert_eq!(
        lines.iter().collect::<HashSet<_>>().len(),
        6,
        "no event delivered twice"
    );
}

#[tokio::test]
async fn exhausted_retries_become_dead_letters_with_sequence_numbers() {
    // One stream; the first call accepts its first entry, every other
    // entry on every call is throttled.
    let firehose = ScriptedFirehose::new(|_, call, records| {
        let mut answer = vec![Some(slow_down()); records.len()];
        if call == 0 {
            answer[0] = None;
        }
        Ok(answer)
    });
    let bridge = bridge(
        &[
            ("DELIVERY_STREAMS", "only"),
            ("PACK_EVENTS", "false"),
            ("MAX_PUT_ATTEMPTS", "3"),
        ],
        firehose,
    );
    let batch = records(&events(4));
    let processed = bridge.process(&batch, None, "req-1").await;

    assert!(processed.verdict.as_ref().unwrap().batch_item_failures.is_empty());
    assert_eq!(processed.summary.status, Status::Partial);
    assert_eq!(processed.summary.events_delivered, 1);
    assert_eq!(processed.summary.events_dead_lettered, 3);
    assert_eq!(processed.summary.put_rounds, 3);
    assert_eq!(
        processed.summary.records_failed_over, 0,
        "one stream: nowhere to fail over to"
    );
    assert!(processed.summary.is_balanced());
    let delivered = bridge.firehose.delivered_lines();
    let mut dead: Vec<(Vec<String>, Vec<u8>)> = processed
        .dead_letters
        .iter()
        .map(|d| (d.sequence_numbers.clone(), d.bytes().unwrap()))
        .collect();
    dead.sort();
    assert_eq!(dead.len(), 3);
    for (seqs, bytes) in &dead {
        assert_eq!(seqs.len(), 1);
        let index: usize = seqs[0][seqs[0].len() - 6..].parse().unwrap();
        assert_eq!(
            bytes,
            &[event(index), b"\n".to_vec()].concat(),
            "dead letter carries the exact record"
        );
        assert!(!delivered.contains(&event(index)));
    }
    assert!(
        processed
            .dead_letters
            .iter()
            .all(|d| d.error_code == "ServiceUnavailableException"
                && d.error_message == "Slow down."
                && d.delivery_stream == "only")
    );
}

#[tokio::test]
async fn whole_call_errors_with_nothing_delivered_fail_the_invocation() {
    let firehose = ScriptedFirehose::new(|_, _, _| Err(CallError::Transport("connection refused".into())));
    let bridge = bridge(
        &[("MAX_PUT_ATTEMPTS", "3"), ("REJECTS_DELIVERY_STREAM", "rejects")],
        firehose,
    );
    let mut payloads = events(10);
    payloads.push(b"bad".to_vec());
    let processed = bridge.process(&records(&payloads), None, "req").await;

    let error = processed.verdict.unwrap_err();
    assert_eq!(error.events, 10);
    assert_eq!(error.code, "TransportError");
    assert_eq!(processed.summary.status, Status::Failed);
    assert_eq!(
        processed.summary.events_retried, 11,
        "the whole batch goes back to Kinesis"
    );
    assert!(processed.summary.is_balanced());
    assert!(
        processed.dead_letters.is_empty(),
        "a retried batch leaves no dead letters"
    );
    assert!(
        bridge.firehose.calls().iter().all(|c| c.stream != "rejects"),
        "rejects wait for the retry rather than being written twice"
    );
    assert_eq!(bridge.firehose.calls().len(), 3, "every attempt was made");
}

#[tokio::test]
async fn retry_mode_reports_lowest_undelivered_sequence_number() {
    // Records 0..6 unpacked over one stream; entries holding events 2 and 4
    // are refused on every attempt.
    let firehose = ScriptedFirehose::new(|_, _, records| {
        Ok(records
            .iter()
            .map(|r| {
                let refused = r.starts_with(&event(2)) || r.starts_with(&event(4));
                refused.then(slow_down)
            })
            .collect())
    });
    let bridge = bridge(
        &[
            ("DELIVERY_STREAMS", "s"),
            ("PACK_EVENTS", "false"),
            ("ON_PARTIAL_FAILURE", "retry"),
            ("MAX_PUT_ATTEMPTS", "2"),
        ],
        firehose,
    );
    let processed = bridge.process(&records(&events(6)), None, "req").await;

    let response = processed.verdict.unwrap();
    let ids: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(ids, vec![Some(seq(2))]);
    assert_eq!(processed.summary.events_retried, 2);
    assert_eq!(processed.summary.events_delivered, 4);
    assert!(processed.dead_letters.is_empty());
    assert!(processed.summary.is_balanced());
}

#[tokio::test]
async fn kpl_aggregates_are_opened_and_each_user_record_validated() {
    let users: Vec<Vec<u8>> = (0..5).map(event).chain([b"oops".to_vec()]).collect();
    let aggregate = kpl::aggregate(
        users
            .iter()
            .enumerate()
            .map(|(i, u)| (if i % 2 == 0 { "a" } else { "b" }, &u[..])),
    );
    let mut corrupt = kpl::aggregate([("a", &event(9)[..])]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xFF;
    let bridge = bridge(&[], ScriptedFirehose::healthy());
    let batch = records(&[aggregate, corrupt, event(7)]);
    let processed = bridge.process(&batch, None, "req").await;

    assert_eq!(processed.summary.records_received, 3);
    assert_eq!(processed.summary.events_received, 8);
    assert_eq!(processed.summary.events_delivered, 6);
    assert_eq!(processed.summary.events_rejected, 2);
    assert!(processed.summary.is_balanced());
    let rejected: Vec<_> = reject_lines_in(&processed.unsent_rejects)
        .iter()
        .map(|r| (r.sequence_number.clone(), r.sub_sequence_number, r.reason.clone()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (seq(0), Some(5), "not_json".to_string()),
            (seq(1), None, "corrupt_aggregate".to_string())
        ]
    );
}

#[tokio::test]
async fn pretty_printed_events_arrive_as_one_compact_line() {
    let pretty = b"{\n  \"event_type\": \"signup\",\n  \"timestamp\": \"2026-11-25T12:00:00Z\"\n}\n".to_vec();
    let bridge = bridge(&[], ScriptedFirehose::healthy());
    bridge.process(&records(&[pretty]), None, "req").await;
    assert_eq!(
        bridge.firehose.delivered(),
        vec![b"{\"event_type\":\"signup\",\"timestamp\":\"2026-11-25T12:00:00Z\"}\n".to_vec()]
    );
}

#[tokio::test(start_paused = true)]
async fn resends_stop_before_the_deadline_margin() {
    // Every entry is throttled and each answer takes 400 ms; the invocation
    // has 3 s with a 1 s margin, so at most a few rounds fit.
    let firehose = ScriptedFirehose::new(|_, _, records| Ok(vec![Some(slow_down()); records.len()]))
        .with_delay(Duration::from_millis(400));
    let bridge = bridge(
        &[
            ("DELIVERY_STREAMS", "s"),
            ("MAX_PUT_ATTEMPTS", "20"),
            ("BACKOFF_BASE_MS", "100"),
            ("BACKOFF_MAX_MS", "400"),
        ],
        firehose,
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(3);
    let mut payloads = events(3);
    payloads.push(event(99));
    let processed = bridge.process(&records(&payloads), Some(deadline), "req").await;

    assert!(
        Instant::now() <= deadline - Duration::from_secs(1),
        "finished inside the margin"
    );
    assert!(
        processed.summary.put_rounds < 20,
        "stopped early: {} rounds",
        processed.summary.put_rounds
    );
    assert_eq!(processed.summary.status, Status::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_call_still_hanging_at_the_deadline_counts_as_failed() {
    let firehose = ScriptedFirehose::healthy().with_delay(Duration::from_secs(30));
    let bridge = bridge(&[("DELIVERY_STREAMS", "s")], firehose);
    let deadline = Instant::now() + Duration::from_secs(5);
    let processed = bridge.process(&records(&events(2)), Some(deadline), "req").await;
    let error = processed.verdict.unwrap_err();
    assert_eq!(error.code, "DeadlineExceeded");
    assert!(Instant::now() <= deadline);
}

#[tokio::test]
async fn an_empty_batch_is_a_quiet_success() {
    let bridge = bridge(&[], ScriptedFirehose::healthy());
    let processed = bridge
        .process::<kinesis_firehose_bridge::batch::Record>(&[], None, "req")
        .await;
    assert!(processed.verdict.unwrap().batch_item_failures.is_empty());
    assert_eq!(processed.summary.events_received, 0);
    assert!(bridge.firehose.calls().is_empty());
}

#[tokio::test]
async fn handler_returns_error_for_lambda_on_total_failure() {
    use lambda_runtime::{Context, LambdaEvent};
    let firehose = ScriptedFirehose::new(|_, _, records| Ok(vec![Some(slow_down()); records.len()]));
    let bridge = bridge(&[("MAX_PUT_ATTEMPTS", "1")], firehose);
    let event = LambdaEvent::new(kinesis_batch(records(&events(2))), Context::default());
    let error = bridge.handle(event, &MemoryLog::default()).await.unwrap_err();
    let diagnostic: lambda_runtime::Diagnostic = error.into();
    assert_eq!(diagnostic.error_type, "NothingDelivered");
    assert!(diagnostic.error_message.contains("Kinesis retries the batch"));
}

#[tokio::test]
async fn gzip_mode_sends_whole_events_in_gzip_members_billed_on_the_compressed_bytes() {
    let bridge = bridge(&[("COMPRESSION", "gzip")], ScriptedFirehose::healthy());
    let processed = bridge.process(&records(&events(500)), None, "req").await;
    let summary = &processed.summary;
    assert_eq!(summary.events_delivered, 500);
    assert_eq!(summary.firehose_records, 1, "all 500 fit one member");
    let record = &bridge.firehose.delivered()[0];
    assert!(kinesis_firehose_bridge::compress::is_gzip(record));
    assert_eq!(summary.firehose_bytes, record.len());
    assert!(
        summary.firehose_bytes * 4 < summary.event_bytes,
        "compressed to less than a quarter: {summary:?}"
    );
    let mut got = bridge.firehose.delivered_lines();
    let mut expected = events(500);
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn gzip_dead_letters_keep_the_exact_member_and_name_first_and_last_events() {
    let firehose = ScriptedFirehose::new(|_, _, records| Ok(vec![Some(slow_down()); records.len()]));
    let bridge = bridge(
        &[
            ("COMPRESSION", "gzip"),
            ("MAX_PUT_ATTEMPTS", "1"),
            ("DELIVERY_STREAMS", "s"),
        ],
        firehose,
    );
    let mut payloads = events(3);
    payloads.push(b"[]".to_vec());
    // The whole invocation fails: nothing delivered, no dead letter.
    let processed = bridge.process(&records(&payloads), None, "req").await;
    assert!(processed.verdict.is_err());

    // Two streams, one refusing: a partial failure leaves a gzip dead letter.
    let firehose =
        ScriptedFirehose::new(|stream, _, records| Ok(vec![(stream == "s0").then(slow_down); records.len()]));
    let bridge = bridge_with_store(
        &[
            ("COMPRESSION", "gzip"),
            ("MAX_PUT_ATTEMPTS", "1"),
            ("MAX_RECORD_BYTES", "200"),
        ],
        firehose,
        kinesis_firehose_bridge::store::NoStore,
    );
    let processed = bridge.process(&records(&events(40)), None, "req").await;
    assert!(processed.summary.events_dead_lettered > 0, "{:?}", processed.summary);
    for letter in &processed.dead_letters {
        assert_eq!(letter.encoding.as_deref(), Some("gzip"));
        assert!(letter.sequence_numbers.len() <= 2);
    }
    let records = kinesis_firehose_bridge::dead_letter::reassemble(&processed.dead_letters).unwrap();
    let lines: usize = records.iter().map(|r| lines_of(r).len()).sum();
    assert_eq!(lines, processed.summary.events_dead_lettered);
    assert_eq!(
        lines + bridge.firehose.delivered_lines().len(),
        40,
        "every event either delivered or in a dead letter"
    );
}
