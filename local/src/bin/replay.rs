//! `replay`: what the pipeline could not deliver, delivered again.
//!
//! Inputs, any mix of them:
//! - files (or `-` for stdin) holding the bridge's log lines, `aws logs
//!   filter-log-events` output (JSON or text), the bodies of its
//!   `dead-letters/` or `rejects-unsent/` objects, or an on-failure object
//!   the event source mapping wrote under `aws/lambda/`;
//! - `--bucket` (and `--prefix`): every such object in a bucket.
//!
//! Dead letters are delivered with the bridge's delivery code; given-up
//! batches run through the bridge itself. Rejected records are put back
//! together and, with `--rejects files:DIR`, written one file each, or with
//! `--rejects bridge`, handed to the bridge again (once the contract is
//! fixed). Nothing is deleted.
//!
//! Exit status: 0 when everything was delivered (or written); 1 when
//! something is still undelivered (dead letters that still fail go to
//! `--failed`, default stdout); 2 when an input could not be read: every
//! unreadable line is named with its number, and nothing is replayed.
//!
//! With `--endpoint` it talks to that local endpoint with dummy
//! credentials; without, it uses the standard AWS configuration.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use bridge_local::bucket;
use bridge_local::experiment::replay_policy;
use bridge_local::logs::Logged;
use bridge_local::on_failure::{self, InvocationRecord};
use bridge_local::replay;
use clap::Parser;
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::SdkFirehose;
use kinesis_firehose_bridge::reject;
use kinesis_firehose_bridge::report::Stdout;
use kinesis_firehose_bridge::store::S3Store;
use kinesis_firehose_bridge::undelivered::{DEAD_LETTERS_PREFIX, REJECTS_UNSENT_PREFIX};
use kinesis_firehose_bridge::{Bridge, Config};

#[derive(Parser, Debug)]
#[command(about = "Delivers again what the bridge's pipeline could not: dead letters, given-up batches, rejects")]
struct Args {
    /// Files of log lines or S3 object bodies; `-` for stdin.
    inputs: Vec<PathBuf>,
    /// Read the undelivered records kept in this bucket (dead-letters/,
    /// rejects-unsent/ and aws/lambda/, or only --prefix).
    #[arg(long)]
    bucket: Option<String>,
    #[arg(long)]
    prefix: Option<String>,
    /// Delivery streams to send to, comma-separated (default: the
    /// DELIVERY_STREAMS environment variable, else the streams the dead
    /// letters name).
    #[arg(long, value_delimiter = ',')]
    streams: Vec<String>,
    /// The rejects stream, for records that run through the bridge again
    /// (default: REJECTS_DELIVERY_STREAM).
    #[arg(long)]
    rejects_stream: Option<String>,
    /// What to do with rejected records: `report` (count them), `files:DIR`
    /// (write each payload to a file) or `bridge` (run them through the
    /// bridge again).
    #[arg(long, default_value = "report")]
    rejects: String,
    /// A local endpoint, e.g. http://127.0.0.1:5000 (moto).
    #[arg(long)]
    endpoint: Option<String>,
    /// Calls per record before it counts as failed again.
    #[arg(long, default_value_t = 10)]
    max_attempts: u32,
    /// Where to write the dead letters that still failed.
    #[arg(long)]
    failed: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("replay: {e}");
            ExitCode::from(2)
        }
    }
}

enum Rejects {
    Report,
    Files(PathBuf),
    Bridge,
}

