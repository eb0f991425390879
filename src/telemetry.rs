//! Logging setup, read like the rest of the configuration through a lookup.
//!
//! Lambda's advanced logging controls set `AWS_LAMBDA_LOG_FORMAT` (`JSON` or
//! `Text`) and `AWS_LAMBDA_LOG_LEVEL`; `RUST_LOG` wins over the level when
//! set, for local runs. Lines are JSON unless the format is `Text`: the
//! summary, metrics, dead letters and rejections are JSON whatever the
//! format (`report`), so that everything the function writes reads the same
//! way, under Lambda and under `cargo lambda watch` alike.

use tracing_subscriber::EnvFilter;

pub fn init(lookup: impl Fn(&str) -> Option<String>) {
    let filter = lookup("RUST_LOG")
        .or_else(|| lookup("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_lowercase()))
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = !lookup("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("text"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time();
    let result = if json {
        builder.json().flatten_event(true).with_current_span(false).try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    // A subscriber set already (tests, embedding) is not an error.
    drop(result);
}
