//! Replay: every kind read strictly, each object at most once, the stack's
//! own settings, and a deadline that stops it between objects.

mod support;

use std::time::Duration;

use kinesis_firehose_bridge::dead_letter::{Cause, DeadLetter};
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::reason::Reason;
use kinesis_firehose_bridge::reject::{self, Source};
use kinesis_firehose_bridge::replay::{self, Answer, Request};
use kinesis_firehose_bridge::undelivered::{DEAD_LETTERS_PREFIX, dead_letter_lines};
use kinesis_firehose_bridge::{Bridge, kpl};
use support::*;
use tokio::time::Instant;

fn request(prefix: &str) -> Request {
    serde_json::from_value(serde_json::json!({ "prefix": prefix })).unwrap()
}

/// A dead-letter object holding `events`, as the function writes it.
fn dead_letters(events: &[Vec<u8>]) -> Vec<u8> {
    let data: Vec<u8> = events.iter().flat_map(|e| [&e[..], b"\n"].concat()).collect();
    let cause = Cause {
        delivery_stream: "s0",
        error_code: "ServiceUnavailableException",
        error_message: "Slow down.",
    };
    let letters = DeadLetter::for_record(cause, &data, |i| if i < events.len() { "7" } else { "8" }, "req/0");
    dead_letter_lines(&letters).into_bytes()
}

/// A rejects-stream object: one reject line per payload.
fn rejects(payloads: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (sequence_number, payload) in payloads {
        let source = Source {
            sequence_number,
            sub_sequence_number: None,
            partition_key: "pk",
            approximate_arrival_timestamp: 1.0,
        };
        for line in reject::lines(source, &Reason::NotJson("x".into()), payload) {
            body.extend(serde_json::to_vec(&line).unwrap());
            body.push(b'\n');
        }
    }
    body
}

/// An on-failure object carrying `records` (its batch info from them, or
/// `batch_size` when given).
fn on_failure(payloads: &[Vec<u8>], batch_size: Option<usize>) -> Vec<u8> {
    let event = serde_json::to_string(&kinesis_event(records(payloads))).unwrap();
    // Keys in another order than Lambda's, and one it does not write.
    serde_json::json!({
        "payload": event,
        "KinesisBatchInfo": {"shardId": "shardId-000000000000", "startSequenceNumber": seq(0),
            "endSequenceNumber": seq(payloads.len() - 1), "approximateArrivalOfFirstRecord": "x",
            "approximateArrivalOfLastRecord": "x", "batchSize": batch_size.unwrap_or(payloads.len()),
            "streamArn": "arn:s"},
        "timestamp": "2026-11-25T12:00:00Z",
        "version": "1.0",
        "somethingNew": true,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "requestContext": {"requestId": "r", "functionArn": "arn:f", "condition": "RecordAgeExceeded",
                           "approximateInvokeCount": 2},
    })
    .to_string()
    .into_bytes()
}

fn replay_bridge(pairs: &[(&str, &str)], firehose: ScriptedFirehose) -> Bridge<ScriptedFirehose, MemoryStore> {
    let config = replay::settings(config(pairs));
    Bridge::new(config, Contract::Default, firehose, MemoryStore::default())
}

async fn run(bridge: &Bridge<ScriptedFirehose, MemoryStore>, bucket: &MemoryBucket, prefix: &str, id: &str) -> Answer {
    replay::run(bridge, bucket, &request(prefix), None, id, &MemoryLog::default())
        .await
        .unwrap()
}

fn sorted(mut lines: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    lines.sort();
    lines
}

#[tokio::test]
async fn replaying_twice_delivers_each_object_once() {
    let bucket = MemoryBucket::with(&[
        ("dead-letters/a.ndjson", dead_letters(&[event(1), event(2)])),
        ("dead-letters/b.ndjson", dead_letters(&[event(3)])),
        ("dead-letters/c.ndjson", dead_letters(&[event(4)])),
    ]);
    let bridge = replay_bridge(&[], ScriptedFirehose::healthy());
    let first = run(&bridge, &bucket, "dead-letters/", "r1").await;
    assert_eq!(
        (first.objects_replayed, first.events_delivered, first.done),
        (3, 4, true)
    );
    let second = run(&bridge, &bucket, "dead-letters/", "r2").await;
    assert_eq!(
        (second.objects_replayed, second.objects_skipped, second.events_delivered),
        (0, 3, 0)
    );
    assert_eq!(
        sorted(bridge.firehose.delivered_lines()),
        sorted((1..=4).map(event).collect())
    );
}

