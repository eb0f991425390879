//! `make invoke`: the function's round trip as a user runs it by hand, in
//! one command. Local Firehose and S3 (moto) with the delivery streams, the
//! rejects stream and the bucket; the function under `cargo lambda watch`;
//! `cargo lambda invoke --data-file` on each file in `events/`; and, beside
//! each answer, what landed in S3 for that invocation, checked against
//! `events/expected.json`.
//!
//! Everything it starts is stopped at the end, also on Ctrl-C, unless it is
//! asked to keep it running: then it says how to use it from another
//! terminal and how to stop it.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kinesis_firehose_bridge::config::vars;
use kinesis_firehose_bridge::{compress, reject};
use serde::Deserialize;

use crate::Result;
use crate::aws::{self, Clients};
use crate::bucket::{self, Object};
use crate::cargo_lambda::{self, Watch};
use crate::child;
use crate::emulator::{self, Emulator};
use crate::invoke::FUNCTION;
use crate::setup::{self, EVENTS_PREFIX, REJECTS_PREFIX, Resources};

/// What an event file should deliver and reject (`events/expected.json`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Expected {
    pub holds: String,
    /// A JSON Schema in `events/` the file is meant for.
    #[serde(default)]
    pub schema: Option<String>,
    pub delivered: usize,
    pub rejected: BTreeMap<String, usize>,
}

