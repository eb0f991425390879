//! One whole run of the pipeline, as `make demo` and the tests do it:
//! moto, the resources, the fault proxy if asked for, the bridge (in-process
//! or under `cargo lambda watch`), the event source mapping, the load; then
//! drain, read everything back and account for every event; optionally
//! replay the dead letters and account again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kinesis_firehose_bridge::backoff::{Backoff, Budget};
use kinesis_firehose_bridge::dead_letter::DeadLetter;
use kinesis_firehose_bridge::delivery::Policy;
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::SdkFirehose;
use kinesis_firehose_bridge::{Bridge, Config};
use serde::Serialize;
use tokio::time::Instant;

use crate::aws::{self, Clients};
use crate::cargo_lambda::CargoLambda;
use crate::esm::{EsmConfig, EsmStats, EventSourceMapping};
use crate::faults::Faults;
use crate::invoke::{Invoker, Library, LogFile, RuntimeApi, Tallies};
use crate::landing::{Clocked, Landings};
use crate::ledger::Ledger;
use crate::load::{self, LoadConfig, LoadStats};
use crate::moto::Moto;
use crate::progress::{self, Snapshot};
use crate::proxy::{Proxy, ProxyStats};
use crate::setup::{self, EVENTS_PREFIX, REJECTS_PREFIX, Resources};
use crate::verify::{self, Evidence, Report};
use crate::{Result, logs, replay};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeMode {
    /// The bridge's library in this process (fast; the default).
    Library,
    /// The function under `cargo lambda watch`, through its invoke endpoint.
    CargoLambda,
}

#[derive(Debug, Clone)]
pub struct Experiment {
    pub load: LoadConfig,
    pub delivery_streams: usize,
    pub shards: u32,
    pub faults: Faults,
    pub invoke: InvokeMode,
    pub esm: EsmConfig,
    /// The bridge's settings beyond the stream names, e.g.
    /// `ON_PARTIAL_FAILURE=retry`.
    pub bridge_env: Vec<(String, String)>,
    /// The function's timeout (60 s in the deployment template).
    pub function_timeout: Duration,
    /// How long to wait, after the load, for the mapping to catch up.
    pub drain_timeout: Duration,
    /// Logs, the ledger and the report go here (outside the project).
    pub run_dir: PathBuf,
    /// Print a progress line to stderr every this often.
    pub progress: Option<Duration>,
    /// After the report, replay the dead letters (past the fault proxy, as
    /// an operator would once the streams are healthy) and report again.
    pub replay: bool,
    /// Leave moto (Firehose and S3) running after the report (in
    /// [`Outcome::moto`]), for `verify` and `replay` by hand.
    pub keep_moto: bool,
}

