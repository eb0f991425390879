//! The fault-injection proxy between the bridge and moto's Firehose.
//!
//! The bridge reaches it through the SDK's endpoint URL. `PutRecordBatch`
//! calls are checked against the real service limits, which moto does not
//! enforce, and answered as Firehose answers violations; then the faults of
//! [`Faults`] are applied: whole-call failures first, then each stream's
//! quota ([`crate::quota`]): a call over the requests quota is refused
//! whole, and entries throttled at random or over the records or bytes
//! quota are answered `ServiceUnavailableException` "Slow down." by the
//! proxy itself; only the rest are forwarded to moto, and the two answers
//! are merged back by index into one response. Every other call is
//! forwarded untouched.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use kinesis_firehose_bridge::limits::{MAX_RECORD_SIZE, MAX_RECORDS_PER_REQUEST, MAX_REQUEST_SIZE};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::Result;
use crate::faults::Faults;
use crate::http::{HttpClient, error, http_client, json_response, relay, serve};
use crate::quota::{Admission, Limiter};

const PUT_RECORD_BATCH: &str = "Firehose_20150804.PutRecordBatch";
const SLOW_DOWN: &str = "Slow down.";

/// What the proxy saw and did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub put_calls: AtomicU64,
    pub entries: AtomicU64,
    /// Entries refused "Slow down.": throttled at random or over a quota.
    pub entries_throttled: AtomicU64,
    /// Of those, the entries over a stream's records or bytes quota.
    pub entries_over_quota: AtomicU64,
    /// Calls failed as a whole: `fail`, `down`, `outage`, `missing`, and
    /// calls over a stream's requests quota.
    pub calls_failed: AtomicU64,
    /// Of those, the calls over a stream's requests quota.
    pub calls_over_quota: AtomicU64,
    /// Calls that broke a `PutRecordBatch` limit.
    pub limit_violations: AtomicU64,
}

impl ProxyStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A running proxy; dropping it stops accepting connections.
pub struct Proxy {
    port: u16,
    pub stats: Arc<ProxyStats>,
    faults: Faults,
    started: Instant,
    accept: tokio::task::JoinHandle<()>,
}

struct State {
    upstream: String,
    faults: Faults,
    quota: Option<Limiter>,
    started: Instant,
    client: HttpClient,
    stats: Arc<ProxyStats>,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`
    /// (e.g. moto's `http://127.0.0.1:5000`).
    pub async fn start(upstream: &str, faults: Faults) -> Result<Self> {
        Self::bind("127.0.0.1:0", upstream, faults).await
    }

