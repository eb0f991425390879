//! `verify`: accounts for every sent event against what a running local
//! pipeline holds (e.g. after `demo --keep`), from the run's `sent.tsv` and
//! the function's log. Exit status 1 when the account is not clean:
//! anything lost, an invalid event delivered or a valid one rejected, or
//! anything that could not be read; 2 when the inputs cannot be read.

use std::path::PathBuf;
use std::process::ExitCode;

use bridge_local::aws::Clients;
use bridge_local::bucket::Contents;
use bridge_local::ledger;
use bridge_local::logs::Logged;
use bridge_local::verify::{self, Evidence};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Reads S3 and the bridge's log back and accounts for every sent event")]
struct Args {
    /// The endpoint of Firehose and S3 (moto), e.g. http://127.0.0.1:5000.
    #[arg(long)]
    endpoint: String,
    #[arg(long, default_value = "analytics-events-archive")]
    bucket: String,
    /// The ledger of sent events (`id<TAB>sent_ms<TAB>valid`).
    #[arg(long)]
    sent: PathBuf,
    /// Log files with the bridge's dead letters and rejections (repeatable).
    /// After a replay, still pass the function's log: an event found in S3
    /// counts as delivered whatever the logs say.
    #[arg(long)]
    log: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("verify: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> bridge_local::Result<bool> {
    let clients = Clients::new(&args.endpoint).await;
    let sent = ledger::read_tsv(&args.sent)?;
    let contents = Contents::read(&clients.s3, &args.bucket).await?;
    let mut log = Logged::default();
    for path in &args.log {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        log.add(&text, &path.display().to_string());
    }
    let report = verify::account(&Evidence {
        sent: &sent,
        contents: &contents,
        log: &log,
        landings: None,
    })
    .report;
    for line in report.lines() {
        println!("{line}");
    }
    println!("{}", report.json());
    Ok(report.is_clean())
}