impl Experiment {
    /// The default experiment: 5,000 events/s for 60 s, 2 delivery
    /// streams, 10 shards, 1% invalid, no faults, in-process.
    pub fn new(run_dir: PathBuf) -> Self {
        Experiment {
            load: LoadConfig::default(),
            delivery_streams: 2,
            shards: 10,
            faults: Faults::none(),
            invoke: InvokeMode::Library,
            esm: EsmConfig::default(),
            bridge_env: Vec::new(),
            function_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(180),
            run_dir,
            progress: Some(Duration::from_secs(2)),
            replay: false,
            keep_moto: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EsmSummary {
    pub invocations: u64,
    pub function_errors: u64,
    pub partial_retries: u64,
    pub records_resent: u64,
    pub get_records_errors: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxySummary {
    pub put_calls: u64,
    pub entries: u64,
    pub entries_throttled: u64,
    pub calls_failed: u64,
    pub limit_violations: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplaySummary {
    pub dead_letters: usize,
    pub records: usize,
    pub records_delivered: usize,
    pub events_delivered: usize,
    pub still_failed: usize,
}

/// CPU seconds each part used during the run, to see where the time goes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUse {
    pub seconds: f64,
    pub moto_kinesis: Option<f64>,
    pub moto_firehose_s3: Option<f64>,
    /// This process: load generator, event source mapping, the in-process
    /// bridge, the fault proxy, the verifier.
    pub pipeline: Option<f64>,
}

#[derive(Debug)]
pub struct Outcome {
    /// The account right after the run.
    pub report: Report,
    /// The account after replaying the dead letters, when asked for.
    pub after_replay: Option<(ReplaySummary, Report)>,
    pub load: LoadStats,
    pub esm: EsmSummary,
    pub proxy: Option<ProxySummary>,
    /// Whether the mapping caught up with everything sent.
    pub drained: bool,
    /// From the start of the load to the end of the drain.
    pub cpu: CpuUse,
    pub dead_letters: usize,
    pub run_dir: PathBuf,
    /// moto, still running, when [`Experiment::keep_moto`] asked for it.
    pub moto: Option<Moto>,
}

impl Outcome {
    /// The final account: after the replay when there was one.
    pub fn last_report(&self) -> &Report {
        self.after_replay.as_ref().map_or(&self.report, |(_, r)| r)
    }
}

/// Prints to stderr when progress is on.
fn say(on: bool, message: impl AsRef<str>) {
    if on {
        eprintln!("{}", message.as_ref());
    }
}

impl Experiment {
    pub async fn run(&self) -> Result<Outcome> {
        let talk = self.progress.is_some();
        std::fs::create_dir_all(&self.run_dir)
            .map_err(|e| format!("cannot create the run folder {}: {e}", self.run_dir.display()))?;
        // Two moto servers: each serves its requests on one core (Python's
        // GIL), and the stream's traffic is the heaviest.
        let kinesis_moto = Moto::start(&self.run_dir).await?;
        let moto = Moto::start(&self.run_dir).await?;
        say(
            talk,
            format!(
                "moto: Kinesis on {} (pid {}), Firehose and S3 on {} (pid {})",
                kinesis_moto.endpoint(),
                kinesis_moto.pid(),
                moto.endpoint(),
                moto.pid()
            ),
        );
        let clients = Clients::split(&kinesis_moto.endpoint(), &moto.endpoint()).await;
        let resources = Resources::new(self.delivery_streams, self.shards);
        let shards = setup::create(&clients, &resources).await?;
        say(
            talk,
            format!(
                "created stream {} ({} shards), delivery streams {} and {} to s3://{}",
                resources.stream,
                shards.len(),
                resources.delivery_streams.join(", "),
                resources.rejects_stream,
                resources.bucket
            ),
        );

        let proxy = if self.faults.is_none() {
            None
        } else {
            let proxy = Proxy::start(&moto.endpoint(), self.faults.clone()).await?;
            say(
                talk,
                format!("fault proxy on {} with {:?}", proxy.endpoint(), self.faults),
            );
            Some(proxy)
        };
        let firehose_endpoint = proxy.as_ref().map_or_else(|| moto.endpoint(), Proxy::endpoint);

        let mut env: HashMap<String, String> = HashMap::from([
            ("DELIVERY_STREAMS".to_owned(), resources.delivery_streams.join(",")),
            ("REJECTS_DELIVERY_STREAM".to_owned(), resources.rejects_stream.clone()),
        ]);
        env.extend(self.bridge_env.iter().cloned());
        let landings = Arc::new(Landings::default());
        let (invoker, log_paths, lambda) = match self.invoke {
            InvokeMode::Library => {
                let config = Config::from_lookup(|k| env.get(k).cloned())?;
                let firehose = Clocked {
                    inner: SdkFirehose::new(aws::firehose(&firehose_endpoint).await),
                    landings: landings.clone(),
                };
                let bridge = Bridge::new(config, Contract::Default, firehose, None);
                let log_path = self.run_dir.join("function.log");
                let library = Library {
                    bridge,
                    timeout: self.function_timeout,
                    log: LogFile::create(&log_path)?,
                    tallies: Arc::new(Tallies::default()),
                };
                (Invoker::Library(library), vec![log_path], None)
            }
            InvokeMode::CargoLambda => {
                let mut lambda_env: Vec<(String, String)> = env.clone().into_iter().collect();
                lambda_env.extend(
                    [
                        ("AWS_ENDPOINT_URL", firehose_endpoint.as_str()),
                        ("AWS_ACCESS_KEY_ID", "testing"),
                        ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_REGION", aws::REGION),
                        ("AWS_DEFAULT_REGION", aws::REGION),
                    ]
                    .map(|(k, v)| (k.to_owned(), v.to_owned())),
                );
                say(talk, "building the function and starting cargo lambda watch...");
                let lambda = CargoLambda::start(
                    &lambda_env,
                    shards.len(),
                    self.function_timeout,
                    &self.run_dir,
                    Duration::from_secs(900),
                )
                .await?;
                say(
                    talk,
                    format!(
                        "cargo lambda watch (pid {}) serving {}; function instances (pids {:?})",
                        lambda.pid(),
                        lambda.invoke_url(),
                        lambda.function_pids()
                    ),
                );
                let api = RuntimeApi::new(lambda.invoke_url(), self.function_timeout + Duration::from_secs(10));
                let log_paths = lambda.function_logs.clone();
                (Invoker::RuntimeApi(api), log_paths, Some(lambda))
            }
        };
        let invoker = Arc::new(invoker);

        let esm_stats = Arc::new(EsmStats::default());
        let mapping = Arc::new(EventSourceMapping {
            kinesis: clients.kinesis.clone(),
            stream: resources.stream.clone(),
            stream_arn: resources.stream_arn(),
            config: self.esm.clone(),
            invoker: invoker.clone(),
            stats: esm_stats.clone(),
        });
        let esm_stop = Arc::new(AtomicBool::new(false));
        let esm_task = tokio::spawn(mapping.run(shards.clone(), esm_stop.clone()));

        let ledger = Arc::new(Ledger::default());
        let load_stop = Arc::new(AtomicBool::new(false));
        say(
            talk,
            format!(
                "sending {:.0} events/s for {} s ({:.0}% invalid, {:.0}% in KPL aggregates)",
                self.load.rate,
                self.load.duration.as_secs(),
                self.load.invalid_share * 100.0,
                self.load.kpl_share * 100.0
            ),
        );
        let started = Instant::now();
        let cpu_at_start = (
            kinesis_moto.cpu_seconds(),
            moto.cpu_seconds(),
            crate::child::cpu_seconds(std::process::id()),
        );
        let mut load_task = tokio::spawn(load::run(
            clients.kinesis.clone(),
            resources.stream.clone(),
            shards.clone(),
            self.load.clone(),
            ledger.clone(),
            load_stop.clone(),
        ));

        let snapshot = || {
            let tallies = invoker.tallies();
            let of = |f: fn(&Tallies) -> &std::sync::atomic::AtomicU64| tallies.map(|t| Tallies::get(f(t)));
            Snapshot {
                elapsed: started.elapsed(),
                sent: ledger.events_sent(),
                records_sent: ledger.records_sent(),
                records_done: EsmStats::get(&esm_stats.records_done),
                invocations: EsmStats::get(&esm_stats.invocations),
                function_errors: EsmStats::get(&esm_stats.function_errors),
                delivered: of(|t| &t.events_delivered),
                rejected: of(|t| &t.events_rejected),
                dead_lettered: of(|t| &t.events_dead_lettered),
                throttled: proxy.as_ref().map(|p| ProxyStats::get(&p.stats.entries_throttled)),
                millis_behind: EsmStats::get(&esm_stats.millis_behind),
            }
        };
        let tick = self.progress.unwrap_or(Duration::from_secs(1));
        let mut previous = snapshot();
        let load_stats = loop {
            tokio::select! {
                finished = &mut load_task => {
                    break finished.map_err(|e| format!("the load generator panicked: {e}"))??;
                }
                _ = tokio::time::sleep(tick) => {
                    let now = snapshot();
                    say(talk, progress::line(&now, &previous));
                    previous = now;
                }
            }
        };
        say(
            talk,
            format!(
                "load done: {} events in {} records, {:.0} events/s achieved ({} due but not sent); draining...",
                load_stats.events_sent,
                load_stats.records_sent,
                load_stats.achieved_rate(),
                load_stats.events_not_sent
            ),
        );
        let drain_until = Instant::now() + self.drain_timeout;
        let drained = loop {
            if EsmStats::get(&esm_stats.records_done) >= ledger.records_sent() {
                break true;
            }
            if Instant::now() > drain_until {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if previous.elapsed + tick <= started.elapsed() {
                let now = snapshot();
                say(talk, progress::line(&now, &previous));
                previous = now;
            }
        };
        say(
            talk,
            if drained {
                format!("drained after {:.1} s", started.elapsed().as_secs_f64())
            } else {
                format!(
                    "NOT drained within {:?}: {} of {} records done",
                    self.drain_timeout,
                    EsmStats::get(&esm_stats.records_done),
                    ledger.records_sent()
                )
            },
        );
        let cpu = CpuUse {
            seconds: started.elapsed().as_secs_f64(),
            moto_kinesis: kinesis_moto.cpu_seconds().zip(cpu_at_start.0).map(|(a, b)| a - b),
            moto_firehose_s3: moto.cpu_seconds().zip(cpu_at_start.1).map(|(a, b)| a - b),
            pipeline: crate::child::cpu_seconds(std::process::id())
                .zip(cpu_at_start.2)
                .map(|(a, b)| a - b),
        };
        esm_stop.store(true, Ordering::Relaxed);
        load_stop.store(true, Ordering::Relaxed);
        match tokio::time::timeout(self.esm.poll_interval + Duration::from_secs(30), esm_task).await {
            Ok(Ok(result)) => result?,
            Ok(Err(e)) => return Err(format!("the event source mapping panicked: {e}").into()),
            Err(_) => say(
                talk,
                "the event source mapping did not stop in time; reading what is there",
            ),
        }
        if let Invoker::Library(library) = &*invoker {
            library.log.flush();
        }

        let esm = EsmSummary {
            invocations: EsmStats::get(&esm_stats.invocations),
            function_errors: EsmStats::get(&esm_stats.function_errors),
            partial_retries: EsmStats::get(&esm_stats.partial_retries),
            records_resent: EsmStats::get(&esm_stats.records_resent),
            get_records_errors: EsmStats::get(&esm_stats.get_records_errors),
            last_error: esm_stats.last_error.lock().ok().and_then(|e| e.clone()),
        };
        let proxy_summary = proxy.as_ref().map(|p| ProxySummary {
            put_calls: ProxyStats::get(&p.stats.put_calls),
            entries: ProxyStats::get(&p.stats.entries),
            entries_throttled: ProxyStats::get(&p.stats.entries_throttled),
            calls_failed: ProxyStats::get(&p.stats.calls_failed),
            limit_violations: ProxyStats::get(&p.stats.limit_violations),
        });
        drop(proxy);

        ledger.write_tsv(&self.run_dir.join("sent.tsv"))?;
        say(talk, "reading S3 and the function log back...");
        let sent = ledger.events();
        // The function instances end first, so that their logs are whole.
        drop(lambda);
        let logged = Logged::read(&log_paths);
        let report = account(&clients, &resources, &sent, &logged, &landings).await?;
        let letters = logged.dead_letters.clone();

        let after_replay = if self.replay && !letters.is_empty() {
            say(talk, format!("replaying {} dead letters...", letters.len()));
            let firehose = Clocked {
                inner: SdkFirehose::new(clients.firehose.clone()),
                landings: landings.clone(),
            };
            let replayed = replay::replay(&firehose, &resources.delivery_streams, &letters, replay_policy()).await;
            let summary = ReplaySummary {
                dead_letters: letters.len(),
                records: replayed.records,
                records_delivered: replayed.records_delivered,
                events_delivered: replayed.events_delivered,
                still_failed: replayed.failed.len(),
            };
            // The replayed records are delivered now: account again, with
            // only the letters that still failed as dead letters (kept in
            // a log of their own for the next replay).
            let log = LogFile::create(&self.run_dir.join("replay-failed.log"))?;
            for letter in &replayed.failed {
                log.write(
                    "ERROR",
                    "record could not be delivered; replay it from this line",
                    letter,
                );
            }
            log.flush();
            let after = Logged {
                dead_letters: replayed.failed.clone(),
                rejections: logged.rejections.clone(),
                unreadable: logged.unreadable,
            };
            let again = account(&clients, &resources, &sent, &after, &landings).await?;
            Some((summary, again))
        } else {
            None
        };

        kinesis_moto.stop();
        let moto = if self.keep_moto {
            Some(moto)
        } else {
            moto.stop();
            None
        };
        let outcome = Outcome {
            report,
            after_replay,
            load: load_stats,
            esm,
            proxy: proxy_summary,
            drained,
            cpu,
            dead_letters: letters.len(),
            run_dir: self.run_dir.clone(),
            moto,
        };
        std::fs::write(self.run_dir.join("report.json"), outcome.last_report().json())?;
        Ok(outcome)
    }
}

/// A replay is not bound by an invocation's deadline: more attempts,
/// longer waits.
pub fn replay_policy() -> Policy {
    Policy {
        max_attempts: 10,
        backoff: Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        },
        budget: Budget::unbounded(),
    }
}

/// Reads S3 and accounts for `sent`, given what the function logged.
async fn account(
    clients: &Clients,
    resources: &Resources,
    sent: &[crate::ledger::Sent],
    logged: &Logged,
    landings: &Landings,
) -> Result<Report> {
    let delivered = verify::read_prefix(&clients.s3, &resources.bucket, EVENTS_PREFIX).await?;
    let rejected = verify::read_prefix(&clients.s3, &resources.bucket, REJECTS_PREFIX).await?;
    let mut report = verify::account(&Evidence {
        sent,
        delivered: &delivered,
        rejected: &rejected,
        dead_letters: &logged.dead_letters,
        rejection_logs: &logged.rejections,
        landings: Some(landings),
    });
    report.unreadable_dead_letters += logged.unreadable as u64;
    Ok(report)
}

/// The dead letters and rejections in the function's log.
struct Logged {
    dead_letters: Vec<DeadLetter>,
    rejections: Vec<kinesis_firehose_bridge::reject::RejectLine>,
    unreadable: usize,
}

impl Logged {
    fn read(paths: &[PathBuf]) -> Self {
        let text: String = paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let objects = logs::objects(&text);
        let (dead_letters, unreadable) = logs::dead_letters(&objects);
        Logged {
            dead_letters,
            rejections: logs::rejections(&objects),
            unreadable,
        }
    }
}
