//! The end-to-end tests: the whole pipeline on 127.0.0.1 (kinesalite, moto,
//! the load generator, the event source mapping as the template deploys it,
//! the bridge in-process, the fault proxy), checked by the verifier's
//! account of every event.
//!
//! The runs take the machine's two cores, so they run one at a time.
//!
//! With `BRIDGE_BOOTSTRAP=path/to/bootstrap` they run against that built
//! function instead, behind `cargo lambda watch`'s Runtime API: `make
//! test-arm64` runs the poison, throttling and gzip runs against the arm64
//! `bootstrap` `make package` zipped, under qemu-user.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bridge_local::experiment::{Experiment, Findings, InvokeMode};
use bridge_local::faults::Faults;
use bridge_local::verify::{Ending, Report};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The rate of these runs: what CI holds in a debug build on two cores.
const RATE: f64 = 2_000.0;

fn experiment(name: &str, seconds: u64, faults: &str) -> Experiment {
    let dir: PathBuf = std::env::temp_dir().join(format!("bridge-local-test-{name}-{}", std::process::id()));
    let mut e = Experiment::new(dir).expect("the template's settings");
    e.load.rate = RATE;
    e.load.duration = Duration::from_secs(seconds);
    e.faults = Faults::parse(faults).expect("a valid fault spec");
    e.progress = Some(Duration::from_secs(5));
    e.drain_timeout = Duration::from_secs(120);
    if let Some(bootstrap) = bootstrap() {
        // Ten function instances under qemu-user share the two cores with
        // the pipeline: half the rate.
        e.invoke = InvokeMode::Bootstrap(bootstrap);
        e.load.rate = RATE / 2.0;
    }
    e
}

/// The built function these runs invoke instead of the library, if any.
fn bootstrap() -> Option<PathBuf> {
    std::env::var_os("BRIDGE_BOOTSTRAP").map(PathBuf::from)
}

async fn run(e: &Experiment) -> Findings {
    let started = Instant::now();
    let findings = e.run().await.unwrap_or_else(|err| panic!("the run failed: {err}"));
    eprintln!(
        "run took {:.1} s; load {:.0}/s achieved of {:.0}/s; {:?}; proxy {:?}\n{}",
        started.elapsed().as_secs_f64(),
        findings.load.achieved_rate(),
        e.load.rate,
        findings.esm,
        findings.proxy,
        findings.report().lines().join("\n")
    );
    findings
}

/// What holds for every run: each event has exactly one fate, the
/// contract was applied right, nothing unknown, malformed or unreadable.
fn assert_accounted(report: &Report) {
    assert_eq!(report.sent, report.valid_sent + report.invalid_sent);
    assert_eq!(
        report.delivered + report.rejected + report.dead_lettered + report.given_up + report.lost,
        report.sent,
        "{report:?}"
    );
    assert_eq!(report.lost, 0, "nothing may be lost: {report:?}");
    assert!(report.is_clean(), "{report:?}");
    assert!(report.p50_delivery_ms <= report.p99_delivery_ms && report.p99_delivery_ms <= report.max_delivery_ms);
}

