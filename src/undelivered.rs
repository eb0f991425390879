//! What could not be delivered, kept where it outlives the log.
//!
//! An invocation's dead letters, and the rejections its rejects stream did
//! not take, are the only copies of their events. Each kind is written as
//! one S3 object per invocation, under [`DEAD_LETTERS_PREFIX`] or
//! [`REJECTS_UNSENT_PREFIX`] of the stack's bucket, partitioned by date; the
//! object holds the same JSON lines the log would, which is what `replay`
//! reads. The log then gets one line naming the object. When the object
//! cannot be written (no bucket configured, S3 refused or unreachable, no
//! time left), the lines themselves go to the log, as the fallback. Only
//! when neither copy could be written does the invocation fail, so that
//! Kinesis retries the batch: an undelivered event is never acknowledged
//! without a copy.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use time::OffsetDateTime;

use crate::dead_letter::{self, DeadLetter};
use crate::reject;
use crate::report::{Lines, LogSink, write_line};
use crate::store::{Store, StoreError};

/// Where the objects of dead letters go in the bucket.
pub const DEAD_LETTERS_PREFIX: &str = "dead-letters/";
/// Where the objects of rejections the rejects stream did not take go.
pub const REJECTS_UNSENT_PREFIX: &str = "rejects-unsent/";

/// The `kind` of the log line naming an object the lines were written to.
pub const STORED_KIND: &str = "stored";
/// The message of a dead letter's line.
pub const DEAD_LETTER_MESSAGE: &str = "record could not be delivered; replay it from this line";
/// The message of a rejection's line.
pub const REJECTED_MESSAGE: &str = "record rejected";

/// What one invocation could not deliver.
#[derive(Debug)]
pub struct Undelivered<'a> {
    pub dead_letters: &'a [DeadLetter],
    /// Events the dead letters hold.
    pub dead_lettered_events: usize,
    /// Log lines of the rejected records no rejects stream took.
    pub unsent_rejects: Lines,
    /// Rejected events those lines hold.
    pub unsent_rejected_events: usize,
}

/// Where the undelivered events were kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kept {
    pub events_in_s3: usize,
    pub events_only_in_log: usize,
}

/// Undelivered events of which no copy could be written.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error(
    "{events} undelivered events could be written neither to S3 ({store}) nor to the log ({log}); \
     failing the invocation so that Kinesis retries the batch"
)]
pub struct Unrecorded {
    pub events: usize,
    pub store: String,
    pub log: String,
}

/// The log line naming an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub kind: String,
    /// `dead_letter` or `rejected`: the kind of the lines in the object.
    pub holds: String,
    pub object: String,
    pub lines: usize,
    pub events: usize,
}

/// The log lines of dead letters.
pub fn dead_letter_lines(letters: &[DeadLetter]) -> Lines {
    let mut lines = Lines::default();
    for letter in letters {
        lines.push("ERROR", DEAD_LETTER_MESSAGE, letter);
    }
    lines
}

/// Writes the undelivered lines to `store` and names the objects in `log`,
/// or writes the lines to `log` when the store cannot take them. `timeout`
/// bounds each S3 write (the invocation's time left, less the log's).
pub async fn keep(
    store: &impl Store,
    request_id: &str,
    undelivered: Undelivered<'_>,
    log: &impl LogSink,
    timeout: Duration,
) -> Result<Kept, Unrecorded> {
    let mut kept = Kept::default();
    let now = OffsetDateTime::now_utc();
    let kinds = [
        (
            dead_letter::KIND,
            DEAD_LETTERS_PREFIX,
            "ERROR",
            dead_letter_lines(undelivered.dead_letters),
            undelivered.dead_lettered_events,
        ),
        (
            reject::KIND,
            REJECTS_UNSENT_PREFIX,
            "WARN",
            undelivered.unsent_rejects,
            undelivered.unsent_rejected_events,
        ),
    ];
    for (holds, prefix, level, lines, events) in kinds {
        if lines.is_empty() {
            continue;
        }
        let count = lines.len();
        // Shared, not copied: the body stays here should S3 refuse it.
        let body = Bytes::from(lines.into_bytes());
        let key = object_key(prefix, now, request_id);
        let stored = match tokio::time::timeout(timeout, store.put(&key, body.clone())).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::DeadlineExceeded),
        };
        match stored {
            Ok(object) => {
                kept.events_in_s3 += events;
                let naming = Stored {
                    kind: STORED_KIND.to_owned(),
                    holds: holds.to_owned(),
                    object,
                    lines: count,
                    events,
                };
                // The object is the copy; a lost pointer to it is not a loss.
                let _ = write_line(log, level, "undelivered records written to S3", &naming);
            }
            Err(store_error) => {
                if store_error != StoreError::NotConfigured {
                    let failed = serde_json::json!({
                        "kind": "store_failed",
                        "holds": holds,
                        "error": store_error.to_string(),
                    });
                    let _ = write_line(
                        log,
                        "WARN",
                        "undelivered records could not be written to S3; writing them to the log",
                        &failed,
                    );
                }
                for line in body.split_inclusive(|&b| b == b'\n') {
                    if let Err(e) = log.write_line(line) {
                        return Err(Unrecorded {
                            events,
                            store: store_error.to_string(),
                            log: e.to_string(),
                        });
                    }
                }
                kept.events_only_in_log += events;
            }
        }
    }
    Ok(kept)
}

/// `prefix` + `year=YYYY/month=MM/day=DD/hour=HH/` + the request id, as the
/// delivery streams partition their objects.
pub fn object_key(prefix: &str, at: OffsetDateTime, request_id: &str) -> String {
    let safe: String = request_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{prefix}year={:04}/month={:02}/day={:02}/hour={:02}/{safe}.ndjson",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_partitioned_by_hour_and_named_for_the_request() {
        let at = OffsetDateTime::from_unix_timestamp(1_764_072_000).unwrap();
        assert_eq!(
            object_key(DEAD_LETTERS_PREFIX, at, "c9b8fa9f-5a7f/../x y"),
            "dead-letters/year=2025/month=11/day=25/hour=12/c9b8fa9f-5a7f_.._x_y.ndjson"
        );
    }
}
