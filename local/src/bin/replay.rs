//! `replay`: the library's replay against a local stack (moto), as the
//! replay function runs it in AWS. Nothing is read from the shell's
//! environment: the bridge settings are the flags, so a run cannot write
//! another format than the stack's.
//!
//!   replay --endpoint http://127.0.0.1:5000 --bucket B --streams s0,s1 \
//!          --rejects-stream r --bridge-env COMPRESSION=gzip dead-letters/ aws/lambda/
//!
//! Prints one JSON answer per prefix. Exit status: 0 when every prefix is
//! done with nothing still failing; 1 when something still fails or is left;
//! 2 when an object could not be read or the request was refused.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;
use kinesis_firehose_bridge::config::vars;
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::SdkFirehose;
use kinesis_firehose_bridge::log::Stdout;
use kinesis_firehose_bridge::replay::{self, Request};
use kinesis_firehose_bridge::store::S3Store;
use kinesis_firehose_bridge::{Bridge, Config};

#[derive(Parser, Debug)]
#[command(about = "Replays what the stack set aside, each object once, with the stack's settings")]
struct Args {
    /// Prefixes under dead-letters/, rejects-unsent/, aws/lambda/ or rejects/.
    #[arg(required = true)]
    prefixes: Vec<String>,
    /// The local endpoint (moto), e.g. http://127.0.0.1:5000.
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    bucket: String,
    /// The delivery streams, comma-separated.
    #[arg(long)]
    streams: String,
    #[arg(long)]
    rejects_stream: Option<String>,
    /// More bridge settings, NAME=VALUE (COMPRESSION=gzip, PACK_EVENTS=…).
    #[arg(long = "bridge-env", value_parser = name_value)]
    bridge_env: Vec<(String, String)>,
    #[arg(long)]
    dry_run: bool,
}

fn name_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))
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
    let mut env: HashMap<String, String> = args.bridge_env.iter().cloned().collect();
    env.insert(vars::DELIVERY_STREAMS.to_owned(), args.streams.clone());
    env.insert(vars::UNDELIVERED_BUCKET.to_owned(), args.bucket.clone());
    if let Some(rejects) = &args.rejects_stream {
        env.insert(vars::REJECTS_DELIVERY_STREAM.to_owned(), rejects.clone());
    }
    let config = replay::settings(Config::from_lookup(|name| env.get(name).cloned())?);
    let contract = Contract::load(config.event_schema_file.as_deref(), config.event_schema_formats)?;
    let sdk = bridge_local::aws::config(&args.endpoint).await;
    let s3 = bridge_local::aws::s3(&sdk);
    let firehose = SdkFirehose::new(aws_sdk_firehose::Client::new(&sdk));
    let store = Some(S3Store::new(s3.clone(), args.bucket.clone()));
    let bridge = Bridge::new(config, contract, firehose, store);
    let bucket = S3Store::new(s3, args.bucket.clone());
    let id = format!("replay-{}", std::process::id());
    let mut clean = true;
    for prefix in args.prefixes {
        let request = Request {
            prefix,
            bucket: None,
            dry_run: args.dry_run,
        };
        let answer = replay::run(&bridge, &bucket, &request, None, &id, &Stdout)
            .await
            .map_err(|e| e.to_string())?;
        println!("{}", serde_json::to_string(&answer)?);
        if !answer.unreadable.is_empty() {
            return Err(format!(
                "{} objects under {} could not be read",
                answer.unreadable.len(),
                request.prefix
            )
            .into());
        }
        clean &= answer.done && answer.events_still_failing == 0;
    }
    Ok(clean)
}
