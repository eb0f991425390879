//! # bridge-local
//!
//! The bridge's whole pipeline on one machine, with no AWS account: the
//! experiment the product came from (clients send analytics events, they are
//! validated and land in S3, none are lost), runnable as `make demo`, and the
//! project's end-to-end tests.
//!
//! ```text
//!  load ──PutRecords──▶ kinesalite ◀──GetRecords── esm ──invoke──▶ bridge ──PutRecordBatch──▶ [proxy] ──▶ moto Firehose ──▶ moto S3
//!   │ every event_id and its send time  (Kinesis)    │  (template's     (library or          faults,            events/, rejects/
//!   ▼                                                │   settings)       cargo lambda)        real limits          dead-letters/,
//! ledger                                             └─ gives up ─────────────────────────────────────▶ aws/lambda/  rejects-unsent/
//!   └──────────────────────────────────────────────── verify ◀── everything in S3, the function's log ◀──────────┘
//! ```
//!
//! Everything runs on 127.0.0.1; the crate is a workspace member of its own
//! so that none of its clients reach the Lambda package's dependency tree.
//!
//! ## Layout
//!
//! - [`child`]: child processes started in their own process group and
//!   ended by their id.
//! - [`emulator`]: the local AWS APIs on free ports: kinesalite for the
//!   Kinesis stream, moto for Firehose and the S3 it writes to.
//! - [`aws`]: SDK clients pointed at 127.0.0.1 with dummy credentials.
//! - [`setup`]: the Kinesis stream, bucket and delivery streams.
//! - [`template`]: the settings `template.yaml` deploys, read from it.
//! - [`events`]: the analytics events the load generator sends.
//! - [`ledger`]: every event sent, with its send time.
//! - [`load`]: the load generator.
//! - [`esm`]: the event source mapping (what Lambda runs in production),
//!   and [`on_failure`], what it writes to S3 when it gives up on a batch.
//! - [`invoke`]: invoking the bridge, in-process or through `cargo lambda`;
//!   [`cpu`] times the in-process bridge's invocations and measures what
//!   each process of a run used.
//! - [`cargo_lambda`]: the function behind `cargo lambda watch`, and
//!   [`runtime_shim`], which gives its invocations a real deadline;
//!   [`bootstrap`], a built `bootstrap` (the packaged arm64 one under
//!   qemu-user) in the function's place.
//! - [`lake`]: the template's Glue tables, the delivered objects laid out
//!   as their partitions and read back with DuckDB.
//! - [`landing`]: when each S3 object was written, as Firehose acknowledged it.
//! - [`faults`] and [`proxy`]: the fault-injection proxy in front of Firehose;
//!   [`quota`], the per-stream quotas it enforces; [`http`], the HTTP
//!   plumbing it shares with the runtime shim.
//! - [`bucket`]: what the bucket holds, read back.
//! - [`logs`]: the bridge's lines, read from a log or an object.
//! - [`verify`]: accounts for every event, wherever it ended.
//! - replay lives in the library (`kinesis_firehose_bridge::replay`); the
//!   `replay` binary and the demo call it.
//! - [`round_trip`]: `make invoke`, the function under `cargo lambda watch`
//!   invoked with each file of `events/`, S3 checked.
//! - [`experiment`] and [`progress`]: one whole run, as `make demo` does it;
//!   [`report_page`] draws it as `report.html`.
//! - [`scale`]: `make scale`, runs at several stream counts and loads, each
//!   point an experiment with a quota per stream; [`scale_page`] draws it.
//! - [`plan`]: `make plan`, the capacity plan; [`wire`] measures what the
//!   bridge sends per event of a sample, [`prices`] holds the list prices.

pub mod aws;
pub mod bootstrap;
pub mod bucket;
pub mod cargo_lambda;
pub mod child;
pub mod cpu;
pub mod emulator;
pub mod esm;
pub mod events;
pub mod experiment;
pub mod faults;
pub mod http;
pub mod invoke;
pub mod lake;
pub mod landing;
pub mod ledger;
pub mod load;
pub mod logs;
pub mod on_failure;
pub mod plan;
pub mod prices;
pub mod progress;
pub mod proxy;
pub mod quota;
pub mod report_page;
pub mod round_trip;
pub mod runtime_shim;
pub mod scale;
pub mod scale_page;
pub mod setup;
pub mod template;
pub mod verify;
pub mod wire;

/// Errors of the local tools: each says what failed and what to do.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Milliseconds since the epoch, the unit every timestamp here uses.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The workspace root (the bridge's package), where `.venv/` lives.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| std::path::PathBuf::from(".."), std::path::Path::to_path_buf)
}
