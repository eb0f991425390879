//! The HTTP plumbing the local stand-ins share (the fault proxy, the
//! runtime shim): an HTTP/1.1 server loop, a relay to an upstream, a
//! client, and AWS JSON 1.1 answers.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

/// Serves HTTP/1.1 on `listener` until aborted, answering each request with
/// `handle(request, state)`. Shared by the proxy and the runtime shim.
pub(crate) async fn serve<S, H, F>(listener: tokio::net::TcpListener, state: Arc<S>, handle: H)
where
    S: Send + Sync + 'static,
    H: Fn(Request<Incoming>, Arc<S>) -> F + Copy + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| handle(request, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Sends a request on to `upstream` (`http://host:port`) as it came, and
/// returns the answer as it came; a failure to reach it is a 502.
pub(crate) async fn relay(
    client: &HttpClient,
    upstream: &str,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::builder().method(parts.method).uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let Ok(request) = request.body(Full::new(body)) else {
        return error(
            StatusCode::BAD_GATEWAY,
            "InternalFailure",
            "proxy could not build the request",
        );
    };
    let answer = match client.request(request).await {
        Ok(answer) => answer,
        Err(e) => return error(StatusCode::BAD_GATEWAY, "InternalFailure", &format!("upstream: {e}")),
    };
    let (parts, body) = answer.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                "InternalFailure",
                &format!("upstream body: {e}"),
            );
        }
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if name != hyper::header::CONTENT_LENGTH && name != hyper::header::TRANSFER_ENCODING {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// A plain HTTP/1 client for 127.0.0.1.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An AWS JSON 1.1 error answer.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({"__type": code, "message": message}))
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert(
        "x-amzn-requestid",
        hyper::header::HeaderValue::from_static("00000000-0000-0000-0000-000000000000"),
    );
    response
}
