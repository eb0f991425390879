//! The real function behind `cargo lambda watch`, for invoking it through
//! the Lambda Runtime API instead of in-process.
//!
//! `cargo lambda` is installed by `make cargo-lambda` into
//! `.venv/cargo-lambda` (pinned, from PyPI). `watch --only-lambda-apis`
//! serves the Runtime API and the invoke endpoint on 127.0.0.1:9000; the
//! function itself (the bridge's binary, built by cargo first) runs as
//! `concurrency` processes started here, as Lambda runs one instance per
//! concurrent invocation. They reach the Runtime API through a
//! [`RuntimeShim`] that gives invocations a real deadline (see there why),
//! which is also why this starts the function rather than letting `watch`
//! start it: `watch` forces `AWS_LAMBDA_RUNTIME_API` to its own address.
//!
//! Every process is ended by its pid. The logs (the function's are where
//! its dead letters are) go to the run folder, outside the project.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Result;
use crate::child::Guarded;
use crate::invoke::{FUNCTION, RuntimeApi};
use crate::runtime_shim::RuntimeShim;

pub const PORT: u16 = 9000;

/// Where `make cargo-lambda` installs it; `CARGO_LAMBDA` overrides it.
pub fn binary_path() -> PathBuf {
    std::env::var_os("CARGO_LAMBDA")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join(".venv/cargo-lambda/bin/cargo-lambda"))
}

/// [`binary_path`], or an error that says how to install it.
fn installed() -> Result<PathBuf> {
    let cargo_lambda = binary_path();
    if cargo_lambda.exists() {
        Ok(cargo_lambda)
    } else {
        Err(format!(
            "cargo-lambda is not installed: {} does not exist. Run `make cargo-lambda` first.",
            cargo_lambda.display()
        )
        .into())
    }
}

pub struct CargoLambda {
    // Field order is drop order: functions first, then the APIs they use.
    functions: Vec<Guarded>,
    _shim: RuntimeShim,
    watch: Guarded,
    /// The function instances' logs.
    pub function_logs: Vec<PathBuf>,
}

