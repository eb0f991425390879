//! What a replay is asked to do, and what it answers.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::on_failure;
use crate::undelivered::{DEAD_LETTERS_PREFIX, REJECTS_UNSENT_PREFIX};

/// Where the rejects stream delivers (`template.yaml`, its `Prefix`).
pub const REJECTS_PREFIX: &str = "rejects/";

/// The prefixes a replay may read: what the stack sets aside.
pub const RECOVERY_PREFIXES: [&str; 4] = [
    DEAD_LETTERS_PREFIX,
    REJECTS_UNSENT_PREFIX,
    on_failure::PREFIX,
    REJECTS_PREFIX,
];

/// `{"prefix": "dead-letters/year=2026/", "bucket": "…", "dry_run": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub prefix: String,
    /// Default: the stack's bucket (`UNDELIVERED_BUCKET`).
    #[serde(default)]
    pub bucket: Option<String>,
    /// Read and count, claim and send nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RequestError {
    #[error(
        "prefix {0:?} is not under a recovery prefix: replay reads only dead-letters/, rejects-unsent/, \
         aws/lambda/ (batches the mapping gave up on) and rejects/"
    )]
    OutsideRecoveryPrefixes(String),
    #[error("no bucket: give \"bucket\" in the request or set UNDELIVERED_BUCKET")]
    NoBucket,
}

impl Request {
    /// Refuses a prefix outside [`RECOVERY_PREFIXES`].
    pub fn check(&self) -> Result<(), RequestError> {
        let under = RECOVERY_PREFIXES.iter().any(|p| self.prefix.starts_with(p));
        if under && !self.prefix.split('/').any(|segment| segment == "..") {
            Ok(())
        } else {
            Err(RequestError::OutsideRecoveryPrefixes(self.prefix.clone()))
        }
    }
}

/// What a replay did; `done` is false when it stopped before its deadline
/// with objects left, and invoking it again continues.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub objects_replayed: usize,
    /// Claimed by an earlier or concurrent replay.
    pub objects_skipped: usize,
    /// Objects claimed whose batches Firehose refused whole after every
    /// attempt: released, for a later replay to take again.
    pub objects_released: usize,
    pub unreadable: Vec<Unreadable>,
    /// Records the objects held, KPL aggregates counting one (all that a
    /// dry run counts).
    pub records_found: usize,
    pub events_delivered: usize,
    pub events_rejected: usize,
    /// Dead-lettered again (a new object under `dead-letters/` named for
    /// this replay), or in a released object.
    pub events_still_failing: usize,
    pub done: bool,
    pub dry_run: bool,
}

/// An object under the prefix that could not be read as its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    pub key: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prefix: &str) -> Request {
        Request {
            prefix: prefix.to_owned(),
            bucket: None,
            dry_run: false,
        }
    }

    #[test]
    fn only_recovery_prefixes_are_replayed() {
        for ok in [
            "dead-letters/",
            "rejects-unsent/year=2026/",
            "aws/lambda/",
            "rejects/year=2026/month=11/",
        ] {
            assert_eq!(request(ok).check(), Ok(()), "{ok}");
        }
        for refused in [
            "",
            "events/",
            "dead-letters",
            "rejects",
            "aws/",
            "replay-markers/",
            "dead-letters/../events/",
        ] {
            assert!(request(refused).check().is_err(), "{refused}");
        }
    }

    #[test]
    fn unknown_request_fields_are_refused() {
        assert!(serde_json::from_str::<Request>(r#"{"prefix":"rejects/","dryrun":true}"#).is_err());
        let r: Request = serde_json::from_str(r#"{"prefix":"rejects/","dry_run":true}"#).unwrap();
        assert!(r.dry_run);
    }
}
