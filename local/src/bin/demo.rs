//! `make demo`: the whole pipeline on 127.0.0.1, then the account of every
//! event, and the delivered objects read back with DuckDB as the template's
//! Glue tables describe them. Progress goes to stderr; the report to stdout,
//! its last line one JSON object. Exit status 1 when the account is not
//! clean (anything lost, the contract misapplied, anything unreadable) or
//! DuckDB reads another count than the verifier, 2 when the run failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bridge_local::experiment::{Experiment, Findings, InvokeMode};
use bridge_local::faults::Faults;
use bridge_local::lake::{self, Lake};
use bridge_local::load::LoadConfig;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Runs the 5,000 events/s zero-loss experiment locally: kinesalite, moto, the bridge")]
struct Args {
    /// Events per second the load generator sends.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Firehose delivery streams the bridge spreads over.
    #[arg(long, default_value_t = 2)]
    streams: usize,
    /// Kinesis shards.
    #[arg(long, default_value_t = 10)]
    shards: u32,
    /// Faults of the proxy in front of Firehose, e.g. `throttle=0.2` or
    /// `throttle=0.3,down=analytics-events-1` (see `faults.rs`); empty for none.
    #[arg(long, default_value = "")]
    faults: String,
    /// Share of invalid events.
    #[arg(long, default_value_t = 0.01)]
    invalid: f64,
    /// Share of events sent inside KPL aggregates.
    #[arg(long, default_value_t = 0.1)]
    kpl: f64,
    /// Approximate size of an event in bytes.
    #[arg(long, default_value_t = 300)]
    event_size: usize,
    /// Concurrent PutRecords senders, each owning its own shards.
    #[arg(long, default_value_t = 5)]
    lanes: usize,
    /// How the event source mapping invokes the bridge: `library` (in
    /// process) or `cargo-lambda` (the function under `cargo lambda watch`).
    #[arg(long, value_parser = InvokeMode::parse, default_value = "library")]
    invoke: InvokeMode,
    /// A built bootstrap to run in the function's place, behind cargo lambda
    /// watch's Runtime API (an aarch64 one through qemu-user), e.g. the one
    /// `make package` zipped; overrides --invoke.
    #[arg(long)]
    bootstrap: Option<PathBuf>,
    /// A bridge setting, NAME=VALUE (repeatable), e.g. ON_PARTIAL_FAILURE=retry.
    #[arg(long = "bridge-env", value_parser = name_value)]
    bridge_env: Vec<(String, String)>,
    /// Poll interval of an idle shard, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// The event source mapping's MaximumRetryAttempts (default: the template's).
    #[arg(long)]
    max_retry_attempts: Option<u32>,
    /// The first pause before a failed batch is retried, in milliseconds.
    #[arg(long)]
    retry_delay_ms: Option<u64>,
    /// Seconds to wait for the mapping to catch up after the load.
    #[arg(long, default_value_t = 180)]
    drain_timeout: u64,
    /// Replay the dead letters at the end and account again.
    #[arg(long)]
    replay: bool,
    /// Keep moto running after the report, for `verify` and `replay` by
    /// hand, until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Where logs, the ledger and the report go (default: a new folder
    /// under the system's temporary directory).
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

fn name_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))
}

/// The machine's 1-minute load average: the demo shares the cores.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let load_before = load_average();
    let experiment = match experiment(&args) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("run folder: {}", experiment.run_dir.display());
    // Ctrl-C drops the run: moto and cargo lambda are ended by their pid.
    let outcome = tokio::select! {
        outcome = experiment.run() => outcome,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: stopping everything this run started");
            early_page(&experiment, "interrupted (Ctrl-C)");
            return ExitCode::from(130);
        }
    };
    match outcome {
        Ok(outcome) => finish(&args, outcome, &load_before).await,
        Err(e) => {
            eprintln!("the run failed: {e}");
            early_page(&experiment, &format!("the run failed: {e}"));
            ExitCode::from(2)
        }
    }
}

