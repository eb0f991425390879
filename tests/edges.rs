//! The loss paths at the edges: the largest payload, rejects written twice,
//! the last moment of an invocation, a log that cannot be written, and
//! where undelivered events are kept.

mod support;

use std::time::Duration;

use aws_lambda_events::event::streams::KinesisEventResponse;
use kinesis_firehose_bridge::dead_letter::{self, DeadLetter};
use kinesis_firehose_bridge::firehose::CallError;
use kinesis_firehose_bridge::limits::{CLOUDWATCH_MAX_EVENT_SIZE, MAX_RECORD_SIZE, MIN_CALL_TIME};
use kinesis_firehose_bridge::reject::{self, RejectLine};
use kinesis_firehose_bridge::report::Status;
use kinesis_firehose_bridge::store::{Store, StoreError};
use kinesis_firehose_bridge::undelivered::{DEAD_LETTERS_PREFIX, REJECTS_UNSENT_PREFIX};
use kinesis_firehose_bridge::{InvocationError, kpl};
use support::*;
use tokio::time::Instant;

/// A valid-looking event of `len` bytes, which the contract rejects as
/// too large when `len` passes 1,000 KiB.
fn event_of(len: usize) -> Vec<u8> {
    let head = r#"{"event_id":"big","event_type":"a","timestamp":"2026-11-25T12:00:00Z","pad":""#;
    let mut e = head.as_bytes().to_vec();
    e.extend(std::iter::repeat_n(b'x', len - head.len() - 2));
    e.extend_from_slice(b"\"}");
    e
}

/// Reject lines found in the records sent to `stream`.
fn stream_lines(firehose: &ScriptedFirehose, stream: &str) -> Vec<RejectLine> {
    firehose
        .calls()
        .iter()
        .filter(|c| c.stream == stream)
        .flat_map(|c| c.accepted.iter().map(|&i| c.records[i].clone()).collect::<Vec<_>>())
        .flat_map(|r| {
            r.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice::<RejectLine>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn log_reject_lines(log: &MemoryLog) -> Vec<RejectLine> {
    log.of_kind(reject::KIND)
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect()
}

fn assert_every_line_fits_cloudwatch(log: &MemoryLog) {
    for line in log.lines.lock().unwrap().iter() {
        assert!(
            line.len() < CLOUDWATCH_MAX_EVENT_SIZE,
            "a log line of {} bytes",
            line.len()
        );
    }
}

// ------------------------------------------- 1. the largest payload --

#[tokio::test]
async fn a_rejected_megabyte_event_is_recoverable_byte_for_byte_from_the_rejects_stream() {
    let big = event_of(1_040_000);
    let bridge = bridge(&[("REJECTS_DELIVERY_STREAM", "rejects")], ScriptedFirehose::healthy());
    let processed = bridge.process(&records(&[big.clone(), event(1)]), None, "req").await;
    assert_eq!(processed.summary.rejected_by_reason["too_large"], 1);
    assert!(processed.unsent_rejects.is_empty());
    for call in bridge.firehose.calls() {
        assert!(call.records.iter().all(|r| r.len() <= MAX_RECORD_SIZE));
    }
    let recovered = reject::recover(stream_lines(&bridge.firehose, "rejects")).unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].payload, big);
}

#[tokio::test]
async fn a_rejected_megabyte_event_with_no_rejects_stream_is_recoverable_from_its_s3_object() {
    let big = event_of(1_040_000);
    let bridge = bridge_with_store(&[], ScriptedFirehose::healthy(), MemoryStore::default());
    let log = MemoryLog::default();
    let (summary, verdict) = bridge
        .invoke(&records(&[big.clone(), event(1)]), None, "req", "fn", &log)
        .await;
    assert!(verdict.unwrap().batch_item_failures.is_empty());
    assert_eq!(summary.events_kept_in_s3, 1);
    assert_every_line_fits_cloudwatch(&log);
    assert!(
        log_reject_lines(&log).is_empty(),
        "the log names the object, it is no copy"
    );
    let recovered = reject::recover(object_lines(&bridge.store, REJECTS_UNSENT_PREFIX)).unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].payload, big);
}

#[tokio::test]
async fn a_corrupt_aggregate_of_a_megabyte_keeps_its_bytes_in_the_rejects_stream() {
    let user = event_of(1_000_000);
    let mut aggregate = kpl::aggregate([("k", &user[..])]);
    let last = aggregate.len() - 1;
    aggregate[last] ^= 0xFF;
    let bridge = bridge(&[("REJECTS_DELIVERY_STREAM", "rejects")], ScriptedFirehose::healthy());
    let processed = bridge.process(&records(&[aggregate.clone()]), None, "req").await;
    assert_eq!(processed.summary.rejected_by_reason["corrupt_aggregate"], 1);
    let recovered = reject::recover(stream_lines(&bridge.firehose, "rejects")).unwrap();
    assert_eq!(recovered[0].payload, aggregate);
}

