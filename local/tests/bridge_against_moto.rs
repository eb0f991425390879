//! The bridge's end-to-end test against moto: the bridge, in-process through its library
//! with the SDK adapter pointed at moto, handles the shipped `events/*.json`
//! and generated batches; the delivered objects are read back from moto's
//! S3 and every valid event is there exactly once, one per line.

use std::collections::HashMap;

use bridge_local::aws::Clients;
use bridge_local::bucket;
use bridge_local::emulator::Emulator;
use bridge_local::events::{EventShape, event_id};
use bridge_local::setup::{self, EVENTS_PREFIX, REJECTS_PREFIX, Resources};
use kinesis_firehose_bridge::batch::build::EventRecord;
use kinesis_firehose_bridge::batch::{KinesisBatch, Record};
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::SdkFirehose;
use kinesis_firehose_bridge::record::{self, Unpacked};
use kinesis_firehose_bridge::store::NoStore;
use kinesis_firehose_bridge::{Bridge, Config, kpl};

fn run_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bridge-local-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir
}

/// A Kinesis record as Lambda delivers it, read as the function reads it.
fn kinesis_record(sequence_number: u64, data: &[u8]) -> Record {
    let record = EventRecord {
        shard_id: "shardId-000000000000",
        stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/analytics-events",
        partition_key: &format!("pk-{sequence_number}"),
        sequence_number: &format!("49590000000000000000{sequence_number:08}"),
        data,
        arrival: 1764072000.5,
    };
    serde_json::from_value(record.json()).expect("a valid Kinesis record")
}

/// The lines the contract makes of a batch's valid events.
fn valid_lines(records: &[Record]) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for (i, r) in records.iter().enumerate() {
        // Exhaustive, so that a new kind of record cannot be skipped silently.
        let events = match record::unpack(i, r, usize::MAX) {
            Unpacked::Event(event) => vec![event],
            Unpacked::Events(events) => events,
            Unpacked::Rejected(..) | Unpacked::Deferred => continue,
        };
        for event in events {
            if let Ok(line) = Contract::Default.check(event.data) {
                lines.push(line.into_owned());
            }
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_valid_event_arrives_in_s3_exactly_once_one_per_line() {
    let dir = run_dir("bridge");
    let moto = Emulator::moto(&dir).await.unwrap_or_else(|e| panic!("{e}"));
    let clients = Clients::new(&moto.endpoint()).await;
    let resources = Resources::new(2, 1);
    setup::create(&clients, &resources).await.expect("resources in moto");

    let env = HashMap::from([
        ("DELIVERY_STREAMS", resources.delivery_streams.join(",")),
        ("REJECTS_DELIVERY_STREAM", resources.rejects_stream.clone()),
    ]);
    let bridge = Bridge::new(
        Config::from_lookup(|k| env.get(k).cloned()).expect("a valid configuration"),
        Contract::Default,
        SdkFirehose::new(clients.firehose.clone()),
        NoStore,
    );

    // The shipped events, as `cargo lambda invoke --data-file` sends them.
    let mut batches: Vec<(String, Vec<Record>)> = Vec::new();
    for name in ["valid.json", "mixed-invalid.json", "kpl-aggregated.json"] {
        let path = bridge_local::repo_root().join("events").join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let event: KinesisBatch = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        batches.push((name.to_owned(), event.records));
    }

    // Generated batches: 500 records each, plain events and KPL aggregates,
    // every event with its own id, a few invalid ones among them.
    let shape = EventShape { size: 400 };
    let mut rng = rand::rng();
    let mut generated_ids = Vec::new();
    let mut invalid_ids = Vec::new();
    let mut sequence = 0;
    for batch in 0..3 {
        let mut records = Vec::new();
        for r in 0..500 {
            sequence += 1;
            if r % 25 == 0 {
                let ids: Vec<String> = (0..8).map(|k| format!("gen-{batch}-{r}-{k}")).collect();
                let events: Vec<Vec<u8>> = ids.iter().map(|id| shape.valid(id, &mut rng)).collect();
                let keys: Vec<String> = ids.iter().map(|id| format!("key-{id}")).collect();
                let aggregate = kpl::aggregate(keys.iter().map(String::as_str).zip(events.iter().map(Vec::as_slice)));
                generated_ids.extend(ids);
                records.push(kinesis_record(sequence, &aggregate));
            } else if r % 50 == 7 {
                let id = format!("gen-{batch}-{r}");
                records.push(kinesis_record(sequence, &shape.invalid(&id, r)));
                invalid_ids.push(id);
            } else {
                let id = format!("gen-{batch}-{r}");
                records.push(kinesis_record(sequence, &shape.valid(&id, &mut rng)));
                generated_ids.push(id);
            }
        }
        batches.push((format!("generated-{batch}"), records));
    }

    let mut expected: Vec<Vec<u8>> = Vec::new();
    let mut rejected = 0;
    for (name, records) in &batches {
        let processed = bridge.process(records, None, name).await;
        let summary = &processed.summary;
        assert!(summary.is_balanced(), "{name}: {summary:?}");
        assert!(processed.verdict.is_ok(), "{name}: {:?}", processed.verdict);
        assert_eq!(summary.events_dead_lettered, 0, "{name}: moto never fails an entry");
        assert_eq!(
            summary.events_delivered + summary.events_rejected,
            summary.events_received,
            "{name}"
        );
        rejected += summary.events_rejected;
        expected.extend(valid_lines(records));
    }

    let objects = bucket::read_prefix(&clients.s3, &resources.bucket, EVENTS_PREFIX)
        .await
        .expect("the delivered objects");
    assert!(!objects.is_empty());
    let mut delivered: Vec<Vec<u8>> = Vec::new();
    for object in &objects {
        assert!(object.key.starts_with(EVENTS_PREFIX), "{}", object.key);
        assert_eq!(
            object.body.last(),
            Some(&b'\n'),
            "{}: every line ends with a newline",
            object.key
        );
        for line in object.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let parsed: serde_json::Value = serde_json::from_slice(line)
                .unwrap_or_else(|e| panic!("{}: a line that is not one JSON event: {e}", object.key));
            assert!(parsed.is_object());
            delivered.push(line.to_vec());
        }
    }
    expected.sort();
    delivered.sort();
    assert_eq!(delivered.len(), expected.len(), "one line per valid event");
    assert_eq!(delivered, expected, "each valid event exactly once");

    let ids: HashMap<&str, usize> = delivered
        .iter()
        .filter_map(|l| event_id(l))
        .fold(HashMap::new(), |mut m, id| {
            *m.entry(id).or_default() += 1;
            m
        });
    for id in &generated_ids {
        assert_eq!(ids.get(id.as_str()), Some(&1), "generated event {id}");
    }
    for id in &invalid_ids {
        assert_eq!(ids.get(id.as_str()), None, "invalid event {id} must not be delivered");
    }

    let rejects = bucket::read_prefix(&clients.s3, &resources.bucket, REJECTS_PREFIX)
        .await
        .expect("the rejects objects");
    let reject_lines: usize = rejects
        .iter()
        .map(|o| o.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count())
        .sum();
    assert_eq!(
        reject_lines, rejected,
        "every rejected event in the rejects stream once"
    );
    moto.stop();
}
