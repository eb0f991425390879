//! # kinesis-firehose-bridge
//!
//! An AWS Lambda function that moves analytics events from a Kinesis Data
//! Stream into Amazon Data Firehose without losing any of them.
//!
//! ## The path a record takes
//!
//! ```text
//! KinesisEvent ─▶ record ─▶ event ─▶ pack ─▶ route ─▶ request ─▶ delivery ─▶ undelivered ─▶ report
//!   (≤500 recs)   unpack    check    lines    stream    ≤500 recs   resend     dead letters,   summary,
//!                 KPL       contract into     round-    ≤4 MiB      failed     unsent rejects  metrics
//!                 (bounded)   │      records  robin                 entries    to S3 (store);
//!                             ▼                                                what S3 won't
//!                           reject ─▶ rejects stream (pack, delivery) ─▶       take is handed
//!                                     unsent ones: undelivered                 back to Kinesis
//! ```
//!
//! An event is acknowledged only where it is durable: in Firehose, in an S3
//! object the function wrote, or handed back to Kinesis (`batchItemFailures`
//! or a failed invocation). The log is a diagnostic, never a copy.
//!
//! ## The path back
//!
//! ```text
//! replay request ─▶ replay ─▶ claim ─▶ object ─▶ redrive ─▶ Bridge::invoke (the path above)
//!  {"prefix":…}     list the   marker   read as    follow
//!                   prefix,    If-None- its kind   hand-backs,
//!                   page by    Match    (strict)   back off
//!                   page
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
//!   compact line a valid event becomes; [`reason`]: why one is rejected.
//! - [`reject`]: the lines a rejected record is kept in, wherever it lands
//!   (`rejects_stream` sends them to the rejects stream);
//!   [`part`] cuts payloads too large for one line into numbered parts.
//! - [`pack`]: lines into Firehose records; [`compress`] into gzip members
//!   (`COMPRESSION=gzip`).
//! - [`route`]: the rotation of records over delivery streams.
//! - [`request`]: records into `PutRecordBatch` requests within limits.
//! - [`delivery`]: sends, resends what failed ([`backoff`] says when).
//! - [`firehose`]: the port to Firehose and its AWS SDK adapter.
//! - [`dead_letter`]: records that could not be delivered, as replayable
//!   lines.
//! - [`undelivered`]: dead letters and unsent rejects kept as an S3 object
//!   per invocation ([`store`] is the port to S3); the records of what S3
//!   does not take are handed back.
//! - [`replay`]: what the stack set aside, sent again, each object once
//!   ([`on_failure`] reads Lambda's on-failure objects, [`redrive`] follows
//!   the hand-backs as the event source mapping does).
//! - [`cold_start`]: what both binaries load at cold start (configuration,
//!   contract, and the AWS SDK clients of [`clients`]).
//! - [`report`] and [`metrics`]: the per-invocation summary and its EMF
//!   line; [`log`]: the JSON lines the function writes, and where.
//! - [`config`], [`limits`], [`telemetry`]: cold-start settings, AWS limits
//!   and logging.

pub mod backoff;
pub mod batch;
pub mod bridge;
pub mod clients;
pub mod cold_start;
pub mod compress;
pub mod config;
pub mod dead_letter;
pub mod delivery;
pub mod event;
pub mod firehose;
pub mod kpl;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod on_failure;
pub mod pack;
pub mod part;
pub mod reason;
pub mod record;
pub mod redrive;
pub mod reject;
pub(crate) mod rejects_stream;
pub mod replay;
pub mod report;
pub mod request;
pub mod route;
pub mod store;
pub mod telemetry;
pub mod undelivered;

pub use bridge::{Bridge, InvocationError, NothingDelivered, Processed};
pub use config::Config;