#[tokio::test]
async fn rejects_the_stream_refused_are_kept_in_s3_and_the_log_names_the_object() {
    let firehose = ScriptedFirehose::new(|stream, _, records| {
        if stream == "rejects" {
            Err(CallError::Transport("connection refused".into()))
        } else {
            Ok(vec![None; records.len()])
        }
    });
    let big = event_of(1_040_000);
    let bridge = bridge_with_store(
        &[("REJECTS_DELIVERY_STREAM", "rejects"), ("MAX_PUT_ATTEMPTS", "1")],
        firehose,
        MemoryStore::default(),
    );
    let log = MemoryLog::default();
    let (summary, verdict) = bridge
        .invoke(
            &records(&[event(0), big.clone(), b"[]".to_vec()]),
            None,
            "req-7",
            "fn",
            &log,
        )
        .await;
    assert!(verdict.is_ok());
    assert_eq!(summary.events_kept_in_s3, 2);
    let objects = bridge.store.objects.lock().unwrap().clone();
    assert_eq!(objects.len(), 1);
    let (key, body) = &objects[0];
    assert!(
        key.starts_with(REJECTS_UNSENT_PREFIX) && key.ends_with("/req-7.ndjson"),
        "{key}"
    );
    let lines: Vec<RejectLine> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let mut payloads: Vec<Vec<u8>> = reject::recover(lines).unwrap().into_iter().map(|r| r.payload).collect();
    payloads.sort();
    assert_eq!(payloads, vec![b"[]".to_vec(), big]);
    // The log names the object instead of repeating the payloads.
    assert!(log_reject_lines(&log).is_empty());
    let stored = log.of_kind("stored");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["object"], format!("s3://b/{key}"));
    assert_eq!(stored[0]["events"], 2);
}

/// Accepts the first entry of every call and refuses the rest.
fn refuse_all_but_the_first() -> ScriptedFirehose {
    ScriptedFirehose::new(|stream, _, records| {
        if stream == "rejects" {
            return Err(CallError::Transport("connection refused".into()));
        }
        let mut answer = vec![Some(slow_down()); records.len()];
        answer[0] = None;
        Ok(answer)
    })
}

const ONE_TRY_UNPACKED: [(&str, &str); 3] = [
    ("PACK_EVENTS", "false"),
    ("MAX_PUT_ATTEMPTS", "1"),
    ("DELIVERY_STREAMS", "s"),
];