#[tokio::test]
async fn concurrent_replays_send_each_object_once() {
    let objects: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| (format!("dead-letters/{i}.ndjson"), dead_letters(&[event(i)])))
        .collect();
    let borrowed: Vec<(&str, Vec<u8>)> = objects.iter().map(|(k, b)| (k.as_str(), b.clone())).collect();
    let bucket = MemoryBucket::with(&borrowed);
    let bridge = replay_bridge(&[], ScriptedFirehose::healthy().with_delay(Duration::from_millis(2)));
    let (a, b) = tokio::join!(
        run(&bridge, &bucket, "dead-letters/", "r1"),
        run(&bridge, &bucket, "dead-letters/", "r2")
    );
    assert_eq!(a.objects_replayed + b.objects_replayed, 8);
    assert_eq!(a.objects_skipped + b.objects_skipped, 8);
    assert_eq!(
        sorted(bridge.firehose.delivered_lines()),
        sorted((0..8).map(event).collect())
    );
}

#[tokio::test]
async fn a_gzip_stack_replays_gzip() {
    let bucket = MemoryBucket::with(&[("dead-letters/a.ndjson", dead_letters(&[event(1), event(2)]))]);
    let bridge = replay_bridge(&[("COMPRESSION", "gzip")], ScriptedFirehose::healthy());
    run(&bridge, &bucket, "dead-letters/", "r1").await;
    let records = bridge.firehose.delivered();
    assert!(!records.is_empty());
    assert!(records.iter().all(|r| kinesis_firehose_bridge::compress::is_gzip(r)));
}

#[tokio::test]
async fn on_failure_objects_are_read_in_any_key_order_and_checked_against_their_batch_info() {
    let bucket = MemoryBucket::with(&[
        (
            "aws/lambda/m/shardId-0/2026/11/25/a",
            on_failure(&[event(1), event(2)], None),
        ),
        ("aws/lambda/m/shardId-0/2026/11/25/b", on_failure(&[event(3)], Some(4))),
        (
            "aws/lambda/m/shardId-0/2026/11/25/c",
            b"a log line, not an on-failure record".to_vec(),
        ),
    ]);
    let bridge = replay_bridge(&[], ScriptedFirehose::healthy());
    let answer = run(&bridge, &bucket, "aws/lambda/", "r1").await;
    assert_eq!((answer.objects_replayed, answer.events_delivered), (1, 2));
    let unreadable: Vec<&str> = answer.unreadable.iter().map(|u| u.key.as_str()).collect();
    assert_eq!(
        unreadable,
        [
            "aws/lambda/m/shardId-0/2026/11/25/b",
            "aws/lambda/m/shardId-0/2026/11/25/c"
        ]
    );
    assert!(
        answer.unreadable[0].reason.contains("record count"),
        "{:?}",
        answer.unreadable
    );
    // Unreadable objects stay unclaimed, for a replay once they can be read.
    assert!(bucket.keys_under("replay-markers/").iter().all(|k| k.ends_with("/a")));
}

#[tokio::test]
async fn a_prefix_outside_the_recovery_prefixes_is_refused() {
    let bucket = MemoryBucket::with(&[("events/x", event(1))]);
    let bridge = replay_bridge(&[], ScriptedFirehose::healthy());
    let error = replay::run(&bridge, &bucket, &request("events/"), None, "r", &MemoryLog::default())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not under a recovery prefix"), "{error}");
    assert!(bridge.firehose.calls().is_empty());
}

#[tokio::test]
async fn identical_user_records_of_one_aggregate_are_both_delivered() {
    let same = event(7);
    let aggregate = kpl::aggregate([("k", &same[..]), ("k", &same[..])]);
    let bucket = MemoryBucket::with(&[
        ("aws/lambda/m/s/a", on_failure(&[aggregate], None)),
        ("dead-letters/b.ndjson", dead_letters(&[event(8), event(8)])),
    ]);
    let bridge = replay_bridge(&[], ScriptedFirehose::healthy());
    run(&bridge, &bucket, "aws/lambda/", "r1").await;
    run(&bridge, &bucket, "dead-letters/", "r1").await;
    assert_eq!(
        sorted(bridge.firehose.delivered_lines()),
        vec![event(7), event(7), event(8), event(8)]
    );
}

