//! The benchmark batches and the bridge they run through, shared by
//! `invocation` and `cost`.
#![allow(dead_code)]

use kinesis_firehose_bridge::batch::{self, build::EventRecord};
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::{CallError, EntryResults, Firehose};
use kinesis_firehose_bridge::store::NoStore;
use kinesis_firehose_bridge::{Bridge, Config, kpl};

/// One analytics event of about `size` bytes, shaped like real traffic.
pub fn event(i: usize, size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"event_id":"0193a5c2-7d4e-7a8b-9c1d-{i:012}","event_type":"page_view","timestamp":"2026-11-25T12:00:00.123Z","user_id":"user-{}","session_id":"s-{}","properties":{{"path":"/products/{i}","referrer":"https://search.example/?q=shoes","pad":""#,
        i % 977,
        i % 131
    );
    let pad = size.saturating_sub(head.len() + 3);
    let mut e = head.into_bytes();
    e.extend(std::iter::repeat_n(b'x', pad));
    e.extend_from_slice(b"\"}}");
    e
}

/// A `KinesisEvent` document as Lambda sends it, with these record payloads.
pub fn payload(records: &[Vec<u8>]) -> Vec<u8> {
    let records = records.iter().enumerate().map(|(i, data)| {
        let sequence_number = format!("49658000000000000000000000000000000000000000000000{i:06}");
        EventRecord {
            shard_id: "shardId-000000000003",
            stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/analytics-events",
            partition_key: &format!("user-{i}"),
            sequence_number: &sequence_number,
            data,
            arrival: 1764072000.123,
        }
        .json()
    });
    serde_json::to_vec(&batch::build::event(records)).unwrap()
}

pub struct Batch {
    pub name: &'static str,
    pub payload: Vec<u8>,
    /// Bytes of event payload (user records), for MB/s.
    pub event_bytes: u64,
    pub events: u64,
}

pub fn batches() -> Vec<Batch> {
    let plain = |name, n: usize, size: usize| {
        let records: Vec<Vec<u8>> = (0..n).map(|i| event(i, size)).collect();
        Batch {
            name,
            event_bytes: records.iter().map(|r| r.len() as u64).sum(),
            events: n as u64,
            payload: payload(&records),
        }
    };
    let kpl = {
        let events: Vec<Vec<u8>> = (0..500).map(|i| event(i, 200)).collect();
        let aggregates: Vec<Vec<u8>> = events
            .chunks(100)
            .map(|chunk| {
                kpl::aggregate(
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(i, e)| (if i % 2 == 0 { "a" } else { "b" }, &e[..])),
                )
            })
            .collect();
        Batch {
            name: "kpl_5x100x200B",
            event_bytes: events.iter().map(|e| e.len() as u64).sum(),
            events: 500,
            payload: payload(&aggregates),
        }
    };
    let invalid = {
        let records: Vec<Vec<u8>> = (0..500)
            .map(|i| {
                if i % 10 == 0 {
                    br#"{"event_type":"page_view"}"#.to_vec()
                } else {
                    event(i, 1024)
                }
            })
            .collect();
        Batch {
            name: "500x1KB_10pct_invalid",
            event_bytes: records.iter().map(|r| r.len() as u64).sum(),
            events: 500,
            payload: payload(&records),
        }
    };
    vec![
        plain("500x200B", 500, 200),
        plain("500x1KB", 500, 1024),
        plain("100x10KB", 100, 10 * 1024),
        kpl,
        invalid,
    ]
}