/// `events/expected.json`.
pub fn expectations() -> Result<BTreeMap<String, Expected>> {
    let path = events_dir().join("expected.json");
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

pub fn events_dir() -> PathBuf {
    crate::repo_root().join("events")
}

/// One file's invocation and what it left in S3.
#[derive(Debug, Clone)]
pub struct Checked {
    pub file: String,
    /// The function's answer, as `cargo lambda invoke` printed it.
    pub answer: String,
    /// Event lines written under `events/` by this invocation.
    pub delivered: usize,
    /// Rejected records written under `rejects/`, by reason.
    pub rejected: BTreeMap<String, usize>,
    pub expected: Expected,
}

impl Checked {
    /// The answer is an empty `batchItemFailures` and S3 holds what the
    /// file should produce.
    pub fn matches(&self) -> bool {
        let answer: Option<serde_json::Value> = serde_json::from_str(self.answer.trim()).ok();
        let all_done = answer
            .as_ref()
            .and_then(|a| a.get("batchItemFailures"))
            .and_then(serde_json::Value::as_array)
            .is_some_and(Vec::is_empty);
        all_done && self.delivered == self.expected.delivered && self.rejected == self.expected.rejected
    }

    pub fn line(&self) -> String {
        format!(
            "{}: answer {} | S3: {} events under events/, rejects under rejects/ {:?} | expected {} and {:?}: {}",
            self.file,
            self.answer.trim(),
            self.delivered,
            self.rejected,
            self.expected.delivered,
            self.expected.rejected,
            if self.matches() { "OK" } else { "MISMATCH" }
        )
    }
}

/// What a round trip found, and how to reach what it kept running.
pub struct RoundTrip {
    pub checked: Vec<Checked>,
    pub kept: Option<Kept>,
}

/// What is left running after a round trip asked to keep it.
pub struct Kept {
    pub endpoint: String,
    pub invoke_port: u16,
    pub bucket: String,
    pub pids: Vec<u32>,
    pub env: Vec<(String, String)>,
}

/// Runs `files` (names in `events/`; every file of `expected.json` when
/// empty) through the function under `cargo lambda watch`.
pub async fn run(files: &[String], keep: bool, run_dir: &Path, say: impl Fn(&str)) -> Result<RoundTrip> {
    let expectations = expectations()?;
    let files = chosen(files, &expectations)?;
    std::fs::create_dir_all(run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    if keep {
        child::outlive_this_process();
    }
    let moto = Emulator::moto(run_dir).await?;
    let endpoint = moto.endpoint();
    let clients = Clients::new(&endpoint).await;
    let resources = Resources::new(2, 1);
    setup::create_delivery(&clients, &resources).await?;
    say(&format!(
        "moto (Firehose and S3) on {endpoint}: delivery streams {} and {}, bucket {}",
        resources.delivery_streams.join(", "),
        resources.rejects_stream,
        resources.bucket
    ));
    say("building the function (cargo build, the dev build `cargo test` makes: minutes from a fresh clone)...");
    cargo_lambda::build_function(run_dir, Instant::now() + Duration::from_secs(1_200)).await?;
    let port = emulator::free_port()?;
    let base_env = function_env(&endpoint, &resources);
    let mut watching = Watching {
        watch: start_watch(&base_env, None, port, run_dir, &say).await?,
        schema: None,
    };
    let mut checked = Vec::new();
    for file in &files {
        let expected = expectations[file].clone();
        if expected.schema != watching.schema {
            say(&format!(
                "restarting cargo lambda watch with {}={:?}",
                vars::EVENT_SCHEMA_FILE,
                expected.schema
            ));
            watching.watch.stop();
            watching.schema = expected.schema.clone();
            watching.watch = start_watch(&base_env, watching.schema.as_deref(), port, run_dir, &say).await?;
        }
        let check = check_file(&clients, &resources, port, file, expected).await?;
        say(&check.line());
        checked.push(check);
    }
    let kept = if keep {
        Some(keep_running(&moto, &watching, base_env, port, &resources)?)
    } else {
        watching.watch.stop();
        moto.stop();
        None
    };
    Ok(RoundTrip { checked, kept })
}

/// The function under `cargo lambda watch`, and the schema it runs with.
struct Watching {
    watch: Watch,
    schema: Option<String>,
}

/// The files to run: `files`, or every file `expected.json` names.
fn chosen(files: &[String], expectations: &BTreeMap<String, Expected>) -> Result<Vec<String>> {
    if files.is_empty() {
        return Ok(expectations.keys().cloned().collect());
    }
    match files.iter().find(|f| !expectations.contains_key(*f)) {
        Some(file) => Err(format!(
            "{file}: not an event file of events/expected.json (those are: {})",
            expectations.keys().cloned().collect::<Vec<_>>().join(", ")
        )
        .into()),
        None => Ok(files.to_vec()),
    }
}

/// Invokes the function with one event file and counts what it added to
/// the bucket.
async fn check_file(
    clients: &Clients,
    resources: &Resources,
    port: u16,
    file: &str,
    expected: Expected,
) -> Result<Checked> {
    let before = keys(clients, &resources.bucket).await?;
    let answer = invoke(port, &events_dir().join(file))?;
    let after = bucket::read_prefix(&clients.s3, &resources.bucket, "").await?;
    let new: Vec<&Object> = after.iter().filter(|o| !before.contains(&o.key)).collect();
    Ok(Checked {
        file: file.to_owned(),
        answer,
        delivered: count_events(&new),
        rejected: count_rejects(&new),
        expected,
    })
}

/// Leaves moto and the function running past this process, and writes
/// their process groups to [`pid_file`].
fn keep_running(
    moto: &Emulator,
    watching: &Watching,
    mut env: Vec<(String, String)>,
    port: u16,
    resources: &Resources,
) -> Result<Kept> {
    if let Some(schema) = &watching.schema {
        env.push((
            vars::EVENT_SCHEMA_FILE.to_owned(),
            events_dir().join(schema).display().to_string(),
        ));
    }
    let kept = Kept {
        endpoint: moto.endpoint(),
        invoke_port: port,
        bucket: resources.bucket.clone(),
        pids: vec![moto.pid(), watching.watch.pid()],
        env,
    };
    // Both outlive this process; `Kept` says how to end them.
    std::fs::write(
        pid_file(),
        kept.pids.iter().map(|p| format!("-{p} ")).collect::<String>(),
    )?;
    Ok(kept)
}

/// Where the process groups kept running are written, for `make
/// invoke-stop`.
pub fn pid_file() -> PathBuf {
    std::env::temp_dir().join("bridge-local-invoke.pids")
}

/// The function's environment against `endpoint`, as the template sets it.
fn function_env(endpoint: &str, resources: &Resources) -> Vec<(String, String)> {
    [
        (vars::DELIVERY_STREAMS, resources.delivery_streams.join(",")),
        (vars::REJECTS_DELIVERY_STREAM, resources.rejects_stream.clone()),
        (vars::UNDELIVERED_BUCKET, resources.bucket.clone()),
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", aws::REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec()
}

async fn start_watch(
    env: &[(String, String)],
    schema: Option<&str>,
    port: u16,
    run_dir: &Path,
    say: &impl Fn(&str),
) -> Result<Watch> {
    let mut env = env.to_vec();
    if let Some(schema) = schema {
        env.push((
            vars::EVENT_SCHEMA_FILE.to_owned(),
            events_dir().join(schema).display().to_string(),
        ));
    }
    say(&format!("starting cargo lambda watch on 127.0.0.1:{port}..."));
    let watch = Watch::start(&env, port, run_dir, Duration::from_secs(600)).await?;
    say(&format!(
        "ready: the function answers under cargo lambda watch (pid {}, log {})",
        watch.pid(),
        watch.log.display()
    ));
    Ok(watch)
}

/// `cargo lambda invoke --data-file FILE`; its output is the answer.
fn invoke(port: u16, file: &Path) -> Result<String> {
    let output = std::process::Command::new(cargo_lambda::binary_path())
        .current_dir(crate::repo_root())
        .args(["lambda", "invoke", FUNCTION, "--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &port.to_string()])
        .arg("--data-file")
        .arg(file)
        .output()
        .map_err(|e| format!("cargo lambda invoke: {e}"))?;
    let answer = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "cargo lambda invoke --data-file {} failed ({}): {answer}{}",
            file.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(answer)
}

async fn keys(clients: &Clients, bucket: &str) -> Result<HashSet<String>> {
    Ok(bucket::read_prefix(&clients.s3, bucket, "")
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect())
}

fn count_events(objects: &[&Object]) -> usize {
    objects
        .iter()
        .filter(|o| o.key.starts_with(EVENTS_PREFIX))
        .map(|o| {
            compress::open(&o.body, u64::MAX).map_or(0, |b| b.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count())
        })
        .sum()
}

/// Rejected records by reason: a record in parts counts once.
fn count_rejects(objects: &[&Object]) -> BTreeMap<String, usize> {
    let mut seen = BTreeSet::new();
    let mut by_reason = BTreeMap::new();
    for object in objects.iter().filter(|o| o.key.starts_with(REJECTS_PREFIX)) {
        let body = compress::open(&object.body, u64::MAX).unwrap_or_default();
        for line in reject::read_lines(&body).flatten() {
            if seen.insert((line.sequence_number.clone(), line.sub_sequence_number)) {
                *by_reason.entry(line.reason).or_insert(0) += 1;
            }
        }
    }
    by_reason
}

impl Kept {
    /// How to use what was kept from another terminal, and how to stop it.
    pub fn instructions(&self) -> String {
        let cargo_lambda = cargo_lambda::binary_path();
        let exports: Vec<String> = self
            .env
            .iter()
            .filter(|(k, _)| k.starts_with("AWS_") && k != "AWS_LAMBDA_LOG_FORMAT")
            .map(|(k, v)| format!("export {k}={v}"))
            .collect();
        let pids: Vec<String> = self.pids.iter().map(|p| format!("-{p}")).collect();
        format!(
            "moto (Firehose and S3) and the function under cargo lambda watch keep running. In another terminal:\n\
             \n{}\n\
             {} lambda invoke {FUNCTION} --invoke-address 127.0.0.1 --invoke-port {} --data-file {}\n\
             \nWhat landed is in s3://{}/ under events/ and rejects/ (and dead-letters/, rejects-unsent/ if anything \
             could not be delivered), for example with the AWS CLI:\n\
             aws s3 ls s3://{}/ --recursive\n\
             \nTo stop both: kill -- {}   (or: make invoke-stop)",
            exports.join("\n"),
            cargo_lambda.display(),
            self.invoke_port,
            events_dir().join("valid.json").display(),
            self.bucket,
            self.bucket,
            pids.join(" ")
        )
    }
}
