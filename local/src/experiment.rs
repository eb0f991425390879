//! One whole run of the pipeline, as `make demo` and the tests do it:
//! kinesalite and moto, the resources, the fault proxy if asked for, the
//! bridge (in-process or under `cargo lambda watch`), the event source
//! mapping as the template deploys it, the load; then drain, read
//! everything back and account for every event; optionally replay what was
//! not delivered and account again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kinesis_firehose_bridge::config::vars;
use kinesis_firehose_bridge::event::Contract;
use kinesis_firehose_bridge::firehose::SdkFirehose;
use kinesis_firehose_bridge::replay::{self, Answer, Request};
use kinesis_firehose_bridge::store::S3Store;
use kinesis_firehose_bridge::undelivered::DEAD_LETTERS_PREFIX;
use kinesis_firehose_bridge::{Bridge, Config};
use serde::Serialize;
use tokio::time::Instant;

use crate::Result;
use crate::aws::{self, ACCOUNT, Clients, REGION};
use crate::bucket::Contents;
use crate::cargo_lambda::CargoLambda;
use crate::cpu::{CpuMeter, CpuUse};
use crate::emulator::Emulator;
use crate::esm::{EsmConfig, EsmStats, EventSourceMapping, OnFailureDestination};
use crate::faults::Faults;
use crate::invoke::{FUNCTION, Invoker, Library, LogFile, RuntimeApi, Tallies};
use crate::landing::{Clocked, Landings};
use crate::ledger::{Ledger, Sent};
use crate::load::{self, LoadConfig, LoadStats};
use crate::logs::Logged;
use crate::on_failure;
use crate::progress::{self, Snapshot};
use crate::proxy::{Proxy, ProxyStats};
use crate::report_page::{self, RunRecord, Settings};
use crate::setup::{self, Resources};
use crate::template::Deployed;
use crate::verify::{self, Account, Evidence, Report};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeMode {
    /// The bridge's library in this process (fast; the default).
    Library,
    /// The function under `cargo lambda watch`, through its invoke endpoint.
    CargoLambda,
    /// A built `bootstrap` (e.g. the arm64 one `make package` zipped, under
    /// qemu-user) behind `cargo lambda watch`'s Runtime API.
    Bootstrap(PathBuf),
}

