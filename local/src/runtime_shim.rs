//! A shim between the function and `cargo lambda watch`'s Runtime API
//! that gives each invocation a real deadline.
//!
//! cargo lambda watch (1.9.2) answers `GET .../runtime/invocation/next`
//! with `Lambda-Runtime-Deadline-Ms: 600000`. Lambda defines that header as
//! the wall-clock time, in milliseconds since the epoch, when the
//! invocation times out; 600000 is ten minutes past 1970. The bridge treats
//! such a deadline as unknown and bounds its resends by `MAX_PUT_ATTEMPTS`
//! only, which is not how it runs under Lambda. This shim forwards
//! everything both ways and rewrites a deadline that has already passed to
//! now plus the function's timeout, which is what Lambda would have sent,
//! so that the local pipeline runs the function with a real deadline.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::Result;
use crate::http::{HttpClient, http_client, relay, serve};

const DEADLINE: &str = "lambda-runtime-deadline-ms";

pub struct RuntimeShim {
    port: u16,
    accept: tokio::task::JoinHandle<()>,
}

struct State {
    upstream: String,
    timeout: Duration,
    client: HttpClient,
}

impl RuntimeShim {
    /// Listens on a free port of 127.0.0.1 in front of `upstream`
    /// (e.g. `http://127.0.0.1:9000`).
    pub async fn start(upstream: &str, timeout: Duration) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_owned(),
            timeout,
            client: http_client(),
        });
        let accept = tokio::spawn(serve(listener, state, handle));
        Ok(RuntimeShim { port, accept })
    }

    /// The function's `AWS_LAMBDA_RUNTIME_API` for `function`.
    pub fn runtime_api(&self, function: &str) -> String {
        format!("http://127.0.0.1:{}/.rt/{function}", self.port)
    }
}

impl Drop for RuntimeShim {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn handle(request: Request<Incoming>, state: Arc<State>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let mut response = relay(&state.client, &state.upstream, parts, body).await;
    let now = crate::now_ms();
    let past = response
        .headers()
        .get(DEADLINE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|deadline| deadline <= now);
    if past {
        let deadline = now + state.timeout.as_millis() as u64;
        if let Ok(value) = hyper::header::HeaderValue::from_str(&deadline.to_string()) {
            response.headers_mut().insert(DEADLINE, value);
        }
    }
    Ok(response)
}