impl CargoLambda {
    /// Builds the function (or takes the `bootstrap` given, run as
    /// [`crate::bootstrap`] says), starts `cargo lambda watch
    /// --only-lambda-apis` and `concurrency` instances with `env`, and
    /// waits until an invocation with an empty batch answers.
    pub async fn start(
        bootstrap: Option<&Path>,
        env: &[(String, String)],
        concurrency: usize,
        timeout: Duration,
        log_dir: &Path,
        ready_within: Duration,
    ) -> Result<Self> {
        let cargo_lambda = installed()?;
        let until = Instant::now() + ready_within;
        let function = match bootstrap {
            Some(path) => path.to_path_buf(),
            None => build_function(log_dir, until).await?,
        };

        let mut watch = Command::new(&cargo_lambda);
        watch
            .current_dir(crate::repo_root())
            .args(["lambda", "watch", "--only-lambda-apis"])
            .args(["--invoke-address", "127.0.0.1", "--invoke-port", &PORT.to_string()]);
        let mut watch = Guarded::spawn("cargo lambda watch", watch, &log_dir.join("cargo-lambda.log"))?;
        while tokio::net::TcpStream::connect(("127.0.0.1", PORT)).await.is_err() {
            if let Some(status) = watch.exited() {
                return Err(format!(
                    "cargo lambda watch exited ({status}); see its log in {}",
                    log_dir.display()
                )
                .into());
            }
            if Instant::now() > until {
                return Err(format!("cargo lambda watch did not listen on 127.0.0.1:{PORT}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let shim = RuntimeShim::start(&format!("http://127.0.0.1:{PORT}"), timeout).await?;
        let mut functions = Vec::new();
        let mut function_logs = Vec::new();
        for instance in 0..concurrency.max(1) {
            let mut command = crate::bootstrap::command(&function)?;
            command
                .env("AWS_LAMBDA_RUNTIME_API", shim.runtime_api(FUNCTION))
                .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
                .envs(env.iter().map(|(k, v)| (k, v)));
            let log = log_dir.join(format!("function-{instance}.log"));
            functions.push(Guarded::spawn("the function", command, &log)?);
            function_logs.push(log);
        }
        let lambda = CargoLambda {
            functions,
            _shim: shim,
            watch,
            function_logs,
        };
        lambda.wait_until_ready(until).await?;
        Ok(lambda)
    }

    pub fn invoke_url(&self) -> String {
        invoke_url(PORT)
    }

    pub fn pid(&self) -> u32 {
        self.watch.pid()
    }

    pub fn function_pids(&self) -> Vec<u32> {
        self.functions.iter().map(Guarded::pid).collect()
    }

    async fn wait_until_ready(&self, until: Instant) -> Result<()> {
        let probe = RuntimeApi::new(self.invoke_url(), Duration::from_secs(30));
        loop {
            match probe.invoke(br#"{"Records":[]}"#).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() > until => {
                    return Err(format!("the function behind cargo lambda watch does not answer: {}", e.0).into());
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
}

/// The function under plain `cargo lambda watch`, as a user runs it: watch
/// starts the function itself, with the environment it was given, and
/// serves the invoke endpoint `cargo lambda invoke` talks to.
pub struct Watch {
    process: Guarded,
    pub port: u16,
    pub log: PathBuf,
}

impl Watch {
    /// Starts `cargo lambda watch` on `port` with `env` and waits until an
    /// empty batch gets an answer. The function should be built first
    /// ([`build_function`]), or the first answer waits for the build.
    pub async fn start(env: &[(String, String)], port: u16, log_dir: &Path, ready_within: Duration) -> Result<Self> {
        let cargo_lambda = installed()?;
        let log = log_dir.join(format!("cargo-lambda-watch-{port}.log"));
        let mut command = Command::new(&cargo_lambda);
        command
            .current_dir(crate::repo_root())
            .args([
                "lambda",
                "watch",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
            ])
            .envs(env.iter().map(|(k, v)| (k, v)));
        let mut process = Guarded::spawn("cargo lambda watch", command, &log)?;
        let url = invoke_url(port);
        let probe = RuntimeApi::new(url, Duration::from_secs(60));
        let until = Instant::now() + ready_within;
        loop {
            if let Some(status) = process.exited() {
                return Err(format!("cargo lambda watch exited ({status}); see {}", log.display()).into());
            }
            match probe.invoke(br#"{"Records":[]}"#).await {
                Ok(_) => break,
                Err(e) if Instant::now() > until => {
                    return Err(format!(
                        "the function under cargo lambda watch does not answer: {}; see {}",
                        e.0,
                        log.display()
                    )
                    .into());
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        Ok(Watch { process, port, log })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn stop(mut self) {
        self.process.stop(Duration::from_secs(5));
    }
}

/// The invoke endpoint of `cargo lambda watch` on `port`.
pub fn invoke_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/2015-03-31/functions/{FUNCTION}/invocations")
}

/// Builds the bridge's binary with cargo (the dev profile `cargo lambda
/// watch` uses) and returns its path. It builds what `cargo test
/// --workspace` builds (the workspace's features, the test targets), so
/// under the tests the binary is already there and nothing is rebuilt.
pub async fn build_function(log_dir: &Path, until: Instant) -> Result<PathBuf> {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(crate::repo_root())
        .args(["build", "--workspace", "--tests", "--bin", FUNCTION]);
    let log = log_dir.join("function-build.log");
    let mut build = Guarded::spawn("cargo build", command, &log)?;
    loop {
        if let Some(status) = build.exited() {
            if !status.success() {
                return Err(format!("building the function failed ({status}); see {}", log.display()).into());
            }
            break;
        }
        if Instant::now() > until {
            return Err(format!("building the function took too long; see {}", log.display()).into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"));
    Ok(target.join("debug").join(FUNCTION))
}