/// Lines of the objects under `prefix`, parsed.
fn object_lines<T: serde::de::DeserializeOwned>(store: &MemoryStore, prefix: &str) -> Vec<T> {
    store
        .objects
        .lock()
        .unwrap()
        .iter()
        .filter(|(key, _)| key.starts_with(prefix))
        .flat_map(|(_, body)| {
            body.split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn handed_back_from(verdict: &Result<KinesisEventResponse, InvocationError>) -> Option<String> {
    verdict
        .as_ref()
        .unwrap()
        .batch_item_failures
        .first()
        .and_then(|f| f.item_identifier.clone())
}

#[tokio::test]
async fn dead_letters_are_kept_in_s3_and_the_log_only_names_the_object() {
    let batch = records(&(0..3).map(event).collect::<Vec<_>>());
    let bridge = bridge_with_store(&ONE_TRY_UNPACKED, refuse_all_but_the_first(), MemoryStore::default());
    let log = MemoryLog::default();
    let (summary, verdict) = bridge.invoke(&batch, None, "req", "fn", &log).await;
    assert_eq!(handed_back_from(&verdict), None);
    assert_eq!((summary.events_dead_lettered, summary.events_kept_in_s3), (2, 2));
    let letters: Vec<DeadLetter> = object_lines(&bridge.store, DEAD_LETTERS_PREFIX);
    assert_eq!(dead_letter::reassemble(&letters).unwrap().len(), 2);
    assert!(log.of_kind("dead_letter").is_empty());
    assert_eq!(log.of_kind("stored").len(), 1);
}

#[tokio::test]
async fn dead_letters_s3_refuses_are_handed_back_not_logged() {
    let batch = records(&(0..3).map(event).collect::<Vec<_>>());
    let bridge = bridge_with_store(&ONE_TRY_UNPACKED, refuse_all_but_the_first(), MemoryStore::broken());
    let log = MemoryLog::default();
    let (summary, verdict) = bridge.invoke(&batch, None, "req", "fn", &log).await;
    // Events 1 and 2 were refused; Kinesis sends them again from record 1.
    assert_eq!(handed_back_from(&verdict), Some(seq(1)));
    assert_eq!(
        (
            summary.events_dead_lettered,
            summary.events_retried,
            summary.events_kept_in_s3
        ),
        (0, 2, 0)
    );
    assert_eq!(summary.status, Status::Partial);
    assert!(summary.is_balanced(), "{summary:?}");
    assert!(log.of_kind("dead_letter").is_empty(), "the log is never the copy");
    assert_eq!(log.of_kind("store_failed").len(), 1);
    assert_every_line_fits_cloudwatch(&log);
}

#[tokio::test]
async fn with_no_bucket_configured_dead_letters_and_rejects_are_handed_back() {
    // The issue's new user: no bucket, most entries refused, one attempt.
    let mut payloads: Vec<Vec<u8>> = (0..3).map(event).collect();
    payloads.insert(1, b"[]".to_vec());
    let bridge = bridge(&ONE_TRY_UNPACKED, refuse_all_but_the_first());
    let log = MemoryLog::default();
    let (summary, verdict) = bridge.invoke(&records(&payloads), None, "req", "fn", &log).await;
    // The reject (record 1) is the lowest record without a durable place.
    assert_eq!(handed_back_from(&verdict), Some(seq(1)));
    assert_eq!((summary.events_delivered, summary.events_retried), (1, 3));
    assert_eq!((summary.events_rejected, summary.events_dead_lettered), (0, 0));
    assert!(summary.rejected_by_reason.is_empty());
    assert!(summary.is_balanced(), "{summary:?}");
    assert!(log.of_kind("dead_letter").is_empty() && log_reject_lines(&log).is_empty());
}

#[tokio::test]
async fn the_rejects_stream_and_s3_refusing_together_hand_back_the_lowest_record() {
    let payloads = vec![event(0), event(1), b"not json".to_vec(), event(3)];
    let bridge = bridge_with_store(
        &[("REJECTS_DELIVERY_STREAM", "rejects"), ("MAX_PUT_ATTEMPTS", "1")],
        ScriptedFirehose::new(|stream, _, records| match stream {
            "rejects" => Err(CallError::Transport("connection refused".into())),
            _ => Ok(vec![None; records.len()]),
        }),
        MemoryStore::broken(),
    );
    let (summary, verdict) = bridge
        .invoke(&records(&payloads), None, "req", "fn", &MemoryLog::default())
        .await;
    assert_eq!(handed_back_from(&verdict), Some(seq(2)));
    assert_eq!(
        (
            summary.events_delivered,
            summary.events_rejected,
            summary.events_retried
        ),
        (3, 0, 1)
    );
    assert!(summary.is_balanced(), "{summary:?}");
}

/// A store whose every write takes `delay` (of tokio time).
struct SlowStore {
    delay: Duration,
    inner: MemoryStore,
}

impl Store for SlowStore {
    async fn put(&self, key: &str, body: bytes::Bytes) -> Result<String, StoreError> {
        tokio::time::sleep(self.delay).await;
        self.inner.put(key, body).await
    }
}

#[tokio::test(start_paused = true)]
async fn s3_slower_than_the_time_left_hands_back_within_the_deadline() {
    let payloads = vec![event(0), b"[]".to_vec(), event(2), event(3)];
    let pairs = [
        ("PACK_EVENTS", "false"),
        ("MAX_PUT_ATTEMPTS", "1"),
        ("DELIVERY_STREAMS", "s"),
    ];
    let store = SlowStore {
        delay: Duration::from_secs(60),
        inner: MemoryStore::default(),
    };
    let bridge = bridge_with_store(&pairs, refuse_all_but_the_first(), store);
    let margin = Duration::from_millis(1_000);
    let deadline = Instant::now() + Duration::from_secs(5);
    let (summary, verdict) = bridge
        .invoke(&records(&payloads), Some(deadline), "req", "fn", &MemoryLog::default())
        .await;
    assert!(
        Instant::now() <= deadline - margin,
        "both writes shared one budget, inside the margin"
    );
    assert_eq!(handed_back_from(&verdict), Some(seq(1)));
    assert_eq!((summary.events_kept_in_s3, summary.events_dead_lettered), (0, 0));
    assert!(bridge.store.inner.objects.lock().unwrap().is_empty());
    assert!(summary.is_balanced(), "{summary:?}");
}

// ----------------------------- 2. rejects written once across retries --

#[tokio::test]
async fn retry_mode_writes_each_reject_once_across_the_retries_of_a_batch() {
    // Event e-2 is refused on the first invocation only. The event source
    // mapping then sends the batch again from e-2's record.
    let firehose = ScriptedFirehose::new(|stream, call, records| {
        Ok(records
            .iter()
            .map(|r| {
                let refused = stream == "s" && call == 0 && r.starts_with(&event(2));
                refused.then(slow_down)
            })
            .collect())
    });
    let bridge = bridge(
        &[
            ("DELIVERY_STREAMS", "s"),
            ("PACK_EVENTS", "false"),
            ("ON_PARTIAL_FAILURE", "retry"),
            ("MAX_PUT_ATTEMPTS", "1"),
            ("REJECTS_DELIVERY_STREAM", "rejects"),
        ],
        firehose,
    );
    let payloads = vec![event(0), b"[1]".to_vec(), event(2), b"{}".to_vec(), event(4)];
    let batch = records(&payloads);

    let first = bridge.process(&batch, None, "req-1").await;
    let response = first.verdict.unwrap();
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some(seq(2).as_str())
    );
    assert_eq!(
        first.summary.events_rejected, 1,
        "only the reject before the checkpoint"
    );
    assert_eq!(first.summary.events_retried, 2, "e-2 and the reject after it");
    assert!(first.summary.is_balanced());

    let second = bridge.process(&batch[2..], None, "req-2").await;
    assert!(second.verdict.unwrap().batch_item_failures.is_empty());
    assert_eq!(second.summary.events_rejected, 1);

    let written: Vec<String> = stream_lines(&bridge.firehose, "rejects")
        .into_iter()
        .map(|l| l.sequence_number)
        .collect();
    assert_eq!(written, vec![seq(1), seq(3)], "each reject written exactly once");
}

// ---------------------------------- 3. the last moment of an invocation --

#[tokio::test(start_paused = true)]
async fn no_call_starts_with_less_than_the_minimum_call_time_left() {
    let bridge = bridge(&[("DELIVERY_STREAMS", "s")], ScriptedFirehose::healthy());
    let margin = Duration::from_millis(1_000);
    let deadline = Instant::now() + margin + MIN_CALL_TIME - Duration::from_millis(1);
    let processed = bridge.process(&records(&[event(0)]), Some(deadline), "req").await;
    assert!(bridge.firehose.calls().is_empty(), "no call was started");
    let error = processed.verdict.unwrap_err();
    assert_eq!(error.code, "NotAttempted");
    assert_eq!(processed.summary.status, Status::Failed);
}

#[tokio::test(start_paused = true)]
async fn records_no_call_could_start_for_are_unsent_not_failed() {
    use kinesis_firehose_bridge::backoff::{Backoff, Budget};
    use kinesis_firehose_bridge::delivery::{self, Fate, Policy};
    use kinesis_firehose_bridge::route::Rotation;
    let firehose = ScriptedFirehose::healthy();
    let policy = Policy {
        max_attempts: 5,
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
        },
        budget: Budget::new(Some(Instant::now() + MIN_CALL_TIME), Duration::from_millis(1)),
    };
    let streams = ["s".to_owned()];
    let delivery = delivery::deliver(&firehose, &streams, Rotation::new(1, 0), policy, &[b"a", b"b"]).await;
    assert_eq!(delivery.fates, vec![Fate::Unsent, Fate::Unsent]);
    assert_eq!(delivery.calls, 0);
}

#[tokio::test(start_paused = true)]
async fn no_resend_starts_with_less_than_the_minimum_call_time_left() {
    // Each answer takes 600 ms and throttles everything; after the first,
    // 900 ms are left before the margin: not enough for another call.
    let firehose = ScriptedFirehose::new(|_, _, records| Ok(vec![Some(slow_down()); records.len()]))
        .with_delay(Duration::from_millis(600));
    let bridge = bridge(
        &[
            ("DELIVERY_STREAMS", "s"),
            ("MAX_PUT_ATTEMPTS", "10"),
            ("BACKOFF_MAX_MS", "1"),
        ],
        firehose,
    );
    let deadline = Instant::now() + Duration::from_millis(1_000) + MIN_CALL_TIME + Duration::from_millis(500);
    let processed = bridge.process(&records(&[event(0)]), Some(deadline), "req").await;
    assert_eq!(bridge.firehose.calls().len(), 1);
    assert_eq!(processed.summary.put_rounds, 1);
}

// ------------------------------------------- 5. a log that fails --

#[tokio::test]
async fn an_unwritable_log_loses_nothing_when_s3_is_missing_too() {
    let bridge = bridge(&ONE_TRY_UNPACKED, refuse_all_but_the_first());
    let (summary, verdict) = bridge
        .invoke(&records(&[event(0), event(1)]), None, "req", "fn", &MemoryLog::broken())
        .await;
    assert_eq!(handed_back_from(&verdict), Some(seq(1)));
    assert_eq!(summary.events_retried, 1);
}

#[tokio::test]
async fn a_hand_back_without_a_sequence_number_fails_the_invocation() {
    let mut batch = records(&[event(0), event(1)]);
    batch[1].kinesis.sequence_number = String::new();
    let bridge = bridge(&ONE_TRY_UNPACKED, refuse_all_but_the_first());
    let (_, verdict) = bridge.invoke(&batch, None, "req", "fn", &MemoryLog::default()).await;
    match &verdict {
        Err(InvocationError::NotHandedBack(e)) => assert_eq!(e.events, 1),
        other => panic!("expected NotHandedBack, got {other:?}"),
    }
    let diagnostic: lambda_runtime::Diagnostic = verdict.unwrap_err().into();
    assert_eq!(diagnostic.error_type, "NotHandedBack");
}

#[tokio::test]
async fn an_unwritable_log_is_no_failure_when_s3_holds_the_copy() {
    let bridge = bridge_with_store(&[], ScriptedFirehose::healthy(), MemoryStore::default());
    let (summary, verdict) = bridge
        .invoke(
            &records(&[event(0), b"[]".to_vec()]),
            None,
            "req",
            "fn",
            &MemoryLog::broken(),
        )
        .await;
    assert!(verdict.is_ok(), "{verdict:?}");
    assert_eq!(summary.events_kept_in_s3, 1);
}

#[tokio::test]
async fn the_summary_is_one_json_line_and_the_books_balance() {
    let bridge = bridge(&[("REJECTS_DELIVERY_STREAM", "rejects")], ScriptedFirehose::healthy());
    let log = MemoryLog::default();
    let (summary, _) = bridge
        .invoke(&records(&[event(0), b"[]".to_vec()]), None, "req", "fn", &log)
        .await;
    let lines = log.of_kind("summary");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["events_delivered"], 1);
    assert_eq!(lines[0]["rejected_by_reason"]["not_an_object"], 1);
    assert!(summary.is_balanced());
}

