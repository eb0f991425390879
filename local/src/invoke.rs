//! Invoking the bridge with one batch, as Lambda would.
//!
//! - [`Library`] (the default, fast): the bridge's own library in this
//!   process, `Bridge::invoke` (what `Bridge::handle` runs) with the
//!   invocation's deadline and the function's timeout, its Firehose port the
//!   SDK adapter wrapped in a [`Clocked`], its lines written to a file
//!   instead of stdout, where progress is shown.
//! - [`RuntimeApi`]: the real function under `cargo lambda watch`, through
//!   its invoke endpoint. Its log (dead letters included) is what `cargo
//!   lambda` captured.
//!
//! Either answers with the function's `KinesisEventResponse` or a function
//! error, which is all the event source mapping needs.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::streams::KinesisEventResponse;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kinesis_firehose_bridge::Bridge;
use kinesis_firehose_bridge::batch::KinesisBatch;
use kinesis_firehose_bridge::firehose::SdkFirehose;
use kinesis_firehose_bridge::log::LogSink;
use kinesis_firehose_bridge::store::S3Store;
use serde::Serialize;

use crate::Result;
use crate::landing::Clocked;

/// The function's name (and its binary's), as the template deploys it.
pub const FUNCTION: &str = "kinesis-firehose-bridge";

/// The function failed as a whole: Lambda retries the same batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError(pub String);

pub enum Invoker {
    Library(Library),
    RuntimeApi(RuntimeApi),
}

impl Invoker {
    /// Invokes the function with `event`, the batch as Lambda's JSON.
    pub async fn invoke(&self, event: &[u8], request_id: &str) -> Result<KinesisEventResponse, FunctionError> {
        match self {
            Invoker::Library(library) => library.invoke(event, request_id).await,
            Invoker::RuntimeApi(api) => api.invoke(event).await,
        }
    }

    /// What the in-process bridge reported, when it runs in-process.
    pub fn tallies(&self) -> Option<&Tallies> {
        match self {
            Invoker::Library(library) => Some(&library.tallies),
            Invoker::RuntimeApi(_) => None,
        }
    }
}

/// Per-invocation summaries of the in-process bridge, added up.
#[derive(Debug, Default)]
pub struct Tallies {
    pub invocations: AtomicU64,
    pub events_received: AtomicU64,
    pub events_delivered: AtomicU64,
    pub events_rejected: AtomicU64,
    pub events_dead_lettered: AtomicU64,
    pub events_retried: AtomicU64,
    pub firehose_records: AtomicU64,
    /// Bytes of the events in the records, the records' bytes, and what
    /// Firehose bills for them.
    pub event_bytes: AtomicU64,
    pub firehose_bytes: AtomicU64,
    pub firehose_billed_bytes: AtomicU64,
    pub put_calls: AtomicU64,
    /// Records delivered to another stream than the one first tried.
    pub records_failed_over: AtomicU64,
    /// CPU time of the invocations, from reading the event to the answer
    /// ([`crate::cpu::timed`]).
    pub bridge_cpu_ns: AtomicU64,
}

impl Tallies {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The bridge's library, in this process.
pub struct Library {
    pub bridge: Bridge<Clocked<SdkFirehose>, Option<S3Store>>,
    /// The function's timeout: each invocation's deadline is this from its start.
    pub timeout: Duration,
    pub log: LogFile,
    pub tallies: Arc<Tallies>,
}

impl Library {
    async fn invoke(&self, event: &[u8], request_id: &str) -> Result<KinesisEventResponse, FunctionError> {
        crate::cpu::timed(self.run(event, request_id), &self.tallies.bridge_cpu_ns).await
    }

