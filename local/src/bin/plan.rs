//! `make plan RATE=… EVENT_BYTES=… [REGION=…] [SAMPLE=file]`: the capacity
//! plan (`plan.rs`). Prints the shards, delivery streams, Lambda
//! concurrency and monthly cost; its last line is the template's
//! `--parameter-overrides`. Exit status 2 on an impossible input, named.

use std::path::PathBuf;
use std::process::ExitCode;

use bridge_local::plan::{self, Inputs, Plan, TemplateSettings};
use bridge_local::quota::{OTHER_REGIONS, Quota};
use bridge_local::template::{self, Deployed};
use bridge_local::wire;
use clap::Parser;
use kinesis_firehose_bridge::config::vars;
use kinesis_firehose_bridge::limits::DIRECT_PUT_QUOTA_REGIONS;

#[derive(Parser, Debug)]
#[command(about = "Shards, delivery streams, Lambda concurrency and monthly cost for a rate of events")]
struct Args {
    /// Events per second (RATE).
    #[arg(long)]
    rate: String,
    /// Mean bytes of an event as producers send it (EVENT_BYTES).
    #[arg(long)]
    event_bytes: String,
    /// The AWS Region (REGION): its Firehose quota.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// A file of events, one JSON object per line (SAMPLE), to measure what
    /// the bridge sends per event; default: the demo's events of EVENT_BYTES.
    #[arg(long)]
    sample: Option<PathBuf>,
    /// The function's compression, `gzip` or `none` (COMPRESSION; default:
    /// the template's `Compression`).
    #[arg(long)]
    compression: Option<String>,
    /// Billed milliseconds per invocation, for Lambda's duration cost: an
    /// estimate (Lambda was not measured).
    #[arg(long, default_value_t = 100.0)]
    invocation_ms: f64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("make plan: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: &Args) -> bridge_local::Result<String> {
    let number = |name: &str, value: &str| -> bridge_local::Result<f64> {
        value
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("{name}={value:?}: expected a number").into())
    };
    let rate = number("RATE", &args.rate)?;
    let event_bytes = number("EVENT_BYTES", &args.event_bytes)?;
    plan::check(rate, event_bytes)?;
    let quota = Quota::in_region(&args.region).ok_or_else(|| {
        format!(
            "REGION={:?}: not a Region with a published Firehose quota; known: {} and {}",
            args.region,
            DIRECT_PUT_QUOTA_REGIONS.join(", "),
            OTHER_REGIONS.join(", ")
        )
    })?;
    let mut settings = template_settings()?;
    if let Some(compression) = args.compression.as_deref().filter(|c| !c.is_empty()) {
        settings.compression = compression.to_owned();
    }
    let (events, sample) = match &args.sample {
        Some(path) => (wire::read_sample(path)?, path.display().to_string()),
        None => (
            // Eight batches, within 64 MiB of events.
            wire::demo_events(
                (settings.batch_size * 8)
                    .min((64.0 * 1048576.0 / event_bytes) as usize)
                    .max(1),
                event_bytes as usize,
            ),
            format!("the demo's events of about {event_bytes:.0} bytes"),
        ),
    };
    let compression = settings.compression.clone();
    let wire = wire::measure(
        &events,
        settings.batch_size,
        &[(vars::COMPRESSION, compression.as_str())],
    )
    .await?;
    let inputs = Inputs {
        rate,
        event_bytes,
        region: args.region.clone(),
        quota,
        wire,
        sample,
        template: settings,
        invocation_seconds: args.invocation_ms / 1000.0,
    };
    let plan = Plan::new(&inputs)?;
    Ok(plan::render(&inputs, &plan))
}

/// What the plan reads from `template.yaml`: the event source mapping, the
/// function, and the parameters' defaults and bounds.
fn template_settings() -> bridge_local::Result<TemplateSettings> {
    let path = bridge_local::repo_root().join("template.yaml");
    let deployed = Deployed::read(&path)?;
    let parameters = template::parameters(&path)?;
    let parameter = |name: &str| {
        parameters
            .get(name)
            .cloned()
            .ok_or_else(|| format!("{}: no parameter {name}", path.display()))
    };
    let default_number = |name: &str| -> bridge_local::Result<f64> {
        let p = parameter(name)?;
        p.default
            .as_deref()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| format!("{}: {name} has no numeric default", path.display()).into())
    };
    Ok(TemplateSettings {
        batch_size: deployed.batch_size,
        batching_window_s: deployed.maximum_batching_window.as_secs_f64(),
        parallelization_factor: deployed.parallelization_factor,
        memory_mb: deployed.function_memory_mb,
        compression: parameter("Compression")?.default.unwrap_or_else(|| "gzip".to_owned()),
        max_delivery_streams: parameter("DeliveryStreamCount")?.largest().unwrap_or(1) as usize,
        max_shards: parameter("ShardCount")?.largest().unwrap_or(u64::MAX) as usize,
        buffer_interval_s: default_number("BufferIntervalSeconds")?,
        buffer_mib: default_number("BufferSizeMiB")?,
    })
}
