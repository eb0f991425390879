//! `replay-backlog`: the replay's memory bound, measured. Starts moto,
//! writes a backlog of dead-letter objects (the library's own format) to
//! its bucket, then replays it in this process, as the replay function
//! does, and prints the peak RSS of the replay alone (Linux `VmHWM`, reset
//! after the backlog is written) beside the backlog's size and the answer.
//!
//!   cargo run --release -p bridge-local --bin replay-backlog -- --mib 1024

use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use kinesis_firehose_bridge::config::vars;
use kinesis_firehose_bridge::dead_letter::{Cause, DeadLetter};
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::SdkFirehose;
use kinesis_firehose_bridge::replay::{self, Request};
use kinesis_firehose_bridge::store::{S3Store, Store};
use kinesis_firehose_bridge::undelivered::{self, DEAD_LETTERS_PREFIX};
use kinesis_firehose_bridge::{Bridge, Config};

use bridge_local::aws::Clients;
use bridge_local::emulator::Emulator;
use bridge_local::events::EventShape;
use bridge_local::invoke::LogFile;
use bridge_local::setup::{self, Resources};

#[derive(Parser, Debug)]
struct Args {
    /// Backlog size, MiB of dead-letter objects.
    #[arg(long, default_value_t = 1024)]
    mib: usize,
    /// Size of each object, MiB (the function writes one per invocation).
    #[arg(long, default_value_t = 4)]
    object_mib: usize,
    /// COMPRESSION of the replaying bridge.
    #[arg(long, default_value = "gzip")]
    compression: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> bridge_local::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("replay-backlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let moto = Emulator::moto(&dir).await?;
    let clients = Clients::new(&moto.endpoint()).await;
    let resources = Resources::new(2, 1);
    setup::create_delivery(&clients, &resources).await?;
    let bucket = S3Store::new(clients.s3.clone(), resources.bucket.clone());

    let started = Instant::now();
    let (objects, bytes, events) = write_backlog(&bucket, args.mib, args.object_mib).await?;
    eprintln!(
        "backlog: {objects} objects, {} MiB, {events} events, written in {:.0?}",
        bytes >> 20,
        started.elapsed()
    );

    reset_peak_rss();
    let env = [
        (vars::DELIVERY_STREAMS, resources.delivery_streams.join(",")),
        (vars::UNDELIVERED_BUCKET, resources.bucket.clone()),
        (vars::COMPRESSION, args.compression.clone()),
    ];
    let config = Config::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))?;
    let firehose = SdkFirehose::new(clients.firehose.clone());
    let bridge = Bridge::new(
        replay::settings(config),
        Contract::Default,
        firehose,
        Some(bucket.clone()),
    );
    let log = LogFile::create(&dir.join("replay.log"))?;
    let request = Request {
        prefix: DEAD_LETTERS_PREFIX.to_owned(),
        bucket: None,
        dry_run: false,
    };
    let started = Instant::now();
    let answer = replay::run(&bridge, &bucket, &request, None, "backlog", &log)
        .await
        .map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let line = serde_json::json!({
        "backlog_mib": bytes >> 20,
        "objects": objects,
        "events": events,
        "replay_peak_rss_mib": peak_rss_kib() / 1024,
        "replay_seconds": (seconds * 10.0).round() / 10.0,
        "answer": answer,
    });
    println!("{line}");
    moto.stop();
    let _ = std::fs::remove_dir_all(&dir);
    if answer.done && answer.events_delivered == events {
        Ok(())
    } else {
        Err("the replay did not deliver the whole backlog".into())
    }
}

/// Writes dead-letter objects of about `object_mib` each until `mib` are
/// written; returns objects, bytes and events.
async fn write_backlog(bucket: &S3Store, mib: usize, object_mib: usize) -> bridge_local::Result<(usize, usize, usize)> {
    let shape = EventShape { size: 1_000 };
    let mut rng = rand::rng();
    let cause = Cause {
        delivery_stream: "analytics-events-0",
        error_code: "ServiceUnavailableException",
        error_message: "Slow down.",
    };
    let (mut objects, mut bytes, mut events) = (0, 0, 0);
    while bytes < mib << 20 {
        let mut letters = Vec::new();
        let mut size = 0;
        // Records of 500 events, as the function packs them.
        while size < object_mib << 20 {
            let mut data = Vec::new();
            for _ in 0..500 {
                data.extend(shape.valid(&format!("b-{events}"), &mut rng));
                data.push(b'\n');
                events += 1;
            }
            size += data.len() * 4 / 3;
            let sequence = format!("{:056}", events);
            let group = format!("backlog-{objects}/{}", letters.len());
            letters.extend(DeadLetter::for_record(cause, &data, |_| &sequence, &group));
        }
        let body = undelivered::dead_letter_lines(&letters).into_bytes();
        bytes += body.len();
        let key = format!("{DEAD_LETTERS_PREFIX}year=2026/month=12/day=01/hour=00/backlog-{objects}.ndjson");
        bucket.put(&key, Bytes::from(body)).await?;
        objects += 1;
    }
    Ok((objects, bytes, events))
}

/// Resets the process's peak RSS (Linux: `5` to `/proc/self/clear_refs`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
