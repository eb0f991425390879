//! Each object is replayed at most once, across any number of replays,
//! concurrent ones included: a replay claims an object by writing its marker
//! with `If-None-Match: *` before sending anything, and marks it done after.
//! A claim that is never marked done (the replay died mid-object) stays: a
//! second replay could duplicate what the first sent, so only an operator,
//! who knows, deletes the marker to let it run again.

use bytes::Bytes;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::store::{Bucket, StoreError};

/// Where the markers are, beside the objects they name.
pub const MARKERS_PREFIX: &str = "replay-markers/";

/// The marker of the object `key`.
pub fn marker_key(key: &str) -> String {
    format!("{MARKERS_PREFIX}{key}")
}

#[derive(Serialize)]
struct Marker<'a> {
    state: &'a str,
    replay: &'a str,
    at: String,
}

fn marker(state: &str, replay: &str) -> Bytes {
    let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
    // A struct of strings always serialises.
    Bytes::from(serde_json::to_vec(&Marker { state, replay, at }).unwrap_or_default())
}

/// Claims `key` for `replay`: `Ok(false)` when another replay has it.
pub async fn claim(bucket: &impl Bucket, key: &str, replay: &str) -> Result<bool, StoreError> {
    bucket.put_new(&marker_key(key), marker("claimed", replay)).await
}

/// Marks `key` replayed.
pub async fn done(bucket: &impl Bucket, key: &str, replay: &str) -> Result<(), StoreError> {
    bucket.put(&marker_key(key), marker("done", replay)).await.map(|_| ())
}

/// Gives `key` back, for a later replay: nothing of it is acknowledged.
pub async fn release(bucket: &impl Bucket, key: &str) -> Result<(), StoreError> {
    bucket.delete(&marker_key(key)).await
}