#[tokio::test]
async fn what_firehose_still_refuses_becomes_a_new_dead_letter_object_named_for_the_replay() {
    let original = dead_letters(&[event(1), event(2)]);
    let bucket = MemoryBucket::with(&[("dead-letters/a.ndjson", original.clone())]);
    // The first entry of every call is taken, the rest refused.
    let firehose = ScriptedFirehose::new(|_, _, records| {
        let mut answer = vec![Some(slow_down()); records.len()];
        answer[0] = None;
        Ok(answer)
    });
    let pairs = [
        ("PACK_EVENTS", "false"),
        ("MAX_PUT_ATTEMPTS", "1"),
        ("DELIVERY_STREAMS", "s"),
    ];
    let bridge = replay_bridge(&pairs, firehose);
    let answer = run(&bridge, &bucket, "dead-letters/", "replay-42").await;
    assert_eq!((answer.events_delivered, answer.events_still_failing), (1, 1));
    let written = bridge.store.objects.lock().unwrap().clone();
    assert_eq!(written.len(), 1);
    assert!(
        written[0].0.starts_with(DEAD_LETTERS_PREFIX) && written[0].0.contains("replay-42"),
        "{}",
        written[0].0
    );
    assert_eq!(
        bucket.objects.lock().unwrap()["dead-letters/a.ndjson"],
        original,
        "never overwritten"
    );
}

#[tokio::test]
async fn rejects_come_back_once_the_contract_accepts_them() {
    let gzipped = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder
            .write_all(&rejects(&[
                (
                    "1",
                    br#"{"event_id":"r1","event_type":"t","timestamp":"2026-11-25T12:00:00Z"}"#.to_vec(),
                ),
                ("2", b"still not json".to_vec()),
            ]))
            .unwrap();
        encoder.finish().unwrap()
    };
    let bucket = MemoryBucket::with(&[("rejects/year=2026/x.gz", gzipped)]);
    let bridge = replay_bridge(&[("REJECTS_DELIVERY_STREAM", "rejects")], ScriptedFirehose::healthy());
    let answer = run(&bridge, &bucket, "rejects/", "r1").await;
    assert_eq!(
        (answer.records_found, answer.events_delivered, answer.events_rejected),
        (2, 1, 1)
    );
}

#[tokio::test]
async fn a_dry_run_counts_and_claims_nothing() {
    let bucket = MemoryBucket::with(&[("dead-letters/a.ndjson", dead_letters(&[event(1), event(2)]))]);
    let bridge = replay_bridge(&[], ScriptedFirehose::healthy());
    let answer = replay::run(
        &bridge,
        &bucket,
        &serde_json::from_str(r#"{"prefix":"dead-letters/","dry_run":true}"#).unwrap(),
        None,
        "r",
        &MemoryLog::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        (answer.records_found, answer.events_delivered, answer.dry_run),
        (2, 0, true)
    );
    assert!(bridge.firehose.calls().is_empty() && bucket.keys_under("replay-markers/").is_empty());
}

#[tokio::test]
async fn a_batch_firehose_refuses_whole_is_released_for_a_later_replay() {
    let bucket = MemoryBucket::with(&[("dead-letters/a.ndjson", dead_letters(&[event(1)]))]);
    let refusing = ScriptedFirehose::new(|_, _, _| {
        Err(kinesis_firehose_bridge::firehose::CallError::Transport(
            "connection refused".into(),
        ))
    });
    let bridge = replay_bridge(&[("MAX_PUT_ATTEMPTS", "1")], refusing);
    let answer = run(&bridge, &bucket, "dead-letters/", "r1").await;
    assert_eq!((answer.objects_released, answer.events_still_failing), (1, 1));
    assert!(bucket.keys_under("replay-markers/").is_empty());
    let bridge = replay_bridge(&[], ScriptedFirehose::healthy());
    assert_eq!(run(&bridge, &bucket, "dead-letters/", "r2").await.events_delivered, 1);
}

#[tokio::test(start_paused = true)]
async fn a_replay_stops_before_its_deadline_and_the_next_one_finishes() {
    let objects: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("dead-letters/{i}.ndjson"), dead_letters(&[event(i)])))
        .collect();
    let borrowed: Vec<(&str, Vec<u8>)> = objects.iter().map(|(k, b)| (k.as_str(), b.clone())).collect();
    let bucket = MemoryBucket::with(&borrowed);
    // Each object takes 4 s of Firehose time; 30 s leave room for a few.
    let bridge = replay_bridge(&[], ScriptedFirehose::healthy().with_delay(Duration::from_secs(4)));
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = replay::run(
        &bridge,
        &bucket,
        &request("dead-letters/"),
        Some(deadline),
        "r1",
        &MemoryLog::default(),
    )
    .await
    .unwrap();
    assert!(
        !first.done && first.objects_replayed > 0 && first.objects_replayed < 6,
        "{first:?}"
    );
    assert!(Instant::now() <= deadline);
    let second = run(&bridge, &bucket, "dead-letters/", "r2").await;
    assert!(second.done);
    assert_eq!(first.objects_replayed + second.objects_replayed, 6);
    assert_eq!(
        sorted(bridge.firehose.delivered_lines()),
        sorted((0..6).map(event).collect())
    );
}