impl InvokeMode {
    /// `library` or `cargo-lambda` (a bootstrap is given by its path).
    pub fn parse(name: &str) -> std::result::Result<Self, String> {
        match name {
            "library" => Ok(InvokeMode::Library),
            "cargo-lambda" => Ok(InvokeMode::CargoLambda),
            other => Err(format!("{other:?}: expected library or cargo-lambda")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Experiment {
    pub load: LoadConfig,
    pub delivery_streams: usize,
    pub shards: u32,
    pub faults: Faults,
    /// The faults as they were written, for the report page.
    pub faults_spec: String,
    pub invoke: InvokeMode,
    /// The event source mapping: the template's, unless a test changes it.
    pub esm: EsmConfig,
    /// The bridge's settings as the template deploys them (its parameters'
    /// defaults, e.g. `COMPRESSION=gzip`).
    pub deployed_env: Vec<(String, String)>,
    /// The bridge's settings beyond the stream names that this run changes,
    /// e.g. `ON_PARTIAL_FAILURE=retry`: they take the place of the deployed
    /// ones.
    pub bridge_env: Vec<(String, String)>,
    /// The function's timeout: the template's.
    pub function_timeout: Duration,
    /// How long to wait, after the load, for the mapping to catch up.
    pub drain_timeout: Duration,
    /// Logs, the ledger and the report go here (outside the project).
    pub run_dir: PathBuf,
    /// Print a progress line to stderr every this often.
    pub progress: Option<Duration>,
    /// After the report, replay what was not delivered (past the fault
    /// proxy, as an operator would once the streams are healthy) and
    /// report again.
    pub replay: bool,
    /// Leave moto (Firehose and S3) running after the report (in
    /// [`Findings::moto`]), for `verify` and `replay` by hand.
    pub keep_moto: bool,
    /// What the run has recorded so far, for a page should it end early.
    pub recording: Arc<Recording>,
}

/// What a run records as it goes: when the load started and the counters
/// once a second.
#[derive(Debug, Default)]
pub struct Recording {
    started_ms: std::sync::atomic::AtomicU64,
    timeline: std::sync::Mutex<Vec<Snapshot>>,
}

impl Recording {
    fn start(&self, at_ms: u64) {
        self.started_ms.store(at_ms, Ordering::Relaxed);
    }

    fn push(&self, snapshot: Snapshot) {
        if let Ok(mut timeline) = self.timeline.lock() {
            timeline.push(snapshot);
        }
    }

    fn timeline(&self) -> Vec<Snapshot> {
        self.timeline.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl Experiment {
    /// The default experiment: 5,000 events/s for 60 s, 2 delivery
    /// streams, 10 shards, 1% invalid, no faults, in-process, with the
    /// event source mapping, function timeout and bridge settings
    /// `template.yaml` deploys.
    pub fn new(run_dir: PathBuf) -> Result<Self> {
        let deployed = Deployed::from_repo()?;
        Ok(Experiment {
            load: LoadConfig::default(),
            delivery_streams: 2,
            shards: 10,
            faults: Faults::none(),
            faults_spec: String::new(),
            invoke: InvokeMode::Library,
            esm: EsmConfig::deployed(&deployed),
            deployed_env: deployed.function_environment.clone(),
            bridge_env: Vec::new(),
            function_timeout: deployed.function_timeout,
            drain_timeout: Duration::from_secs(180),
            run_dir,
            progress: Some(Duration::from_secs(2)),
            replay: false,
            keep_moto: false,
            recording: Arc::new(Recording::default()),
        })
    }

    /// The run's settings, as the report page shows them.
    pub fn settings(&self) -> Settings {
        Settings {
            rate: self.load.rate,
            duration_s: self.load.duration.as_secs(),
            shards: self.shards,
            delivery_streams: self.delivery_streams,
            faults: self.faults_spec.clone(),
            invoke: match &self.invoke {
                InvokeMode::Library => "in process (the bridge's library)".to_owned(),
                InvokeMode::CargoLambda => "the function under cargo lambda watch".to_owned(),
                InvokeMode::Bootstrap(path) => format!("{} behind cargo lambda watch", path.display()),
            },
            bridge_env: self.function_env(),
            event_source_mapping: format!(
                "batches of {}, window {:?}, {} retries, records up to {:?} old, bisect {}",
                self.esm.batch_size,
                self.esm.batching_window,
                self.esm.max_retry_attempts,
                self.esm.max_record_age,
                self.esm.bisect_on_error
            ),
        }
    }

    /// The bridge's settings of this run: the deployed ones, then the
    /// run's own.
    pub fn function_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .deployed_env
            .iter()
            .filter(|(name, _)| !self.bridge_env.iter().any(|(n, _)| n == name))
            .cloned()
            .collect();
        env.extend(self.bridge_env.iter().cloned());
        env
    }

    /// Writes the page of a run that ended before its account, with what it
    /// recorded; returns the page's path.
    pub fn write_early_page(&self, why: &str) -> Result<PathBuf> {
        let record = RunRecord {
            settings: self.settings(),
            started_ms: self.recording.started_ms.load(Ordering::Relaxed),
            timeline: self.recording.timeline(),
            ended_early: Some(why.to_owned()),
            ..RunRecord::default()
        };
        report_page::write(&record, &self.run_dir)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EsmSummary {
    pub invocations: u64,
    pub function_errors: u64,
    pub partial_retries: u64,
    pub bisects: u64,
    pub retries: u64,
    pub batches_given_up: u64,
    pub records_given_up: u64,
    pub records_resent: u64,
    pub get_records_errors: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxySummary {
    pub put_calls: u64,
    pub entries: u64,
    pub entries_throttled: u64,
    pub entries_over_quota: u64,
    pub calls_failed: u64,
    pub calls_over_quota: u64,
    pub limit_violations: u64,
}

/// What the replay after the run did: one answer per recovery prefix it
/// read, for the first replay and for a second one, which must find
/// everything claimed and deliver nothing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplaySummary {
    pub first: Vec<(String, Answer)>,
    pub again: Vec<(String, Answer)>,
}

/// What Firehose billed for the run's records (in-process runs only).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Billing {
    pub firehose_records: u64,
    pub event_bytes: u64,
    pub firehose_bytes: u64,
    pub firehose_billed_bytes: u64,
}

impl Billing {
    /// Billed bytes per byte of events: the cost figure.
    pub fn billed_per_event_byte(&self) -> f64 {
        self.firehose_billed_bytes as f64 / self.event_bytes.max(1) as f64
    }
}

/// What the in-process bridge did, added up over its invocations.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BridgeSummary {
    pub invocations: u64,
    pub events_received: u64,
    /// Events handed back to Kinesis (`batchItemFailures`, or a failed
    /// invocation): sent again by the event source mapping.
    pub events_handed_back: u64,
    pub records_failed_over: u64,
    /// CPU of the invocations ([`crate::cpu::timed`]).
    pub cpu_seconds: f64,
}

/// What one run found.
#[derive(Debug)]
pub struct Findings {
    /// The account right after the run.
    pub account: Account,
    /// The account after the replay, when asked for.
    pub after_replay: Option<(ReplaySummary, Report)>,
    pub load: LoadStats,
    pub esm: EsmSummary,
    pub proxy: Option<ProxySummary>,
    /// What Firehose billed, when the bridge ran in this process.
    pub billing: Option<Billing>,
    /// What the bridge did, when it ran in this process.
    pub bridge: Option<BridgeSummary>,
    /// Whether the mapping caught up with everything sent.
    pub drained: bool,
    /// From the start of the load to the end of the drain.
    pub cpu: CpuUse,
    /// The counters, once a second.
    pub timeline: Vec<Snapshot>,
    /// When the load started, ms since the epoch.
    pub started_ms: u64,
    pub run_dir: PathBuf,
    /// The report page, `report.html` in the run folder.
    pub page: PathBuf,
    /// moto, still running, when [`Experiment::keep_moto`] asked for it.
    pub moto: Option<Emulator>,
}

impl Findings {
    /// The right-after-the-run report.
    pub fn report(&self) -> &Report {
        &self.account.report
    }

    /// The final account: after the replay when there was one.
    pub fn last_report(&self) -> &Report {
        self.after_replay.as_ref().map_or(&self.account.report, |(_, r)| r)
    }
}

/// Prints to stderr when progress is on.
fn say(on: bool, message: impl AsRef<str>) {
    if on {
        eprintln!("{}", message.as_ref());
    }
}

/// The local AWS of a run.
struct Local {
    kinesis: Emulator,
    aws: Emulator,
    clients: Clients,
    resources: Resources,
}

/// The function, however it runs.
struct Function {
    invoker: Arc<Invoker>,
    log_paths: Vec<PathBuf>,
    lambda: Option<CargoLambda>,
}

/// The mapping while it runs: its counters, its stop flag, its task.
struct Running {
    stats: Arc<EsmStats>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

/// What the pipeline did, read from its counters once the load is drained.
struct Counters {
    esm: EsmSummary,
    proxy: Option<ProxySummary>,
    billing: Option<Billing>,
    bridge: Option<BridgeSummary>,
}

impl Counters {
    fn read(esm: &EsmStats, proxy: Option<&Proxy>, invoker: &Invoker) -> Self {
        let get = EsmStats::get;
        let esm = EsmSummary {
            invocations: get(&esm.invocations),
            function_errors: get(&esm.function_errors),
            partial_retries: get(&esm.partial_retries),
            bisects: get(&esm.bisects),
            retries: get(&esm.retries),
            batches_given_up: get(&esm.batches_given_up),
            records_given_up: get(&esm.records_given_up),
            records_resent: get(&esm.records_resent),
            get_records_errors: get(&esm.get_records_errors),
            last_error: esm.last_error.lock().ok().and_then(|e| e.clone()),
        };
        let proxy = proxy.map(|p| ProxySummary {
            put_calls: ProxyStats::get(&p.stats.put_calls),
            entries: ProxyStats::get(&p.stats.entries),
            entries_throttled: ProxyStats::get(&p.stats.entries_throttled),
            entries_over_quota: ProxyStats::get(&p.stats.entries_over_quota),
            calls_failed: ProxyStats::get(&p.stats.calls_failed),
            calls_over_quota: ProxyStats::get(&p.stats.calls_over_quota),
            limit_violations: ProxyStats::get(&p.stats.limit_violations),
        });
        let billing = invoker.tallies().map(|t| Billing {
            firehose_records: Tallies::get(&t.firehose_records),
            event_bytes: Tallies::get(&t.event_bytes),
            firehose_bytes: Tallies::get(&t.firehose_bytes),
            firehose_billed_bytes: Tallies::get(&t.firehose_billed_bytes),
        });
        let bridge = invoker.tallies().map(|t| BridgeSummary {
            invocations: Tallies::get(&t.invocations),
            events_received: Tallies::get(&t.events_received),
            events_handed_back: Tallies::get(&t.events_retried),
            records_failed_over: Tallies::get(&t.records_failed_over),
            cpu_seconds: Tallies::get(&t.bridge_cpu_ns) as f64 / 1e9,
        });
        Counters {
            esm,
            proxy,
            billing,
            bridge,
        }
    }
}

/// The run's counters once a second: kept in the timeline and the
/// recording, printed every `print_every`.
struct Meter<'a> {
    experiment: &'a Experiment,
    started: Instant,
    invoker: &'a Invoker,
    ledger: &'a Ledger,
    esm: &'a EsmStats,
    proxy: Option<&'a Proxy>,
    timeline: Vec<Snapshot>,
    printed: Snapshot,
    next: Instant,
}

impl<'a> Meter<'a> {
    fn new(
        experiment: &'a Experiment,
        invoker: &'a Invoker,
        ledger: &'a Ledger,
        esm: &'a EsmStats,
        proxy: Option<&'a Proxy>,
    ) -> Self {
        let started = Instant::now();
        let mut meter = Meter {
            experiment,
            started,
            invoker,
            ledger,
            esm,
            proxy,
            timeline: Vec::new(),
            printed: Snapshot::default(),
            next: started + TICK,
        };
        let first = meter.snapshot();
        meter.timeline.push(first);
        experiment.recording.push(first);
        meter.printed = first;
        meter
    }

    fn snapshot(&self) -> Snapshot {
        let tallies = self.invoker.tallies();
        let of = |f: fn(&Tallies) -> &std::sync::atomic::AtomicU64| tallies.map(|t| Tallies::get(f(t)));
        let get = EsmStats::get;
        let esm = self.esm;
        let proxy = self.proxy;
        Snapshot {
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            sent: self.ledger.events_sent(),
            records_sent: self.ledger.records_sent(),
            records_done: get(&esm.records_done),
            invocations: get(&esm.invocations),
            function_errors: get(&esm.function_errors),
            bisects: get(&esm.bisects),
            retries: get(&esm.retries),
            batches_given_up: get(&esm.batches_given_up),
            records_given_up: get(&esm.records_given_up),
            delivered: of(|t| &t.events_delivered),
            rejected: of(|t| &t.events_rejected),
            dead_lettered: of(|t| &t.events_dead_lettered),
            throttled: proxy.map(|p| ProxyStats::get(&p.stats.entries_throttled)),
            calls_failed: proxy.map(|p| ProxyStats::get(&p.stats.calls_failed)),
            in_outage: proxy.is_some_and(|p| p.in_outage()),
        }
    }

    /// Takes a snapshot; prints it when a progress line is due.
    fn sample(&mut self) {
        let now = self.snapshot();
        self.timeline.push(now);
        self.experiment.recording.push(now);
        let every = self.experiment.progress.unwrap_or(Duration::MAX);
        if self.experiment.progress.is_some() && now.elapsed().saturating_sub(self.printed.elapsed()) >= every {
            eprintln!("{}", progress::line(&now, &self.printed));
            self.printed = now;
        }
    }

    /// Samples when a second has passed.
    fn tick(&mut self) {
        if Instant::now() >= self.next {
            self.sample();
            self.next += TICK;
        }
    }
}

/// How often the run's counters are read.
const TICK: Duration = Duration::from_secs(1);

impl Experiment {
    /// The whole run: services, function, proxy, mapping, load, drain, the
    /// account, the replay when asked for, the report page.
    pub async fn run(&self) -> Result<Findings> {
        std::fs::create_dir_all(&self.run_dir)
            .map_err(|e| format!("cannot create the run folder {}: {e}", self.run_dir.display()))?;
        let local = self.start_local_aws().await?;
        let shards = self.create_resources(&local).await?;
        // The fault proxy's address is chosen first, for the function's
        // environment; the proxy itself, whose faults are timed from its
        // start, starts once the function is ready (a bootstrap under qemu
        // takes seconds to answer), just before the load.
        let proxy_address = if self.faults.is_none() {
            None
        } else {
            Some(free_address().await?)
        };
        let landings = Arc::new(Landings::default());
        let function = self
            .start_function(&local, proxy_address.as_deref(), &landings, shards.len())
            .await?;
        let invoker = function.invoker.clone();
        let proxy = self.start_proxy(proxy_address.as_deref(), &local).await?;
        let running = self.start_mapping(&local, &shards, invoker.clone());
        let ledger = Arc::new(Ledger::default());
        let mut meter = Meter::new(self, &invoker, &ledger, &running.stats, proxy.as_ref());
        let started_ms = crate::now_ms();
        self.recording.start(started_ms);
        let cpu_meter = CpuMeter::start(&[&local.kinesis, &local.aws]);
        let load_stats = self.load(&local, &shards, &ledger, &mut meter).await?;
        let drained = self.drain(&running.stats, &ledger, &mut meter).await;
        let cpu = cpu_meter.read(&[&local.kinesis, &local.aws]);
        self.stop_mapping(running.stop.clone(), running.task).await?;
        if let Invoker::Library(library) = &*invoker {
            library.log.flush();
        }
        let counters = Counters::read(&running.stats, proxy.as_ref(), &invoker);
        let timeline = meter.timeline;
        drop(proxy);
        ledger.write_tsv(&self.run_dir.join("sent.tsv"))?;
        say(self.progress.is_some(), "reading S3 and the function log back...");
        let sent = ledger.events();
        // The function instances end first, so that their logs are whole.
        let Function { log_paths, lambda, .. } = function;
        drop(lambda);
        let log = read_logs(&log_paths);
        let account = self.account(&local, &sent, &log, &landings).await?;
        let after_replay = match self.replay {
            true => Some(self.replay_undelivered(&local, &log, &sent, &landings).await?),
            false => None,
        };
        let moto = self.stop_local_aws(local);
        let findings = Findings {
            page: self.write_page(&account, &after_replay, &timeline, started_ms, &cpu, drained)?,
            account,
            after_replay,
            load: load_stats,
            esm: counters.esm,
            proxy: counters.proxy,
            billing: counters.billing,
            bridge: counters.bridge,
            drained,
            cpu,
            timeline,
            started_ms,
            run_dir: self.run_dir.clone(),
            moto,
        };
        std::fs::write(self.run_dir.join("report.json"), findings.last_report().json())?;
        Ok(findings)
    }

    /// The stream, its shards, the delivery streams and the bucket.
    async fn create_resources(&self, local: &Local) -> Result<Vec<setup::Shard>> {
        let shards = setup::create(&local.clients, &local.resources).await?;
        let resources = &local.resources;
        say(
            self.progress.is_some(),
            format!(
                "created stream {} ({} shards), delivery streams {} and {} to s3://{}",
                resources.stream,
                shards.len(),
                resources.delivery_streams.join(", "),
                resources.rejects_stream,
                resources.bucket
            ),
        );
        Ok(shards)
    }

    /// The fault proxy in front of moto's Firehose, when the run has faults.
    async fn start_proxy(&self, address: Option<&str>, local: &Local) -> Result<Option<Proxy>> {
        let Some(address) = address else { return Ok(None) };
        let proxy = Proxy::bind(address, &local.aws.endpoint(), self.faults.clone()).await?;
        say(
            self.progress.is_some(),
            format!("fault proxy on {} with {:?}", proxy.endpoint(), self.faults),
        );
        Ok(Some(proxy))
    }

    /// The event source mapping, polling every shard.
    fn start_mapping(&self, local: &Local, shards: &[setup::Shard], invoker: Arc<Invoker>) -> Running {
        let resources = &local.resources;
        let stats = Arc::new(EsmStats::default());
        let mapping_uuid = on_failure::uuid();
        let mapping = Arc::new(EventSourceMapping {
            kinesis: local.clients.kinesis.clone(),
            stream: resources.stream.clone(),
            stream_arn: resources.stream_arn(),
            config: self.esm.clone(),
            invoker,
            on_failure: Some(OnFailureDestination {
                s3: local.clients.s3.clone(),
                bucket: resources.bucket.clone(),
                mapping_uuid: mapping_uuid.clone(),
                function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"),
            }),
            stats: stats.clone(),
        });
        say(
            self.progress.is_some(),
            format!(
                "event source mapping {mapping_uuid}: {}",
                self.settings().event_source_mapping
            ),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(mapping.run(shards.to_vec(), stop.clone()));
        Running { stats, stop, task }
    }

    /// Sends the load, sampling the counters once a second.
    async fn load(
        &self,
        local: &Local,
        shards: &[setup::Shard],
        ledger: &Arc<Ledger>,
        meter: &mut Meter<'_>,
    ) -> Result<LoadStats> {
        say(
            self.progress.is_some(),
            format!(
                "sending {:.0} events/s for {} s ({:.0}% invalid, {:.0}% in KPL aggregates)",
                self.load.rate,
                self.load.duration.as_secs(),
                self.load.invalid_share * 100.0,
                self.load.kpl_share * 100.0
            ),
        );
        let mut task = tokio::spawn(load::run(
            local.clients.kinesis.clone(),
            local.resources.stream.clone(),
            shards.to_vec(),
            self.load.clone(),
            ledger.clone(),
            Arc::new(AtomicBool::new(false)),
        ));
        let stats = loop {
            tokio::select! {
                finished = &mut task => {
                    break finished.map_err(|e| format!("the load generator panicked: {e}"))??;
                }
                _ = tokio::time::sleep_until(meter.next) => meter.tick(),
            }
        };
        say(
            self.progress.is_some(),
            format!(
                "load done: {} events in {} records, {:.0} events/s achieved ({} due but not sent); draining...",
                stats.events_sent,
                stats.records_sent,
                stats.achieved_rate(),
                stats.events_not_sent
            ),
        );
        Ok(stats)
    }

    /// Waits for the mapping to catch up with everything sent, within the
    /// drain timeout; whether it did.
    async fn drain(&self, esm: &EsmStats, ledger: &Ledger, meter: &mut Meter<'_>) -> bool {
        let until = Instant::now() + self.drain_timeout;
        let done = || EsmStats::get(&esm.records_done);
        let drained = loop {
            if done() >= ledger.records_sent() {
                break true;
            }
            if Instant::now() > until {
                break false;
            }
            tokio::time::sleep_until(meter.next.min(Instant::now() + Duration::from_millis(200))).await;
            meter.tick();
        };
        meter.sample();
        say(
            self.progress.is_some(),
            match drained {
                true => format!("drained after {:.1} s", meter.started.elapsed().as_secs_f64()),
                false => format!(
                    "NOT drained within {:?}: {} of {} records done",
                    self.drain_timeout,
                    done(),
                    ledger.records_sent()
                ),
            },
        );
        drained
    }

    /// Stops the mapping, waiting for its last invocations.
    async fn stop_mapping(&self, stop: Arc<AtomicBool>, task: tokio::task::JoinHandle<Result<()>>) -> Result<()> {
        stop.store(true, Ordering::Relaxed);
        match tokio::time::timeout(self.esm.poll_interval + Duration::from_secs(30), task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(format!("the event source mapping panicked: {e}").into()),
            Err(_) => {
                say(
                    self.progress.is_some(),
                    "the event source mapping did not stop in time; reading what is there",
                );
                Ok(())
            }
        }
    }

    /// Reads the bucket back, keeps it as the lake, and accounts for every
    /// event sent.
    async fn account(&self, local: &Local, sent: &[Sent], log: &Logged, landings: &Landings) -> Result<Account> {
        let contents = Contents::read(&local.clients.s3, &local.resources.bucket).await?;
        crate::lake::keep(&contents, &self.run_dir)?;
        Ok(verify::account(&Evidence {
            sent,
            contents: &contents,
            log,
            landings: Some(landings),
        }))
    }

    /// Stops kinesalite, and moto unless the run keeps it.
    fn stop_local_aws(&self, local: Local) -> Option<Emulator> {
        let Local { kinesis, aws, .. } = local;
        kinesis.stop();
        if self.keep_moto {
            return Some(aws);
        }
        aws.stop();
        None
    }

    /// Writes `report.html` and `run.json`; the page's path.
    fn write_page(
        &self,
        account: &Account,
        after_replay: &Option<(ReplaySummary, Report)>,
        timeline: &[Snapshot],
        started_ms: u64,
        cpu: &CpuUse,
        drained: bool,
    ) -> Result<PathBuf> {
        let record = RunRecord {
            settings: self.settings(),
            started_ms,
            timeline: timeline.to_vec(),
            seconds: report_page::seconds(&account.traces, started_ms),
            account: Some(account.report.clone()),
            after_replay: after_replay.as_ref().map(|(_, r)| r.clone()),
            cpu: Some(cpu.clone()),
            ended_early: (!drained).then(|| {
                format!(
                    "the event source mapping did not catch up within {:?}",
                    self.drain_timeout
                )
            }),
        };
        report_page::write(&record, &self.run_dir)
    }

    async fn start_local_aws(&self) -> Result<Local> {
        // kinesalite serves the stream (it holds the rate); moto serves
        // Firehose and the S3 its delivery streams write to.
        let kinesis = Emulator::kinesalite(&self.run_dir).await?;
        let aws = Emulator::moto(&self.run_dir).await?;
        say(
            self.progress.is_some(),
            format!(
                "kinesalite (Kinesis) on {} (pid {}); moto (Firehose and S3) on {} (pid {})",
                kinesis.endpoint(),
                kinesis.pid(),
                aws.endpoint(),
                aws.pid()
            ),
        );
        let clients = Clients::split(&kinesis.endpoint(), &aws.endpoint()).await;
        Ok(Local {
            kinesis,
            aws,
            clients,
            resources: Resources::new(self.delivery_streams, self.shards),
        })
    }

    /// The bridge's environment: the run's resources, then the deployed
    /// settings as this run changes them ([`Experiment::function_env`]).
    fn bridge_env(&self, resources: &Resources) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = HashMap::from([
            (vars::DELIVERY_STREAMS.to_owned(), resources.delivery_streams.join(",")),
            (
                vars::REJECTS_DELIVERY_STREAM.to_owned(),
                resources.rejects_stream.clone(),
            ),
            (vars::UNDELIVERED_BUCKET.to_owned(), resources.bucket.clone()),
        ]);
        env.extend(self.function_env());
        env
    }

    /// The function with its environment, in process or under `cargo lambda`.
    async fn start_function(
        &self,
        local: &Local,
        proxy_address: Option<&str>,
        landings: &Arc<Landings>,
        shards: usize,
    ) -> Result<Function> {
        let resources = &local.resources;
        let s3_endpoint = local.aws.endpoint();
        let firehose_endpoint = proxy_address.map_or_else(|| s3_endpoint.clone(), |a| format!("http://{a}"));
        let env = self.bridge_env(resources);
        match self.invoke {
            InvokeMode::Library => self.library_function(local, &env, &firehose_endpoint, landings).await,
            InvokeMode::CargoLambda | InvokeMode::Bootstrap(_) => {
                let mut lambda_env: Vec<(String, String)> = env.into_iter().collect();
                lambda_env.extend(
                    [
                        ("AWS_ENDPOINT_URL", firehose_endpoint.as_str()),
                        ("AWS_ENDPOINT_URL_S3", s3_endpoint.as_str()),
                        ("AWS_ACCESS_KEY_ID", "testing"),
                        ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_REGION", aws::REGION),
                        ("AWS_DEFAULT_REGION", aws::REGION),
                    ]
                    .map(|(k, v)| (k.to_owned(), v.to_owned())),
                );
                self.lambda_function(&lambda_env, shards).await
            }
        }
    }

    /// The bridge's library in this process, its Firehose calls clocked.
    async fn library_function(
        &self,
        local: &Local,
        env: &HashMap<String, String>,
        firehose_endpoint: &str,
        landings: &Arc<Landings>,
    ) -> Result<Function> {
        let config = Config::from_lookup(|k| env.get(k).cloned())?;
        let firehose = Clocked {
            inner: SdkFirehose::new(aws::firehose(firehose_endpoint).await),
            landings: landings.clone(),
        };
        // S3 is reached directly: the fault proxy stands in front of
        // Firehose only, as an outage of one is not of the other.
        let store = config
            .undelivered_bucket
            .clone()
            .map(|bucket| S3Store::new(local.clients.s3.clone(), bucket));
        let bridge = Bridge::new(config, Contract::Default, firehose, store);
        let log_path = self.run_dir.join("function.log");
        let library = Library {
            bridge,
            timeout: self.function_timeout,
            log: LogFile::create(&log_path)?,
            tallies: Arc::new(Tallies::default()),
        };
        Ok(Function {
            invoker: Arc::new(Invoker::Library(library)),
            log_paths: vec![log_path],
            lambda: None,
        })
    }

    /// The function (or a built bootstrap) behind `cargo lambda watch`, one
    /// instance a shard.
    async fn lambda_function(&self, env: &[(String, String)], shards: usize) -> Result<Function> {
        say(
            self.progress.is_some(),
            "building the function and starting cargo lambda watch...",
        );
        let bootstrap = match &self.invoke {
            InvokeMode::Bootstrap(path) => Some(path.as_path()),
            _ => None,
        };
        let lambda = CargoLambda::start(
            bootstrap,
            env,
            shards,
            self.function_timeout,
            &self.run_dir,
            Duration::from_secs(900),
        )
        .await?;
        say(
            self.progress.is_some(),
            format!(
                "cargo lambda watch (pid {}) serving {}; function instances (pids {:?})",
                lambda.pid(),
                lambda.invoke_url(),
                lambda.function_pids()
            ),
        );
        let api = RuntimeApi::new(lambda.invoke_url(), self.function_timeout + Duration::from_secs(2));
        Ok(Function {
            invoker: Arc::new(Invoker::RuntimeApi(api)),
            log_paths: lambda.function_logs.clone(),
            lambda: Some(lambda),
        })
    }

    /// Replays what the run set aside (dead letters, batches the mapping
    /// gave up on) with the library's replay, as the replay function does,
    /// straight to moto (the streams are healthy again); replays again,
    /// which must deliver nothing; then accounts again.
    async fn replay_undelivered(
        &self,
        local: &Local,
        log: &Logged,
        sent: &[Sent],
        landings: &Arc<Landings>,
    ) -> Result<(ReplaySummary, Report)> {
        let resources = &local.resources;
        let env = self.bridge_env(resources);
        let config = replay::settings(Config::from_lookup(|k| env.get(k).cloned())?);
        let firehose = Clocked {
            inner: SdkFirehose::new(local.clients.firehose.clone()),
            landings: landings.clone(),
        };
        let store = Some(S3Store::new(local.clients.s3.clone(), resources.bucket.clone()));
        let bridge = Bridge::new(config, Contract::Default, firehose, store);
        let bucket = S3Store::new(local.clients.s3.clone(), resources.bucket.clone());
        let replay_log = LogFile::create(&self.run_dir.join("replay.log"))?;
        let mut summary = ReplaySummary::default();
        for (pass, answers) in [&mut summary.first, &mut summary.again].into_iter().enumerate() {
            say(self.progress.is_some(), format!("replay {}...", pass + 1));
            for prefix in [DEAD_LETTERS_PREFIX, on_failure::PREFIX] {
                let request = Request {
                    prefix: prefix.to_owned(),
                    bucket: None,
                    dry_run: false,
                };
                let id = format!("demo-replay-{}", pass + 1);
                let answer = replay::run(&bridge, &bucket, &request, None, &id, &replay_log)
                    .await
                    .map_err(|e| e.to_string())?;
                answers.push((prefix.to_owned(), answer));
            }
        }
        replay_log.flush();
        let contents = Contents::read(&local.clients.s3, &resources.bucket).await?;
        let again = verify::account(&Evidence {
            sent,
            contents: &contents,
            log,
            landings: Some(landings),
        });
        Ok((summary, again.report))
    }
}

/// A free address on 127.0.0.1, for a listener to bind a moment later.
async fn free_address() -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.to_string())
}

/// The function's log files, read as one.
fn read_logs(paths: &[PathBuf]) -> Logged {
    let mut logged = Logged::default();
    for path in paths {
        let name = path
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        logged.add(&std::fs::read_to_string(path).unwrap_or_default(), &name);
    }
    logged
}
