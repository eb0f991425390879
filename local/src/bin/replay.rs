//! `replay`: dead letters back into Firehose.
//!
//! Reads the bridge's dead-letter log lines, or the output of `aws logs
//! filter-log-events` (JSON or text), from a file or stdin, and delivers
//! the records with the bridge's own delivery code. Dead letters that still
//! fail are written to `--failed` (default: stdout) as dead-letter lines,
//! so they can be replayed again; exit status 1 when there are any.
//!
//! With `--endpoint` it talks to that local endpoint with dummy
//! credentials; without, it uses the standard AWS configuration (profile,
//! region, `AWS_ENDPOINT_URL`).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use bridge_local::experiment::replay_policy;
use bridge_local::{logs, replay};
use clap::Parser;
use kinesis_firehose_bridge::firehose::SdkFirehose;

#[derive(Parser, Debug)]
#[command(about = "Delivers dead letters logged by the bridge to Firehose again")]
struct Args {
    /// File of log lines; `-` or nothing for stdin.
    input: Option<PathBuf>,
    /// Delivery streams to send to, comma-separated (default: the
    /// DELIVERY_STREAMS environment variable, else the streams the dead
    /// letters name).
    #[arg(long, value_delimiter = ',')]
    streams: Vec<String>,
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

async fn run(args: Args) -> bridge_local::Result<bool> {
    let mut text = String::new();
    match args.input.as_deref() {
        None => std::io::stdin().read_to_string(&mut text).map(drop)?,
        Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_string(&mut text).map(drop)?,
        Some(path) => text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
    }
    let (letters, unreadable) = logs::dead_letters(&logs::objects(&text));
    if unreadable > 0 {
        eprintln!("{unreadable} dead_letter lines could not be read and are skipped");
    }
    if letters.is_empty() {
        eprintln!("no dead letters found");
        return Ok(unreadable == 0);
    }
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
    let client = match &args.endpoint {
        Some(endpoint) => bridge_local::aws::firehose(endpoint).await,
        None => aws_sdk_firehose::Client::new(&aws_config::load_from_env().await),
    };
    let mut policy = replay_policy();
    policy.max_attempts = args.max_attempts.max(1);
    eprintln!("replaying {} dead letters to {}", letters.len(), streams.join(", "));
    let replayed = replay::replay(&SdkFirehose::new(client), &streams, &letters, policy).await;
    eprintln!(
        "{} of {} records delivered ({} events) in {} calls; {} dead letters still failing",
        replayed.records_delivered,
        replayed.records,
        replayed.events_delivered,
        replayed.calls,
        replayed.failed.len()
    );
    let mut out = String::new();
    for letter in &replayed.failed {
        out.push_str(&serde_json::to_string(letter)?);
        out.push('\n');
    }
    match &args.failed {
        Some(path) => std::fs::write(path, out)?,
        None => print!("{out}"),
    }
    Ok(replayed.failed.is_empty())
}
