//! Hostile KPL aggregates, far below Kinesis's record limit, that once took
//! gigabytes: a long partition key shared by thousands of empty user
//! records, a long explicit hash key, hundreds of thousands of empty user
//! records, and the most an invocation can hold of them. For each, the
//! bridge's heap stays small, every request it makes is within Firehose's
//! limits, every event is accounted for, and an aggregate rejected whole
//! keeps its bytes.
//!
//! The heap is measured by a counting allocator: the peak of bytes
//! allocated while one batch is processed, over what was allocated before.
//! It counts bytes, not time, so it gives the same figure on a busy machine.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use kinesis_firehose_bridge::firehose::{CallError, EntryResults, Firehose};
use kinesis_firehose_bridge::kpl::{self, AggregatedRecord, Record};
use kinesis_firehose_bridge::limits::{
    MAX_INVOCATION_PAYLOAD, MAX_RECORD_SIZE, MAX_RECORDS_PER_REQUEST, MAX_REQUEST_SIZE,
};
use kinesis_firehose_bridge::reject::{self, RejectLine};
use kinesis_firehose_bridge::request::request_size;
use kinesis_firehose_bridge::store::NoStore;
use kinesis_firehose_bridge::{Bridge, event::Contract};
use support::*;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One test at a time, from its first allocation: the counters are global.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The heap's budget for one invocation's own work, capacity counted (a
/// buffer's untouched tail costs no resident memory, so this is the upper
/// bound). With the runtime, the SDK and the payload itself the process
/// stays within 64 MiB (docs/performance.md, Memory).
const HEAP_BUDGET: usize = 32 * 1024 * 1024;

/// A Firehose that accepts everything, checks every request against the
/// limits, and keeps only the reject lines of records rejected whole.
#[derive(Default)]
struct Checking {
    violations: Mutex<Vec<String>>,
    events_delivered: AtomicUsize,
    reject_lines: AtomicUsize,
    whole: Mutex<Vec<RejectLine>>,
}

impl Firehose for Checking {
    async fn put_record_batch(&self, stream: &str, records: &[&[u8]]) -> Result<EntryResults, CallError> {
        let lengths: Vec<usize> = records.iter().map(|r| r.len()).collect();
        let mut violations = Vec::new();
        if records.len() > MAX_RECORDS_PER_REQUEST {
            violations.push(format!("{} records in one request", records.len()));
        }
        if let Some(&len) = lengths.iter().find(|&&l| l > MAX_RECORD_SIZE) {
            violations.push(format!("a record of {len} bytes"));
        }
        if request_size(stream, &lengths) > MAX_REQUEST_SIZE {
            violations.push(format!("a request of {} bytes", request_size(stream, &lengths)));
        }
        self.violations.lock().unwrap().extend(violations);
        for record in records {
            let lines = record.split(|&b| b == b'\n').filter(|l| !l.is_empty());
            if stream == "rejects" {
                for line in lines {
                    self.reject_lines.fetch_add(1, Ordering::Relaxed);
                    let line: RejectLine = serde_json::from_slice(line).expect("a reject line");
                    if line.sub_sequence_number.is_none() {
                        self.whole.lock().unwrap().push(line);
                    }
                }
            } else {
                self.events_delivered.fetch_add(lines.count(), Ordering::Relaxed);
            }
        }
        Ok(vec![None; records.len()])
    }
}

struct Measured {
    peak_heap: usize,
    firehose: Checking,
    summary: kinesis_firehose_bridge::report::Summary,
}

/// Processes `payloads` as one batch, configured as deployed: two delivery
/// streams and a rejects stream.
fn measure(payloads: &[Vec<u8>]) -> Measured {
    measure_with(payloads, &[("REJECTS_DELIVERY_STREAM", "rejects")])
}

fn measure_with(payloads: &[Vec<u8>], pairs: &[(&str, &str)]) -> Measured {
    let batch = kinesis_batch(records(payloads));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut pairs = pairs.to_vec();
    pairs.push(("DELIVERY_STREAMS", "s0,s1"));
    let bridge = Bridge::new(config(&pairs), Contract::Default, Checking::default(), NoStore);
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let processed = runtime.block_on(bridge.process(&batch.records, None, "req"));
    let peak_heap = PEAK.load(Ordering::Relaxed) - before;
    let response = processed.verdict.expect("the invocation succeeds");
    let deferred = processed.summary.records_deferred;
    let handed_back = response
        .batch_item_failures
        .first()
        .and_then(|f| f.item_identifier.clone());
    assert_eq!(handed_back, (deferred > 0).then(|| seq(payloads.len() - deferred)));
    assert!(processed.summary.is_balanced(), "{:?}", processed.summary);
    assert_eq!(
        processed.unsent_rejected_events == 0,
        bridge.config.rejects_delivery_stream.is_some()
    );
    Measured {
        peak_heap,
        summary: processed.summary,
        firehose: bridge.firehose,
    }
}

fn assert_within_limits(name: &str, m: &Measured) {
    eprintln!(
        "{name}: peak heap {:.1} MiB, {:?}",
        m.peak_heap as f64 / 1048576.0,
        m.summary
    );
    let violations = m.firehose.violations.lock().unwrap();
    assert!(violations.is_empty(), "{name}: {violations:?}");
    assert!(
        m.peak_heap <= HEAP_BUDGET,
        "{name}: {:.1} MiB of heap",
        m.peak_heap as f64 / 1048576.0
    );
}

/// Every aggregate rejected whole is in the rejects stream, byte for byte.
fn assert_kept_whole(m: &Measured, aggregates: &[&Vec<u8>]) {
    let recovered = reject::recover(m.firehose.whole.lock().unwrap().clone()).unwrap();
    for aggregate in aggregates {
        assert!(
            recovered.iter().any(|r| &&r.payload == aggregate),
            "an aggregate of {} bytes was not kept",
            aggregate.len()
        );
    }
}

fn shared_key(key_len: usize, users: usize) -> Vec<u8> {
    let key = "k".repeat(key_len);
    kpl::aggregate((0..users).map(|_| (key.as_str(), &b""[..])))
}

fn shared_hash_key(key_len: usize, users: usize) -> Vec<u8> {
    let record = Record {
        partition_key_index: 0,
        explicit_hash_key_index: Some(0),
        data: Vec::new(),
        tags: Vec::new(),
    };
    kpl::seal(&AggregatedRecord {
        partition_key_table: vec!["k".into()],
        explicit_hash_key_table: vec!["9".repeat(key_len)],
        records: vec![record; users],
    })
}

/// `users` user records with no field set: two bytes each.
fn empty_users(users: usize, key: &str) -> Vec<u8> {
    let mut body = AggregatedRecord {
        partition_key_table: vec![key.to_owned()],
        ..AggregatedRecord::default()
    };
    let mut bytes = prost::Message::encode_to_vec(&body);
    body.records.clear();
    for _ in 0..users {
        bytes.extend_from_slice(&[0x1A, 0x00]);
    }
    kpl::seal_body(&bytes)
}

/// The payload size of a batch as the event source mapping sends it.
fn payload_size(payloads: &[Vec<u8>]) -> usize {
    serde_json::to_vec(&kinesis_event(records(payloads))).unwrap().len()
}

#[test]
fn a_long_partition_key_shared_by_five_thousand_empty_user_records() {
    let _serial = serial();
    for key_len in [20_000, 60_000] {
        let aggregate = shared_key(key_len, 5_000);
        let m = measure(std::slice::from_ref(&aggregate));
        assert_within_limits(&format!("{key_len}-byte key x 5,000"), &m);
        assert_eq!(m.summary.rejected_by_reason["aggregate_over_limit"], 1);
        assert_kept_whole(&m, &[&aggregate]);
    }
}

#[test]
fn a_long_explicit_hash_key_shared_by_ten_thousand_empty_user_records() {
    let _serial = serial();
    let aggregate = shared_hash_key(30_000, 10_000);
    let m = measure(std::slice::from_ref(&aggregate));
    assert_within_limits("30,000-byte hash key x 10,000", &m);
    assert_eq!(m.summary.rejected_by_reason["aggregate_over_limit"], 1);
    assert_kept_whole(&m, &[&aggregate]);
}

#[test]
fn two_hundred_thousand_empty_user_records() {
    let _serial = serial();
    let aggregate = empty_users(200_000, "k");
    let m = measure(std::slice::from_ref(&aggregate));
    assert_within_limits("200,000 empty user records", &m);
    assert_eq!(m.summary.events_received, 1, "rejected whole, not decoded");
    assert_kept_whole(&m, &[&aggregate]);
}

#[test]
fn the_first_two_cases_and_a_third_aggregate_in_one_invocation() {
    let _serial = serial();
    let payloads = vec![
        shared_key(20_000, 5_000),
        shared_key(60_000, 5_000),
        shared_hash_key(30_000, 10_000),
    ];
    let m = measure(&payloads);
    assert_within_limits("three hostile aggregates", &m);
    assert_eq!(m.summary.rejected_by_reason["aggregate_over_limit"], 3);
    assert_kept_whole(&m, &payloads.iter().collect::<Vec<_>>());
}

/// The worst batch within 6 MB: aggregates of 10,000 empty user records
/// under a 256-byte key of control characters (the longest a reject line
/// keeps), each within an aggregate's bounds, each user record a reject
/// line of its own.
fn worst_batch() -> Vec<Vec<u8>> {
    let key = "\u{1}".repeat(256);
    let one = empty_users(10_000, &key);
    let per_record = payload_size(std::slice::from_ref(&one));
    let payloads = vec![one; MAX_INVOCATION_PAYLOAD / per_record];
    assert!(payload_size(&payloads) <= MAX_INVOCATION_PAYLOAD);
    payloads
}

#[test]
fn the_worst_invocation_within_six_megabytes() {
    let _serial = serial();
    // Two aggregates fit the invocation's budget; the third and the rest
    // wait for the next invocation.
    let payloads = worst_batch();
    let m = measure(&payloads);
    assert_within_limits(
        &format!("{} aggregates of 10,000 empty user records", payloads.len()),
        &m,
    );
    assert_eq!(m.summary.rejected_by_reason["not_json"], 20_000);
    assert_eq!(m.summary.records_deferred, payloads.len() - 2);
    assert_eq!(m.firehose.reject_lines.load(Ordering::Relaxed), 20_000);
}

#[test]
fn the_worst_invocation_with_no_rejects_stream_to_take_its_rejects() {
    let _serial = serial();
    let m = measure_with(&worst_batch(), &[]);
    assert_within_limits("the worst invocation, its rejects kept for S3 or the log", &m);
    assert_eq!(m.summary.events_rejected, 20_000);
}

#[test]
fn the_largest_batch_of_valid_events_in_kpl() {
    let _serial = serial();
    // 6 MB of small valid events in aggregates of 1,000: the first 25,000
    // delivered, none rejected, the rest handed back for the next
    // invocation.
    let events: Vec<Vec<u8>> = (0..60_000).map(event).collect();
    let mut payloads: Vec<Vec<u8>> = events
        .chunks(1_000)
        .map(|chunk| kpl::aggregate(chunk.iter().map(|e| ("user", &e[..]))))
        .collect();
    while payload_size(&payloads) > MAX_INVOCATION_PAYLOAD {
        payloads.pop();
    }
    let m = measure(&payloads);
    assert_within_limits("6 MB of valid events in aggregates", &m);
    assert_eq!(m.summary.events_rejected, 0);
    assert_eq!(
        m.summary.events_delivered,
        m.firehose.events_delivered.load(Ordering::Relaxed)
    );
    assert_eq!(
        m.summary.events_delivered, 25_000,
        "the invocation's budget; the rest waits"
    );
    assert_eq!(m.summary.records_deferred, payloads.len() - 25);
}
