//! What could not be delivered, kept where it outlives the invocation.
//!
//! An invocation's dead letters, and the rejections its rejects stream did
//! not take, are the only copies of their events. Each kind is written as
//! one S3 object per invocation, under [`DEAD_LETTERS_PREFIX`] or
//! [`REJECTS_UNSENT_PREFIX`] of the stack's bucket, partitioned by date; the
//! object holds JSON lines that replay reads. The log then gets one line
//! naming the object: a diagnostic, never a copy. When an object cannot be
//! written (no bucket configured, S3 refused or unreachable, no time left)
//! its records are handed back to Kinesis instead ([`Written`] says which),
//! so an event is acknowledged only once it is durable. Both writes share
//! one time budget, inside the invocation's deadline less its safety margin.

use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::backoff::Budget;
use crate::dead_letter::{self, DeadLetter};
use crate::log::{Lines, LogSink, write_line};
use crate::reject;
use crate::store::{Store, StoreError};

/// Where the objects of dead letters go in the bucket.
pub const DEAD_LETTERS_PREFIX: &str = "dead-letters/";
/// Where the objects of rejections the rejects stream did not take go.
pub const REJECTS_UNSENT_PREFIX: &str = "rejects-unsent/";

/// The `kind` of the log line naming an object the lines were written to.
pub const STORED_KIND: &str = "stored";
/// The `kind` of the log line saying an object could not be written.
pub const STORE_FAILED_KIND: &str = "store_failed";
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
    /// Lines of the rejected records no rejects stream took.
    pub unsent_rejects: Lines,
    /// Rejected events those lines hold.
    pub unsent_rejected_events: usize,
}

/// Whether each kind is durable: `true` when it had nothing to keep or its
/// object was written; `false` means its records must be handed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub dead_letters: bool,
    pub unsent_rejects: bool,
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

/// The lines of dead letters.
pub fn dead_letter_lines(letters: &[DeadLetter]) -> Lines {
    let mut lines = Lines::default();
    for letter in letters {
        lines.push("ERROR", DEAD_LETTER_MESSAGE, letter);
    }
    lines
}

/// The point every S3 write of an invocation must finish by: `deadline`
/// less `margin`, or [`STORE_TIME_UNBOUNDED`] from now when the deadline is
/// unknown.
pub fn store_budget(deadline: Option<Instant>, margin: Duration) -> Budget {
    match deadline {
        Some(_) => Budget::new(deadline, margin),
        None => Budget {
            until: Some(Instant::now() + STORE_TIME_UNBOUNDED),
        },
    }
}

/// A bound on the S3 writes when the invocation's deadline is unknown.
pub const STORE_TIME_UNBOUNDED: Duration = Duration::from_secs(30);

/// Writes both kinds' objects to `store` at once, within `budget`, and
/// names each written object (or the failure) in `log`.
pub async fn keep(
    store: &impl Store,
    request_id: &str,
    undelivered: Undelivered<'_>,
    log: &impl LogSink,
    budget: Budget,
) -> Written {
    let now = OffsetDateTime::now_utc();
    let dead_letters = One {
        holds: dead_letter::KIND,
        level: "ERROR",
        key: object_key(DEAD_LETTERS_PREFIX, now, request_id),
        lines: dead_letter_lines(undelivered.dead_letters),
        events: undelivered.dead_lettered_events,
    };
    let rejects = One {
        holds: reject::KIND,
        level: "WARN",
        key: object_key(REJECTS_UNSENT_PREFIX, now, request_id),
        lines: undelivered.unsent_rejects,
        events: undelivered.unsent_rejected_events,
    };
    let (dead_letters, unsent_rejects) = join(
        dead_letters.write(store, log, budget),
        rejects.write(store, log, budget),
    )
    .await;
    Written {
        dead_letters,
        unsent_rejects,
    }
}

/// One kind's object.
struct One {
    holds: &'static str,
    level: &'static str,
    key: String,
    lines: Lines,
    events: usize,
}

impl One {
    /// Writes the object; `true` when there was nothing to write or it was
    /// written.
    async fn write(self, store: &impl Store, log: &impl LogSink, budget: Budget) -> bool {
        if self.lines.is_empty() {
            return true;
        }
        let count = self.lines.len();
        let body = Bytes::from(self.lines.into_bytes());
        let now = Instant::now();
        let written = if budget.allows(now, Duration::ZERO) {
            let left = budget.left(now).unwrap_or(STORE_TIME_UNBOUNDED);
            tokio::time::timeout(left, store.put(&self.key, body))
                .await
                .unwrap_or(Err(StoreError::DeadlineExceeded))
        } else {
            Err(StoreError::DeadlineExceeded)
        };
        // The log lines are diagnostics: a lost one loses no event.
        match written {
            Ok(object) => {
                let naming = Stored {
                    kind: STORED_KIND.to_owned(),
                    holds: self.holds.to_owned(),
                    object,
                    lines: count,
                    events: self.events,
                };
                let _ = write_line(log, self.level, "undelivered records written to S3", &naming);
                true
            }
            Err(error) => {
                let failed = serde_json::json!({
                    "kind": STORE_FAILED_KIND,
                    "holds": self.holds,
                    "events": self.events,
                    "error": error.to_string(),
                });
                let message = "undelivered records could not be written to S3; handing their records back to Kinesis";
                let _ = write_line(log, "WARN", message, &failed);
                false
            }
        }
    }
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