    async fn run(&self, event: &[u8], request_id: &str) -> Result<KinesisEventResponse, FunctionError> {
        // What the runtime does first, into the type the function's handler
        // takes; a batch it cannot read fails the invocation, as there.
        let event: KinesisBatch = serde_json::from_slice(event)
            .map_err(|e| FunctionError(format!("the event is not a Kinesis batch: {e}")))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let run = self
            .bridge
            .invoke(&event.records, Some(deadline), request_id, FUNCTION, &self.log);
        // Lambda ends an invocation still running at its timeout: a function
        // error, and the batch is retried.
        let (s, verdict) = tokio::time::timeout_at(deadline, run).await.map_err(|_| {
            FunctionError(format!(
                "Task timed out after {:.2} seconds",
                self.timeout.as_secs_f64()
            ))
        })?;
        let t = &self.tallies;
        let add = |c: &AtomicU64, n: usize| c.fetch_add(n as u64, Ordering::Relaxed);
        add(&t.invocations, 1);
        add(&t.events_received, s.events_received);
        add(&t.events_delivered, s.events_delivered);
        add(&t.events_rejected, s.events_rejected);
        add(&t.events_dead_lettered, s.events_dead_lettered);
        add(&t.events_retried, s.events_retried);
        add(&t.firehose_records, s.firehose_records);
        add(&t.event_bytes, s.event_bytes);
        add(&t.firehose_bytes, s.firehose_bytes);
        add(&t.firehose_billed_bytes, s.firehose_billed_bytes);
        add(&t.put_calls, s.put_calls as usize);
        add(&t.records_failed_over, s.records_failed_over);
        verdict.map_err(|e| FunctionError(e.to_string()))
    }
}

/// The function's log lines, one JSON object each, in the shape
/// `Bridge::handle` writes them (`timestamp`, `level`, `message`, then the
/// dead letter's or rejection's own fields).
#[derive(Debug)]
pub struct LogFile {
    out: Mutex<std::io::BufWriter<std::fs::File>>,
}

impl LogSink for LogFile {
    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        let mut out = self
            .out
            .lock()
            .map_err(|_| std::io::Error::other("the function log's lock is poisoned"))?;
        out.write_all(line)
    }
}

impl LogFile {
    pub fn create(path: &Path) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(LogFile {
            out: Mutex::new(std::io::BufWriter::new(file)),
        })
    }

    pub fn write(&self, level: &str, message: &str, body: &impl Serialize) {
        if let Err(e) = kinesis_firehose_bridge::log::write_line(self, level, message, body) {
            eprintln!("cannot write the function log: {e}");
        }
    }

    pub fn flush(&self) {
        if let Ok(mut out) = self.out.lock() {
            let _ = out.flush();
        }
    }
}

/// A function served by `cargo lambda watch`, invoked over HTTP.
pub struct RuntimeApi {
    pub url: String,
    pub timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl RuntimeApi {
    /// `url` is the invoke endpoint, e.g.
    /// `http://127.0.0.1:9000/2015-03-31/functions/kinesis-firehose-bridge/invocations`.
    pub fn new(url: String, timeout: Duration) -> Self {
        RuntimeApi {
            url,
            timeout,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn invoke(&self, event: &[u8]) -> Result<KinesisEventResponse, FunctionError> {
        let request = hyper::Request::post(&self.url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::copy_from_slice(event)))
            .map_err(|e| FunctionError(format!("cannot build the invoke request: {e}")))?;
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FunctionError(format!("invoke {}: {e}", self.url)))?;
            let status = response.status();
            let function_error = response.headers().get("x-amz-function-error").cloned();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| FunctionError(format!("reading the invoke answer: {e}")))?
                .to_bytes();
            let text = String::from_utf8_lossy(&body);
            // A function error must never read as an empty (all delivered)
            // response, whatever status the emulator gives it.
            let is_error = serde_json::from_slice::<serde_json::Value>(&body)
                .is_ok_and(|v| v.get("errorType").is_some() || v.get("errorMessage").is_some());
            if !status.is_success() || function_error.is_some() || is_error {
                return Err(FunctionError(format!("function error ({status}): {text}")));
            }
            serde_json::from_slice::<KinesisEventResponse>(&body).map_err(|e| {
                FunctionError(format!(
                    "the function answered {text:?}, not a KinesisEventResponse: {e}"
                ))
            })
        };
        tokio::time::timeout(self.timeout, call).await.unwrap_or_else(|_| {
            Err(FunctionError(format!(
                "no answer within the timeout ({:?})",
                self.timeout
            )))
        })
    }
}
