//! `verify`: accounts for every sent event against what a running moto
//! holds, e.g. after `demo --keep`, from the run's `sent.tsv` and function
//! log. Exit status 1 when anything was lost.

use std::path::PathBuf;
use std::process::ExitCode;

use bridge_local::aws::Clients;
use bridge_local::setup::{EVENTS_PREFIX, REJECTS_PREFIX};
use bridge_local::verify::{self, Evidence};
use bridge_local::{ledger, logs};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Reads S3 and the bridge's log back and accounts for every sent event")]
struct Args {
    /// moto's endpoint, e.g. http://127.0.0.1:5000.
    #[arg(long)]
    endpoint: String,
    #[arg(long, default_value = "analytics-events-archive")]
    bucket: String,
    /// The ledger of sent events (`id<TAB>sent_ms<TAB>valid`).
    #[arg(long)]
    sent: PathBuf,
    /// Log files with the bridge's dead letters and rejections (repeatable).
    /// After a replay, still pass the function's log: an event found in S3
    /// counts as delivered whatever the logs say, and the log holds the
    /// only copy of rejections the rejects stream did not take.
    #[arg(long)]
    log: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("verify: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> bridge_local::Result<u64> {
    let clients = Clients::new(&args.endpoint).await;
    let sent = ledger::read_tsv(&args.sent)?;
    let delivered = verify::read_prefix(&clients.s3, &args.bucket, EVENTS_PREFIX).await?;
    let rejected = verify::read_prefix(&clients.s3, &args.bucket, REJECTS_PREFIX).await?;
    let mut text = String::new();
    for path in &args.log {
        text.push_str(&std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?);
        text.push('\n');
    }
    let objects = logs::objects(&text);
    let (letters, unreadable) = logs::dead_letters(&objects);
    let rejection_logs = logs::rejections(&objects);
    let mut report = verify::account(&Evidence {
        sent: &sent,
        delivered: &delivered,
        rejected: &rejected,
        dead_letters: &letters,
        rejection_logs: &rejection_logs,
        landings: None,
    });
    report.unreadable_dead_letters += unreadable as u64;
    for line in report.lines() {
        println!("{line}");
    }
    println!("{}", report.json());
    Ok(report.lost)
}