/// A realistic analytics event of about 1 KB: ids, a session, device,
/// page, geography and commerce properties, from a seeded generator.
pub fn realistic_event(i: usize, state: &mut u64) -> Vec<u8> {
    let mut next = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    };
    const TYPES: [&str; 6] = [
        "page_view",
        "add_to_cart",
        "checkout",
        "search",
        "sign_in",
        "video_play",
    ];
    const AGENTS: [&str; 3] = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    ];
    const CITIES: [(&str, &str); 5] = [
        ("US", "Seattle"),
        ("DE", "Berlin"),
        ("JP", "Osaka"),
        ("BR", "Recife"),
        ("FR", "Lyon"),
    ];
    let (country, city) = CITIES[(next() % 5) as usize];
    format!(
        concat!(
            r#"{{"event_id":"{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}","event_type":"{}","timestamp":"2026-11-25T12:{:02}:{:02}.{:03}Z","#,
            r#""user_id":"user-{}","session_id":"{:016x}","device":{{"os":"{}","browser":"{}","screen":"{}x{}","language":"en-US"}},"#,
            r#""page":{{"url":"https://shop.example.com/products/{}?ref=home&variant={}","referrer":"https://www.example.com/search?q=item+{}","title":"Product {} - Example Shop"}},"#,
            r#""geo":{{"country":"{}","city":"{}","timezone":"UTC"}},"#,
            r#""properties":{{"product_id":"sku-{}","price":{}.{:02},"currency":"USD","quantity":{},"cart_total":{}.{:02},"experiment":"exp-{}","variant":"{}"}},"#,
            r#""user_agent":"{}","sequence":{}}}"#
        ),
        next() as u32, next() as u16, next() % 4096, next() as u16, next() % (1 << 48),
        TYPES[(next() % 6) as usize], i / 60 % 60, i % 60, next() % 1000,
        next() % 1_000_000, next(), ["ios", "android", "windows", "macos"][(next() % 4) as usize],
        ["safari", "chrome", "firefox"][(next() % 3) as usize], 360 + next() % 2000, 640 + next() % 1500,
        next() % 50_000, next() % 8, next() % 1_000, next() % 50_000,
        country, city,
        next() % 50_000, next() % 500, next() % 100, 1 + next() % 5, next() % 2_000, next() % 100, next() % 40,
        ["control", "treatment"][(next() % 2) as usize],
        AGENTS[(next() % 3) as usize], i
    )
    .into_bytes()
}

/// A high-entropy event: UUIDs, random numbers and short random strings,
/// about 250 bytes.
pub fn entropy_event(state: &mut u64) -> Vec<u8> {
    let mut next = || {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    };
    let word: String = (0..8).map(|_| (b'a' + (next() % 26) as u8) as char).collect();
    format!(
        r#"{{"event_id":"{:016x}{:016x}","event_type":"{word}","timestamp":"2026-11-25T12:00:00.{:03}Z","session":"{:016x}{:016x}","n":{},"x":{},"y":{},"tag":"{:x}"}}"#,
        next(), next(), next() % 1000, next(), next(), next() % 1_000_000_000, next() % 100_000, next() % 99_999, next()
    )
    .into_bytes()
}

/// Batches of 500 events of each mix, for the cost figures.
pub fn mixes() -> Vec<Batch> {
    let mut state = 0x5eed_u64;
    let batch = |name, events: Vec<Vec<u8>>| Batch {
        name,
        event_bytes: events.iter().map(|r| r.len() as u64).sum(),
        events: events.len() as u64,
        payload: payload(&events),
    };
    let realistic: Vec<Vec<u8>> = (0..500).map(|i| realistic_event(i, &mut state)).collect();
    let entropy: Vec<Vec<u8>> = (0..500).map(|_| entropy_event(&mut state)).collect();
    vec![
        batch("500_realistic_1KB", realistic),
        batch("500_high_entropy", entropy),
    ]
}

/// One gzip member of `lines` at `level`, as `compress::gzip` writes it at
/// its own level.
pub fn gzip_at(lines: &[&[u8]], level: u32) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    for line in lines {
        encoder.write_all(line).unwrap();
        encoder.write_all(b"\n").unwrap();
    }
    encoder.finish().unwrap()
}

/// Firehose that accepts every record at once and keeps nothing.
pub struct Accepting;

impl Firehose for Accepting {
    async fn put_record_batch(&self, _stream: &str, records: &[&[u8]]) -> Result<EntryResults, CallError> {
        Ok(vec![None; std::hint::black_box(records).len()])
    }
}

/// How the bench's bridge writes its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Packed,
    Unpacked,
    Gzip,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Packed => "packed",
            Mode::Unpacked => "unpacked",
            Mode::Gzip => "gzip",
        }
    }
}

/// The bridge over two delivery streams, in `mode`.
pub fn bridge<F: Firehose>(firehose: F, mode: Mode) -> Bridge<F, NoStore> {
    let config = Config::from_lookup(|name| match name {
        "DELIVERY_STREAMS" => Some("events-0,events-1".to_owned()),
        "PACK_EVENTS" => Some((mode != Mode::Unpacked).to_string()),
        "COMPRESSION" => Some(if mode == Mode::Gzip { "gzip" } else { "none" }.to_owned()),
        _ => None,
    })
    .unwrap();
    Bridge::new(config, Contract::Default, firehose, NoStore)
}
