//! `make invoke`: the function's round trip, as a user runs it by hand, in
//! one command (see `round_trip`). Prints each event file's answer beside
//! what landed in S3; exit status 1 when one differs from
//! `events/expected.json`, 2 when the round trip could not run.

use std::path::PathBuf;
use std::process::ExitCode;

use bridge_local::round_trip;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Invokes the function under cargo lambda watch with each file of events/ and checks S3")]
struct Args {
    /// Event files of events/ (default: all of events/expected.json).
    files: Vec<String>,
    /// Leave moto and cargo lambda watch running, and say how to use them.
    #[arg(long)]
    keep: bool,
    /// Where logs go (default: a new folder under the temporary directory).
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let run_dir = args.run_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "bridge-invoke-{}-{}",
            std::process::id(),
            bridge_local::now_ms()
        ))
    });
    eprintln!("run folder (logs): {}", run_dir.display());
    let say = |line: &str| eprintln!("{line}");
    // Ctrl-C drops the round trip: what it started ends by its pid.
    let result = tokio::select! {
        result = round_trip::run(&args.files, args.keep, &run_dir, say) => result,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: stopping everything this round trip started");
            return ExitCode::from(130);
        }
    };
    match result {
        Ok(trip) => {
            let mismatches = trip.checked.iter().filter(|c| !c.matches()).count();
            println!(
                "{} event files invoked, {} as expected, {mismatches} not",
                trip.checked.len(),
                trip.checked.len() - mismatches
            );
            if let Some(kept) = &trip.kept {
                println!("\n{}", kept.instructions());
            }
            if mismatches == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("invoke: {e}");
            ExitCode::from(2)
        }
    }
}