/// The experiment the arguments describe; an error names the bad one.
fn experiment(args: &Args) -> Result<Experiment, String> {
    let faults = Faults::parse(&args.faults).map_err(|e| format!("FAULTS: {e}"))?;
    let run_dir = args.run_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "bridge-local-{}-{}",
            std::process::id(),
            bridge_local::now_ms()
        ))
    });
    let mut experiment = Experiment::new(run_dir).map_err(|e| format!("the run failed: {e}"))?;
    experiment.load = LoadConfig {
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        invalid_share: args.invalid,
        kpl_share: args.kpl,
        event_size: args.event_size,
        lanes: args.lanes,
    };
    experiment.delivery_streams = args.streams;
    experiment.shards = args.shards;
    experiment.faults = faults;
    experiment.faults_spec = args.faults.clone();
    experiment.invoke = match &args.bootstrap {
        Some(path) => InvokeMode::Bootstrap(path.clone()),
        None => args.invoke.clone(),
    };
    experiment.esm.poll_interval = Duration::from_millis(args.poll_ms);
    if let Some(retries) = args.max_retry_attempts {
        experiment.esm.max_retry_attempts = retries;
    }
    if let Some(ms) = args.retry_delay_ms {
        experiment.esm.retry_delay = Duration::from_millis(ms);
    }
    experiment.bridge_env = args.bridge_env.clone();
    experiment.drain_timeout = Duration::from_secs(args.drain_timeout);
    experiment.replay = args.replay;
    experiment.keep_moto = args.keep;
    Ok(experiment)
}

/// Writes the page of a run that ended before its account.
fn early_page(experiment: &Experiment, why: &str) {
    match experiment.write_early_page(why) {
        Ok(page) => eprintln!("report page (what the run had): {}", page.display()),
        Err(e) => eprintln!("the report page could not be written: {e}"),
    }
}