    pub async fn bind(address: &str, upstream: &str, faults: Faults) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| format!("fault proxy: cannot listen on {address}: {e}"))?;
        let port = listener.local_addr()?.port();
        let stats = Arc::new(ProxyStats::default());
        let started = Instant::now();
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            faults: faults.clone(),
            quota: faults.quota.map(Limiter::new),
            started,
            client: http_client(),
            stats: stats.clone(),
        });
        let accept = tokio::spawn(serve(listener, state, handle));
        Ok(Proxy {
            port,
            stats,
            faults,
            started,
            accept,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the whole-call outage is on now.
    pub fn in_outage(&self) -> bool {
        self.faults.in_outage(self.started.elapsed())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn handle(request: Request<Incoming>, state: Arc<State>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Ok(error(StatusCode::BAD_REQUEST, "SerializationException", &e.to_string())),
    };
    let is_put = parts
        .headers
        .get("x-amz-target")
        .is_some_and(|t| t.as_bytes() == PUT_RECORD_BATCH.as_bytes());
    let response = if is_put {
        put_record_batch(&state, parts, body).await
    } else {
        forward(&state, parts, body).await
    };
    Ok(response)
}

#[derive(Deserialize, Serialize)]
struct Input {
    #[serde(rename = "DeliveryStreamName")]
    stream: String,
    #[serde(rename = "Records")]
    records: Vec<Entry>,
}

#[derive(Deserialize, Serialize, Clone)]
struct Entry {
    #[serde(rename = "Data")]
    data: String,
}

async fn put_record_batch(state: &State, parts: hyper::http::request::Parts, body: Bytes) -> Response<Full<Bytes>> {
    let stats = &state.stats;
    stats.put_calls.fetch_add(1, Ordering::Relaxed);
    if !state.faults.delay.is_zero() {
        tokio::time::sleep(state.faults.delay).await;
    }
    let Ok(input) = serde_json::from_slice::<Input>(&body) else {
        return forward(state, parts, body).await;
    };
    stats.entries.fetch_add(input.records.len() as u64, Ordering::Relaxed);
    if let Some(violation) = check_limits(&input, body.len()) {
        stats.limit_violations.fetch_add(1, Ordering::Relaxed);
        return violation;
    }
    if let Some(failure) = whole_call_failure(state, &input) {
        stats.calls_failed.fetch_add(1, Ordering::Relaxed);
        return failure;
    }
    let Some(refused) = refusals(state, &input) else {
        stats.calls_failed.fetch_add(1, Ordering::Relaxed);
        stats.calls_over_quota.fetch_add(1, Ordering::Relaxed);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            SLOW_DOWN,
        );
    };
    let refused_count = refused.iter().filter(|&&r| r).count();
    stats
        .entries_throttled
        .fetch_add(refused_count as u64, Ordering::Relaxed);
    if refused_count == 0 {
        return forward(state, parts, body).await;
    }
    forward_the_rest(state, parts, input, &refused).await
}

/// The call failed as a whole by a fault: the streams are missing, an
/// outage, a stream down, or a random failure.
fn whole_call_failure(state: &State, input: &Input) -> Option<Response<Full<Bytes>>> {
    let faults = &state.faults;
    if faults.streams_missing(state.started.elapsed()) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            &format!(
                "Firehose {} under account {} not found.",
                input.stream,
                crate::aws::ACCOUNT
            ),
        ));
    }
    let fails = faults.in_outage(state.started.elapsed())
        || faults.down.contains(&input.stream)
        || (faults.fail > 0.0 && rand::rng().random_bool(faults.fail));
    fails.then(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            SLOW_DOWN,
        )
    })
}

/// Per entry, whether it is refused "Slow down.": throttled at random, or
/// over the stream's records or bytes quota. `None`: the call is over the
/// stream's requests quota, refused whole.
fn refusals(state: &State, input: &Input) -> Option<Vec<bool>> {
    let share = state.faults.throttle_share(&input.stream);
    let mut refused: Vec<bool> = {
        let mut rng = rand::rng();
        input
            .records
            .iter()
            .map(|_| share > 0.0 && rng.random_bool(share))
            .collect()
    };
    let Some(limiter) = &state.quota else {
        return Some(refused);
    };
    let offered: Vec<usize> = (0..refused.len()).filter(|&i| !refused[i]).collect();
    let sizes: Vec<usize> = offered.iter().map(|&i| decoded_len(&input.records[i].data)).collect();
    match limiter.admit(&input.stream, &sizes, Instant::now()) {
        Admission::CallRefused => None,
        Admission::Entries(over) => {
            let over_quota = over.iter().filter(|&&o| o).count();
            state
                .stats
                .entries_over_quota
                .fetch_add(over_quota as u64, Ordering::Relaxed);
            for (&i, over) in offered.iter().zip(over) {
                refused[i] = over;
            }
            Some(refused)
        }
    }
}

