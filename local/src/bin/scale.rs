//! `make scale`: the streams sweep and the load sweep (`scale.rs`), one
//! JSON line per point on stdout, progress on stderr, then the targets
//! checked on the sweep's own figures and the report page. Exit status 1
//! when a target is missed, 2 when a point did not reach a steady state
//! or could not run.

use std::process::ExitCode;
use std::time::Duration;

use bridge_local::scale::{self, Design, Figures, Setup};
use bridge_local::template::Deployed;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Sweeps delivery streams and load through the local pipeline with a Firehose quota per stream")]
struct Args {
    /// The two points CI runs instead of the whole sweep.
    #[arg(long)]
    short: bool,
    /// Seconds of load per point (default: the design's).
    #[arg(long)]
    duration: Option<u64>,
    /// Only this sweep: `streams` or `load` (default: both).
    #[arg(long)]
    sweep: Option<String>,
    /// Progress lines every this many seconds (0: none).
    #[arg(long, default_value_t = 10)]
    progress: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut design = if args.short { Design::short() } else { Design::full() };
    match args.sweep.as_deref() {
        None => {}
        Some("streams") => design.factors.clear(),
        Some("load") => design.stream_counts.clear(),
        Some(other) => {
            eprintln!("make scale: --sweep {other:?}: expected streams or load");
            return ExitCode::from(2);
        }
    }
    if let Some(seconds) = args.duration {
        design.duration = Duration::from_secs(seconds);
        design.warmup = design.warmup.min(design.duration / 3);
    }
    // Ctrl-C drops the run in progress: its servers are ended by their pid.
    tokio::select! {
        outcome = sweep(&design, &args) => match outcome {
            Ok(code) => code,
            Err(e) => {
                eprintln!("make scale: {e}");
                ExitCode::from(2)
            }
        },
        _ = tokio::signal::ctrl_c() => {
            eprintln!("make scale: interrupted; every server the run started is stopped");
            ExitCode::from(130)
        }
    }
}

async fn sweep(design: &Design, args: &Args) -> bridge_local::Result<ExitCode> {
    let deployed = Deployed::from_repo()?;
    let setup = Setup::new(design, &deployed).await?;
    let (planned, quota) = (setup.planned_streams, &setup.quota);
    let dir = scale::run_dir();
    eprintln!(
        "the bridge sends {:.1} bytes per event of the load (batches of {}); each stream's quota: {} ({:.0} \
         bytes/s, {:.1} requests/s, {:.0} records/s), about {:.0} events/s; bridge settings {}; the plan gives \
         {planned} streams for the streams sweep's {:.0} events/s. Runs under {}",
        setup.wire.bytes_per_event(),
        deployed.batch_size,
        setup.spec,
        quota.bytes_per_s,
        quota.requests_per_s,
        quota.records_per_s,
        design.quota_events_per_s,
        setup
            .bridge_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        design.streams_rate,
        dir.display()
    );
    let progress = (args.progress > 0).then(|| Duration::from_secs(args.progress));
    let mut points: Vec<Figures> = Vec::new();
    for point in design.points() {
        eprintln!(
            "== {:?} sweep: {} stream(s), {} shards, {:.0} events/s for {:?}",
            point.sweep, point.streams, point.shards, point.rate, design.duration
        );
        let name = format!("{:?}-{}-streams-x{}", point.sweep, point.streams, point.factor).to_lowercase();
        let figures = scale::run_point(design, &point, &setup, &dir.join(name), progress).await?;
        println!("{}", figures.line());
        let unsteady = figures.unsteady.clone();
        points.push(figures);
        if let Some(why) = unsteady {
            write_page(&points, &dir);
            eprintln!(
                "make scale: the {:?} sweep at {} stream(s) did not reach a steady state in {:?}: {why}",
                point.sweep, point.streams, design.duration
            );
            return Ok(ExitCode::from(2));
        }
    }
    write_page(&points, &dir);
    let misses = scale::misses(&points, planned);
    if misses.is_empty() {
        eprintln!("make scale: every target met (the plan's {planned} streams included)");
        Ok(ExitCode::SUCCESS)
    } else {
        for miss in &misses {
            eprintln!("make scale: target missed: {miss}");
        }
        Ok(ExitCode::from(1))
    }
}

fn write_page(points: &[Figures], dir: &std::path::Path) {
    match bridge_local::scale_page::write(points, dir) {
        Ok(page) => eprintln!("report page: {}", page.display()),
        Err(e) => eprintln!("the report page could not be written: {e}"),
    }
}