/// The load was the one asked for.
fn assert_rate_held(findings: &Findings, e: &Experiment) {
    assert!(
        findings.load.achieved_rate() >= 0.95 * e.load.rate,
        "the load generator kept up: {:?}",
        findings.load
    );
    assert_eq!(findings.report().sent, findings.load.events_sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_and_one_stream_down_loses_nothing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let e = experiment("throttle", 15, "throttle=0.3,down=analytics-events-1");
    let findings = run(&e).await;
    let report = findings.report();
    assert!(findings.drained, "the mapping caught up");
    assert_accounted(report);
    assert_rate_held(&findings, &e);
    assert_eq!(
        report.rejected, report.invalid_sent,
        "every invalid event rejected: {report:?}"
    );
    // Valid events are delivered or, after every resend failed, dead
    // letters kept in S3; none twice (in log mode only a failed
    // invocation is retried, and it delivered nothing).
    assert_eq!(report.delivered + report.dead_lettered, report.valid_sent, "{report:?}");
    assert_eq!(report.duplicates, 0, "{report:?}");
    // The faults happened, and no request broke a Firehose limit.
    let proxy = findings.proxy.as_ref().expect("the fault proxy ran");
    assert!(proxy.entries_throttled > 0, "{proxy:?}");
    assert!(proxy.calls_failed > 0, "the stream that is down was tried: {proxy:?}");
    assert_eq!(proxy.limit_violations, 0, "{proxy:?}");
    assert!(report.p99_delivery_ms > 0, "{report:?}");
    if e.invoke == InvokeMode::Library {
        assert_eq!(
            report.delays_from_last_modified, 0,
            "every object was timed by its acknowledgement"
        );
    }
    // The run's report page is in its folder.
    let page = std::fs::read_to_string(&findings.page).expect("report.html");
    assert_eq!(findings.page, e.run_dir.join("report.html"));
    assert_eq!(page.matches("<svg").count(), 4, "the page's four charts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_outage_then_recovery_loses_nothing_and_writes_each_reject_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // Every PutRecordBatch call fails from 5 s to 10 s after the proxy
    // started; outside the outage 30% of the entries are throttled. With
    // ON_PARTIAL_FAILURE=retry, what fails goes back to the event source
    // mapping: a failed invocation (nothing delivered) is bisected and
    // retried, a partial one returns batchItemFailures and is resumed from
    // there, which sends again what followed and was delivered already.
    let mut e = experiment("outage", 15, "outage=5s+5s,throttle=0.3");
    // Uncompressed: MAX_EVENTS_PER_RECORD cuts a batch into many records
    // only then (a gzip record is as large as Firehose takes), and a
    // partial failure needs many.
    e.bridge_env = vec![
        ("ON_PARTIAL_FAILURE".into(), "retry".into()),
        ("MAX_PUT_ATTEMPTS".into(), "2".into()),
        ("COMPRESSION".into(), "none".into()),
        ("MAX_EVENTS_PER_RECORD".into(), "50".into()),
    ];
    let findings = run(&e).await;
    let report = findings.report();
    assert!(findings.drained, "the mapping caught up after the outage");
    assert_accounted(report);
    assert_eq!(report.rejected, report.invalid_sent, "{report:?}");
    assert_eq!(report.dead_lettered, 0, "retry mode leaves no dead letters: {report:?}");
    assert_eq!(
        report.given_up, 0,
        "the template's retries outlast a 5 s outage: {report:?}"
    );
    assert_eq!(report.delivered, report.valid_sent, "{report:?}");
    assert_eq!(
        report.duplicate_rejects, 0,
        "each reject written once across the retries: {report:?}"
    );
    assert!(
        findings.esm.function_errors > 0,
        "the outage failed whole invocations: {:?}",
        findings.esm
    );
    assert!(
        findings.esm.partial_retries > 0,
        "batchItemFailures were followed: {:?}",
        findings.esm
    );
    let proxy = findings.proxy.as_ref().expect("the fault proxy ran");
    assert!(proxy.calls_failed > 0, "{proxy:?}");
    // What a resumed batch sent again is in S3 twice: counted, not lost.
    eprintln!("duplicates after the outage: {}", report.duplicates);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_from_heavy_throttling_are_kept_in_s3_and_replayed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // Heavy throttling on every stream, two attempts per record and small
    // records, so that many records exhaust their attempts while others in
    // the same invocation get through: dead letters, kept in S3. Small
    // records need COMPRESSION=none (a gzip record is as large as Firehose
    // takes: one failed record would fail the whole invocation instead).
    let mut e = experiment("replay", 8, "throttle=0.7");
    e.bridge_env = vec![
        ("MAX_PUT_ATTEMPTS".into(), "2".into()),
        ("COMPRESSION".into(), "none".into()),
        ("MAX_EVENTS_PER_RECORD".into(), "20".into()),
    ];
    e.replay = true;
    let findings = run(&e).await;
    assert!(findings.drained);
    let before = findings.report();
    assert_accounted(before);
    assert!(
        before.dead_lettered > 0,
        "heavy throttling made dead letters: {before:?}"
    );
    assert_eq!(
        before.dead_lettered_in_s3, before.dead_lettered,
        "every dead letter is in S3 dead-letters/: {before:?}"
    );
    assert_eq!(before.delivered + before.dead_lettered, before.valid_sent, "{before:?}");

    let (replayed, after) = findings.after_replay.as_ref().expect("the dead letters were replayed");
    eprintln!("replay: {replayed:?}\nafter the replay:\n{}", after.lines().join("\n"));
    assert_replayed_once(replayed);
    assert_accounted(after);
    assert_eq!(after.dead_lettered, 0, "{after:?}");
    assert_eq!(
        after.delivered, after.valid_sent,
        "everything valid is in S3 now: {after:?}"
    );
    assert_eq!(
        after.duplicates, before.duplicates,
        "the replay duplicated nothing: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_stretch_is_bisected_given_up_kept_in_s3_and_replayed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // The delivery streams are missing from 4 s to 16 s: every invocation
    // in that stretch fails at once, on every attempt. The mapping bisects,
    // retries once, then gives up and writes the batch to its S3
    // on-failure destination; the shard moves on. A batch is given up only
    // once bisected down to one record, a failed invocation per halving:
    // batches of 100 and a 12 s stretch, so that the retries run out
    // inside it on a busy machine too.
    let mut e = experiment("poison", 20, "missing=4s+12s");
    e.esm.batch_size = 100;
    e.esm.max_retry_attempts = 1;
    e.esm.retry_delay = Duration::from_millis(5);
    e.bridge_env = vec![("MAX_PUT_ATTEMPTS".into(), "1".into())];
    e.replay = true;
    let findings = run(&e).await;
    let before = findings.report();
    assert!(findings.drained, "the shards did not block");
    assert_accounted(before);
    assert!(findings.esm.bisects > 0, "the mapping bisected: {:?}", findings.esm);
    assert!(findings.esm.batches_given_up > 0, "{:?}", findings.esm);
    assert!(before.given_up > 0, "given up, kept in S3: {before:?}");
    assert!(
        findings.esm.records_given_up >= findings.esm.batches_given_up,
        "{:?}",
        findings.esm
    );
    // Later records are delivered: nothing sent in the last two seconds is
    // anywhere but delivered or rejected.
    let last = findings.account.traces.iter().map(|f| f.sent_ms).max().unwrap_or(0);
    let late: Vec<_> = findings
        .account
        .traces
        .iter()
        .filter(|f| f.sent_ms + 2_000 > last)
        .collect();
    assert!(!late.is_empty());
    assert!(
        late.iter()
            .all(|f| matches!(f.ending, Ending::Delivered | Ending::Rejected)),
        "the shard moved on past the poison stretch"
    );

    let (replayed, after) = findings
        .after_replay
        .as_ref()
        .expect("the given-up batches were replayed");
    eprintln!("replay: {replayed:?}\nafter the replay:\n{}", after.lines().join("\n"));
    assert_replayed_once(replayed);
    assert_accounted(after);
    assert_eq!(after.given_up, 0, "{after:?}");
    assert_eq!(after.dead_lettered, 0, "{after:?}");
    assert_eq!(
        after.delivered, after.valid_sent,
        "every given-up event is in S3 now: {after:?}"
    );
    assert_eq!(after.rejected, after.invalid_sent, "{after:?}");
    assert_eq!(
        after.duplicates, before.duplicates,
        "the replay brought each event once: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_delivers_every_event_once_in_objects_a_standard_gzip_reader_reads() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut e = experiment("gzip", 10, "throttle=0.2");
    e.bridge_env = vec![("COMPRESSION".into(), "gzip".into())];
    e.keep_moto = true;
    let findings = run(&e).await;
    let report = findings.report();
    assert!(findings.drained);
    assert_accounted(report);
    assert_eq!(report.delivered + report.dead_lettered, report.valid_sent, "{report:?}");
    assert_eq!(report.duplicates, 0, "{report:?}");

    // Every object under events/ is gzip, and Python's own gzip module
    // reads each back to the lines the verifier counted.
    let moto = findings.moto.as_ref().expect("moto kept for the check");
    let clients = bridge_local::aws::Clients::new(&moto.endpoint()).await;
    let objects = bridge_local::bucket::read_prefix(&clients.s3, "analytics-events-archive", "events/")
        .await
        .expect("the objects");
    assert!(!objects.is_empty());
    let dir = std::env::temp_dir().join(format!("bridge-local-test-gzip-objects-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        assert!(object.body.starts_with(&[0x1F, 0x8B]), "{} is not gzip", object.key);
        let path = dir.join(format!("{i}.gz"));
        std::fs::write(&path, &object.body).unwrap();
        paths.push(path);
    }
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg("import gzip, sys; print(sum(gzip.open(p).read().count(b'\\n') for p in sys.argv[1:]))")
        .args(&paths)
        .output()
        .expect("python3");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: u64 = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();
    assert_eq!(
        lines, report.delivered,
        "Python's gzip reads every delivered event back"
    );
}

/// The first replay finished with nothing still failing; the second found
/// every object claimed and delivered nothing.
fn assert_replayed_once(replayed: &bridge_local::experiment::ReplaySummary) {
    for (prefix, answer) in &replayed.first {
        assert!(answer.done && answer.unreadable.is_empty(), "{prefix}: {answer:?}");
        assert_eq!(answer.events_still_failing, 0, "{prefix}: {answer:?}");
    }
    for (prefix, answer) in &replayed.again {
        assert_eq!(
            (answer.objects_replayed, answer.events_delivered),
            (0, 0),
            "{prefix}: {answer:?}"
        );
    }
    assert!(
        replayed.first.iter().any(|(_, a)| a.objects_replayed > 0),
        "{replayed:?}"
    );
}
