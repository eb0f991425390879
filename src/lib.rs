//! # kinesis-firehose-bridge
//!
//! An AWS Lambda function that moves analytics events from a Kinesis Data
//! Stream into Amazon Data Firehose without losing any of them.
//!
//! ## The path a record takes
//!
//! ```text
//! KinesisEvent ─▶ record ─▶ event ─▶ pack ─▶ route ─▶ request ─▶ delivery ─▶ report
//!   (≤500 recs)   unpack    check    lines    stream    ≤500 recs   resend     summary,
//!                 KPL       contract into     round-    ≤4 MiB      failed     metrics,
//!                                    records  robin                 entries    dead letters
//! ```
//!
//! ## Layout
//!
//! - [`bridge`]: the handler; runs one batch through the steps below and
//!   decides the invocation's verdict.
//! - [`batch`]: the invocation payload, read lean.
//! - [`record`]: a Kinesis record into the events it carries ([`kpl`]
//!   opens aggregates).
//! - [`event`]: the event contract (default or JSON Schema) and the
//!   compact line a valid event becomes.
//! - [`reject`]: the line a rejected record leaves in the rejects stream
//!   and the log.
//! - [`pack`]: lines into Firehose records.
//! - [`route`]: the rotation of records over delivery streams.
//! - [`request`]: records into `PutRecordBatch` requests within limits.
//! - [`delivery`]: sends, resends what failed ([`backoff`] says when).
//! - [`firehose`]: the port to Firehose and its AWS SDK adapter.
//! - [`dead_letter`]: records that could not be delivered, kept in the log
//!   for replay.
//! - [`report`] and [`metrics`]: the per-invocation summary and EMF line.
//! - [`config`], [`limits`], [`telemetry`]: cold-start settings, AWS limits
//!   and logging.

pub mod backoff;
pub mod batch;
pub mod bridge;
pub mod config;
pub mod dead_letter;
pub mod delivery;
pub mod event;
pub mod firehose;
pub mod kpl;
pub mod limits;
pub mod metrics;
pub mod pack;
pub mod record;
pub mod reject;
pub mod report;
pub mod request;
pub mod route;
pub mod telemetry;

pub use bridge::{Bridge, NothingDelivered, Processed};
pub use config::Config;
