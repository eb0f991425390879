//! `fault-proxy`: the fault-injection proxy on its own, in front of a
//! running moto, e.g. for `cargo lambda watch` with `AWS_ENDPOINT_URL`
//! pointing at it. Runs until Ctrl-C, then prints what it did.

use std::process::ExitCode;

use bridge_local::faults::Faults;
use bridge_local::proxy::{Proxy, ProxyStats};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Fails, throttles and delays Firehose PutRecordBatch calls on their way to moto")]
struct Args {
    /// moto's endpoint, e.g. http://127.0.0.1:5000.
    #[arg(long)]
    upstream: String,
    /// e.g. `throttle=0.3,down=analytics-events-1` or
    /// `quota=us-east-1,quota_scale=0.001` (see faults.rs).
    #[arg(long, default_value = "")]
    faults: String,
    /// Address to listen on (127.0.0.1 only).
    #[arg(long, default_value = "127.0.0.1:4599")]
    listen: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let faults = match Faults::parse(&args.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fault-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.listen.starts_with("127.") && !args.listen.starts_with("localhost:") {
        eprintln!("fault-proxy: listen on a loopback address, e.g. 127.0.0.1:4599");
        return ExitCode::from(2);
    }
    let proxy = match Proxy::bind(&args.listen, &args.upstream, faults.clone()).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("fault-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "fault proxy on {} -> {} with {faults:?}; Ctrl-C stops it",
        proxy.endpoint(),
        args.upstream
    );
    let _ = tokio::signal::ctrl_c().await;
    let s = &proxy.stats;
    eprintln!(
        "{} PutRecordBatch calls, {} of {} entries throttled ({} over a quota), {} calls failed whole ({} over a \
         quota), {} limit violations",
        ProxyStats::get(&s.put_calls),
        ProxyStats::get(&s.entries_throttled),
        ProxyStats::get(&s.entries),
        ProxyStats::get(&s.entries_over_quota),
        ProxyStats::get(&s.calls_failed),
        ProxyStats::get(&s.calls_over_quota),
        ProxyStats::get(&s.limit_violations)
    );
    ExitCode::SUCCESS
}