async fn run(args: Args) -> bridge_local::Result<bool> {
    let rejects = match args.rejects.as_str() {
        "report" => Rejects::Report,
        "bridge" => Rejects::Bridge,
        other => match other.strip_prefix("files:") {
            Some(dir) if !dir.is_empty() => Rejects::Files(PathBuf::from(dir)),
            _ => return Err(format!("--rejects {other:?}: expected report, files:DIR or bridge").into()),
        },
    };
    let sdk = match &args.endpoint {
        Some(endpoint) => bridge_local::aws::config(endpoint).await,
        None => aws_config::load_from_env().await,
    };
    let s3 = bridge_local::aws::s3(&sdk);

    // Everything to replay, read first: nothing is sent unless all of it
    // could be read.
    let mut logged = Logged::default();
    let mut given_up: Vec<(String, InvocationRecord)> = Vec::new();
    let mut add = |name: &str, bytes: &[u8]| -> bridge_local::Result<()> {
        if looks_like_on_failure(bytes) {
            given_up.push((
                name.to_owned(),
                InvocationRecord::parse(bytes).map_err(|e| format!("{name}: {e}"))?,
            ));
        } else {
            logged.add(&String::from_utf8_lossy(bytes), name);
        }
        Ok(())
    };
    for input in &args.inputs {
        if input.as_os_str() == "-" {
            let mut text = Vec::new();
            std::io::stdin().read_to_end(&mut text)?;
            add("stdin", &text)?;
        } else {
            let bytes = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
            add(&input.display().to_string(), &bytes)?;
        }
    }
    if let Some(bucket_name) = &args.bucket {
        let prefixes = match &args.prefix {
            Some(prefix) => vec![prefix.clone()],
            None => [DEAD_LETTERS_PREFIX, REJECTS_UNSENT_PREFIX, on_failure::PREFIX]
                .map(str::to_owned)
                .to_vec(),
        };
        for prefix in prefixes {
            for object in bucket::read_prefix(&s3, bucket_name, &prefix).await? {
                add(&format!("s3://{bucket_name}/{}", object.key), &object.body)?;
            }
        }
    }
    if args.inputs.is_empty() && args.bucket.is_none() {
        return Err("nothing to replay: name files (or - for stdin), or --bucket".into());
    }
    if !logged.unreadable.is_empty() {
        for unreadable in &logged.unreadable {
            eprintln!("replay: cannot read {unreadable}");
        }
        return Err(format!(
            "{} lines could not be read (named above); nothing was replayed. Mend or remove them and run again.",
            logged.unreadable.len()
        )
        .into());
    }
    if args.bucket.is_none() && !logged.stored.is_empty() {
        let objects: Vec<&str> = logged.stored.iter().map(|s| s.object.as_str()).collect();
        eprintln!(
            "the log names {} S3 objects that hold undelivered records, e.g. {}: replay them with --bucket",
            objects.len(),
            objects[0]
        );
    }
    let recovered = reject::recover(logged.reject_lines()).map_err(|e| format!("rejected records: {e}"))?;
    let letters = logged.letters();
    eprintln!(
        "found {} dead letters, {} batches given up on ({} records), {} rejected records",
        letters.len(),
        given_up.len(),
        given_up.iter().map(|(_, r)| r.batch_info.batch_size).sum::<usize>(),
        recovered.len()
    );
    // Whether the dead letters can be put back together at all: a missing
    // part is named, and fails the run.
    kinesis_firehose_bridge::dead_letter::reassemble(&letters).map_err(|e| e.to_string())?;

    let mut streams = args.streams.clone();
    if streams.is_empty()
        && let Ok(list) = std::env::var("DELIVERY_STREAMS")
    {
        streams = list
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
    }
    if streams.is_empty() {
        for letter in &letters {
            if !streams.contains(&letter.delivery_stream) {
                streams.push(letter.delivery_stream.clone());
            }
        }
    }
    let firehose = SdkFirehose::new(aws_sdk_firehose::Client::new(&sdk));
    let mut done = true;

    if !letters.is_empty() {
        let mut policy = replay_policy();
        policy.max_attempts = args.max_attempts.max(1);
        eprintln!("replaying {} dead letters to {}", letters.len(), streams.join(", "));
        let replayed = replay::replay(&firehose, &streams, &letters, policy).await;
        eprintln!(
            "dead letters: {} of {} records delivered ({} events) in {} calls; {} dead letters still failing",
            replayed.records_delivered,
            replayed.records,
            replayed.events_delivered,
            replayed.calls,
            replayed.failed.len()
        );
        if !replayed.failed.is_empty() {
            done = false;
            let mut out = String::new();
            for letter in &replayed.failed {
                out.push_str(&serde_json::to_string(letter)?);
                out.push('\n');
            }
            match &args.failed {
                Some(path) => std::fs::write(path, out)?,
                None => print!("{out}"),
            }
        }
    }

    let mut batches: Vec<(String, kinesis_firehose_bridge::batch::KinesisBatch)> = Vec::new();
    for (name, record) in &given_up {
        batches.push((name.clone(), record.batch()?));
    }
    match &rejects {
        Rejects::Report if !recovered.is_empty() => {
            let mut by_reason: HashMap<&str, usize> = HashMap::new();
            for r in &recovered {
                *by_reason.entry(r.line.reason.as_str()).or_default() += 1;
            }
            eprintln!(
                "rejected records, left as they are: {by_reason:?} (--rejects files:DIR writes them out, --rejects bridge \
                 runs them through the bridge again)"
            );
        }
        Rejects::Report => {}
        Rejects::Files(dir) => {
            let paths = replay::rejects_to_files(&recovered, dir)?;
            eprintln!("wrote {} rejected payloads to {}", paths.len(), dir.display());
        }
        Rejects::Bridge => batches.push(("rejected records".to_owned(), replay::rejects_as_batch(&recovered))),
    }
    if !batches.is_empty() {
        let env = |name: &str| std::env::var(name).ok();
        let rejects_stream = args.rejects_stream.clone().or_else(|| env("REJECTS_DELIVERY_STREAM"));
        let joined = streams.join(",");
        let config = Config::from_lookup(|name| match name {
            "DELIVERY_STREAMS" => Some(joined.clone()),
            "REJECTS_DELIVERY_STREAM" => rejects_stream.clone(),
            "UNDELIVERED_BUCKET" => args.bucket.clone().or_else(|| env(name)),
            // A replay keeps what still fails as dead letters.
            "ON_PARTIAL_FAILURE" => Some("log".to_owned()),
            other => env(other),
        })?;
        let contract = Contract::load(config.event_schema_file.as_deref(), config.event_schema_formats)?;
        let store = config.undelivered_bucket.clone().map(|b| S3Store::new(s3.clone(), b));
        let bridge = Bridge::new(config, contract, firehose, store);
        let redriven = replay::through_bridge(&bridge, &batches, &Stdout, 5).await;
        eprintln!(
            "through the bridge: {} batches, {} records, {} invocations: {} events delivered, {} rejected, {} dead-lettered",
            redriven.batches,
            redriven.records,
            redriven.invocations,
            redriven.events_delivered,
            redriven.events_rejected,
            redriven.events_dead_lettered
        );
        for failure in &redriven.failed {
            eprintln!("not replayed: {failure}");
        }
        done &= redriven.failed.is_empty() && redriven.events_dead_lettered == 0;
    }
    Ok(done)
}

/// An on-failure object is one JSON document with `requestContext`.
fn looks_like_on_failure(bytes: &[u8]) -> bool {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
    bytes[start..].starts_with(b"{") && {
        let head = &bytes[start..bytes.len().min(start + 200)];
        head.windows(16).any(|w| w == b"\"requestContext\"")
    }
}