/// Forwards the entries not refused to moto and merges its answers with
/// the refusals, by index, into one response.
async fn forward_the_rest(
    state: &State,
    parts: hyper::http::request::Parts,
    input: Input,
    refused: &[bool],
) -> Response<Full<Bytes>> {
    let refused_count = refused.iter().filter(|&&r| r).count();
    let forwarded: Vec<Entry> = input
        .records
        .into_iter()
        .zip(refused)
        .filter(|(_, r)| !**r)
        .map(|(e, _)| e)
        .collect();
    let mut moto_answers: Vec<Value> = Vec::new();
    let mut moto_failed = 0;
    if !forwarded.is_empty() {
        let rest = Input {
            stream: input.stream,
            records: forwarded,
        };
        let Ok(rest_body) = serde_json::to_vec(&rest) else {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                "proxy could not encode",
            );
        };
        let answer = forward(state, parts, Bytes::from(rest_body)).await;
        if !answer.status().is_success() {
            return answer; // moto failed the call as a whole: so does the proxy
        }
        let Ok(bytes) = answer.into_body().collect().await.map(|c| c.to_bytes());
        let parsed: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        moto_failed = parsed.get("FailedPutCount").and_then(Value::as_u64).unwrap_or(0);
        moto_answers = parsed
            .get("RequestResponses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
    }
    let mut from_moto = moto_answers.into_iter();
    let responses: Vec<Value> = refused
        .iter()
        .map(|&r| {
            if r {
                json!({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": SLOW_DOWN})
            } else {
                // Missing answers stay missing; the bridge treats them as refused.
                from_moto.next().unwrap_or(Value::Null)
            }
        })
        .collect();
    let merged = json!({
        "FailedPutCount": refused_count as u64 + moto_failed,
        "Encrypted": false,
        "RequestResponses": responses,
    });
    json_response(StatusCode::OK, &merged)
}

/// The `PutRecordBatch` limits, answered as Firehose answers them: a
/// `ValidationException` for the record count and a record's size (the
/// service's model constraints), an `InvalidArgumentException` "Records
/// size exceeds 4 MB limit" for the request's size, counted here as sent.
fn check_limits(input: &Input, request_bytes: usize) -> Option<Response<Full<Bytes>>> {
    if input.records.len() > MAX_RECORDS_PER_REQUEST {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            &format!(
                "1 validation error detected: Value at 'records' failed to satisfy constraint: \
                 Member must have length less than or equal to {MAX_RECORDS_PER_REQUEST}"
            ),
        ));
    }
    let oversized: Vec<String> = input
        .records
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            let len = decoded_len(&e.data);
            (len > MAX_RECORD_SIZE).then(|| {
                format!(
                    "Value 'java.nio.HeapByteBuffer[pos=0 lim={len} cap={len}]' at 'records.{}.member.data' \
                     failed to satisfy constraint: Member must have length less than or equal to {MAX_RECORD_SIZE}",
                    i + 1
                )
            })
        })
        .collect();
    if !oversized.is_empty() {
        let noun = if oversized.len() == 1 { "error" } else { "errors" };
        return Some(error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            &format!(
                "{} validation {noun} detected: {}",
                oversized.len(),
                oversized.join("; ")
            ),
        ));
    }
    if request_bytes > MAX_REQUEST_SIZE {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "InvalidArgumentException",
            "Records size exceeds 4 MB limit",
        ));
    }
    None
}

/// Bytes a padded base64 string decodes to.
fn decoded_len(base64: &str) -> usize {
    let padding = base64.bytes().rev().take_while(|&b| b == b'=').count();
    (base64.len() / 4 * 3).saturating_sub(padding)
}

async fn forward(state: &State, parts: hyper::http::request::Parts, body: Bytes) -> Response<Full<Bytes>> {
    relay(&state.client, &state.upstream, parts, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_length_accounts_for_padding() {
        assert_eq!(decoded_len(""), 0);
        assert_eq!(decoded_len("YQ=="), 1);
        assert_eq!(decoded_len("YWI="), 2);
        assert_eq!(decoded_len("YWJj"), 3);
    }

    fn input(records: usize, len: usize) -> Input {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; len]);
        Input {
            stream: "s".into(),
            records: vec![Entry { data }; records],
        }
    }

    #[test]
    fn answers_limit_violations_as_firehose_does() {
        assert!(check_limits(&input(500, 10), 1_000).is_none());
        let too_many = check_limits(&input(501, 10), 1_000).unwrap();
        assert_eq!(too_many.status(), StatusCode::BAD_REQUEST);
        assert!(check_limits(&input(1, MAX_RECORD_SIZE), 2_000_000).is_none());
        assert!(check_limits(&input(1, MAX_RECORD_SIZE + 1), 2_000_000).is_some());
        assert!(check_limits(&input(1, 10), MAX_REQUEST_SIZE + 1).is_some());
    }
}