/// Prints the run's findings, checks the lake, keeps moto when asked; the
/// exit status: 0 clean, 1 not.
async fn finish(args: &Args, mut outcome: Findings, load_before: &str) -> ExitCode {
    eprintln!(
        "machine load average (1 min) {load_before} at the start, {} at the end",
        load_average()
    );
    let lake = check_lake(&outcome);
    print_run(args, &outcome);
    print_account(&outcome, &lake);
    println!("{}", summary(args, &outcome, &lake));
    if let Some(moto) = outcome.moto.take() {
        eprintln!(
            "moto keeps running on {} (pid {}); for example\n  \
             cargo run -p bridge-local --bin verify -- --endpoint {} --sent {} --log {}\n\
             Ctrl-C ends it.",
            moto.endpoint(),
            moto.pid(),
            moto.endpoint(),
            outcome.run_dir.join("sent.tsv").display(),
            outcome.run_dir.join("function.log").display()
        );
        let _ = tokio::signal::ctrl_c().await;
        moto.stop();
    }
    if outcome.last_report().is_clean() && lake.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The lake read back with DuckDB, and how it disagrees with the verifier.
struct LakeCheck {
    lines: Vec<String>,
    problems: Vec<String>,
    rows: Option<u64>,
}

/// Has DuckDB read the run's `lake/` as the template's tables describe it,
/// against the verifier's count of the lines under `events/` (before any
/// replay: the lake was kept from the same read of the bucket).
fn check_lake(outcome: &Findings) -> LakeCheck {
    let dir = outcome.run_dir.join(lake::DIR);
    let report = outcome.report();
    let lines = report.delivered + report.duplicates;
    let read = Lake::from_repo().and_then(|lake| Ok((lake.read(&dir)?, lake)));
    match read {
        Ok((read, lake)) => LakeCheck {
            lines: read.lines(&dir),
            problems: read.disagreements(&lake, bridge_local::setup::EVENTS_PREFIX, lines),
            rows: read.rows.get("events").copied(),
        },
        Err(e) => LakeCheck {
            lines: Vec::new(),
            problems: vec![format!("the lake could not be read: {e}")],
            rows: None,
        },
    }
}

/// What the pipeline did: load, mapping, CPU, Firehose, fault proxy.
fn print_run(args: &Args, outcome: &Findings) {
    let load = &outcome.load;
    println!(
        "load: {:.0} events/s for {} s targeted, {:.0} events/s achieved ({} events in {} Kinesis records; \
         {} PutRecords calls, {:.1} ms each on average)",
        args.rate,
        args.duration,
        load.achieved_rate(),
        load.events_sent,
        load.records_sent,
        load.calls,
        load.mean_put_ms()
    );
    let esm = &outcome.esm;
    println!(
        "event source mapping: {} invocations, {} function errors, {} bisects, {} retries, {} partial-failure resumes, \
         {} batches given up ({} records), {} GetRecords errors{}",
        esm.invocations,
        esm.function_errors,
        esm.bisects,
        esm.retries,
        esm.partial_retries,
        esm.batches_given_up,
        esm.records_given_up,
        esm.get_records_errors,
        if outcome.drained { "" } else { ", NOT drained" }
    );
    let cpu = &outcome.cpu;
    let show = |s: Option<f64>| s.map_or("?".to_owned(), |s| format!("{s:.1} s"));
    println!(
        "CPU over the {:.0} s of load and drain ({} cores = {:.0} s available): kinesalite {}, moto Firehose+S3 {}, \
         this process {}",
        cpu.seconds,
        cpu.cores,
        cpu.seconds * cpu.cores as f64,
        show(cpu.kinesalite),
        show(cpu.moto_firehose_s3),
        show(cpu.pipeline)
    );
    if let Some(b) = &outcome.billing {
        println!(
            "Firehose: {} records, {} bytes of events sent as {} bytes, billed {} bytes: {:.3} billed bytes per event byte",
            b.firehose_records,
            b.event_bytes,
            b.firehose_bytes,
            b.firehose_billed_bytes,
            b.billed_per_event_byte()
        );
    }
    if let Some(p) = &outcome.proxy {
        println!(
            "fault proxy: {} PutRecordBatch calls, {} of {} entries throttled ({} over a quota), {} calls failed whole \
             ({} over a quota), {} limit violations",
            p.put_calls,
            p.entries_throttled,
            p.entries,
            p.entries_over_quota,
            p.calls_failed,
            p.calls_over_quota,
            p.limit_violations
        );
    }
}

/// The account, the replay's when there was one, and the lake.
fn print_account(outcome: &Findings, lake: &LakeCheck) {
    for line in outcome.report().lines() {
        println!("{line}");
    }
    if let Some((replay, report)) = &outcome.after_replay {
        for (pass, answers) in [("replay", &replay.first), ("replay again", &replay.again)] {
            for (prefix, answer) in answers.iter() {
                println!("{pass} {prefix}: {}", serde_json::to_string(answer).unwrap_or_default());
            }
        }
        println!("after the replay:");
        for line in report.lines() {
            println!("{line}");
        }
    }
    for line in lake.lines.iter().chain(&lake.problems) {
        println!("{line}");
    }
    println!(
        "run folder (logs, sent.tsv, report.json, run.json, lake/): {}",
        outcome.run_dir.display()
    );
    println!("report page: {}", outcome.page.display());
}

/// The run's last line: the final report with the run's figures.
fn summary(args: &Args, outcome: &Findings, lake: &LakeCheck) -> serde_json::Value {
    let load = &outcome.load;
    let esm = &outcome.esm;
    let cpu = &outcome.cpu;
    let mut json = serde_json::to_value(outcome.last_report()).unwrap_or_default();
    if let Some(map) = json.as_object_mut() {
        map.insert("target_rate".into(), args.rate.into());
        map.insert("achieved_rate".into(), (load.achieved_rate().round()).into());
        map.insert(
            "mean_put_records_ms".into(),
            ((load.mean_put_ms() * 10.0).round() / 10.0).into(),
        );
        map.insert("duration_s".into(), args.duration.into());
        map.insert("drained".into(), outcome.drained.into());
        map.insert("cpu".into(), serde_json::to_value(cpu).unwrap_or_default());
        map.insert("function_errors".into(), esm.function_errors.into());
        map.insert("bisects".into(), esm.bisects.into());
        map.insert("batches_given_up".into(), esm.batches_given_up.into());
        map.insert(
            "dead_lettered_before_replay".into(),
            outcome.report().dead_lettered.into(),
        );
        map.insert("given_up_before_replay".into(), outcome.report().given_up.into());
        map.insert("clean".into(), outcome.last_report().is_clean().into());
        map.insert("lake_events".into(), lake.rows.into());
        map.insert("lake_agrees".into(), lake.problems.is_empty().into());
        if let Some(b) = &outcome.billing {
            map.insert(
                "billed_per_event_byte".into(),
                ((b.billed_per_event_byte() * 1000.0).round() / 1000.0).into(),
            );
        }
        if let Some(p) = &outcome.proxy {
            map.insert("entries_throttled".into(), p.entries_throttled.into());
            map.insert("limit_violations".into(), p.limit_violations.into());
        }
    }
    json
}