// ------------------------- 4. more user records than an invocation takes --

#[tokio::test]
async fn aggregates_past_the_invocation_budget_wait_for_the_next_invocation_and_none_is_lost() {
    use kinesis_firehose_bridge::limits::MAX_USER_RECORDS_PER_INVOCATION;
    // Six aggregates of 10,000 valid events and a plain record: two
    // aggregates fit an invocation. The event source mapping sends the
    // batch again from the sequence number handed back, as Lambda does.
    let per_aggregate = 10_000;
    let events: Vec<Vec<u8>> = (0..6 * per_aggregate).map(event).collect();
    let mut payloads: Vec<Vec<u8>> = events
        .chunks(per_aggregate)
        .map(|chunk| kpl::aggregate(chunk.iter().map(|e| ("k", &e[..]))))
        .collect();
    payloads.insert(3, event(1_000_000));
    let batch = records(&payloads);
    let bridge = bridge(&[], ScriptedFirehose::healthy());

    let mut from = 0;
    let mut invocations = 0;
    while from < batch.len() {
        invocations += 1;
        let processed = bridge.process(&batch[from..], None, "req").await;
        assert!(processed.summary.events_received <= MAX_USER_RECORDS_PER_INVOCATION + 1);
        assert!(processed.summary.is_balanced());
        match processed.verdict.unwrap().batch_item_failures.first() {
            None => break,
            Some(failure) => {
                let handed_back = failure.item_identifier.clone().unwrap();
                let at = batch
                    .iter()
                    .position(|r| r.kinesis.sequence_number == handed_back)
                    .unwrap();
                assert!(at > from, "every invocation makes progress");
                from = at;
            }
        }
    }
    assert_eq!(invocations, 3, "two aggregates (and the plain record) per invocation");
    let mut delivered = bridge.firehose.delivered_lines();
    delivered.sort();
    let mut expected = events;
    expected.push(event(1_000_000));
    expected.sort();
    assert_eq!(delivered, expected, "every event delivered exactly once");
}
