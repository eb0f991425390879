//! The objects a replay reads, each read strictly as its kind into the
//! Kinesis records to run through the bridge again.
//!
//! - `dead-letters/`: dead letters, parts joined, gzip members opened; each
//!   event line becomes a record again, under its letter's sequence number.
//! - `rejects-unsent/` and `rejects/` (gzipped by the rejects stream, or
//!   not): reject lines, parts joined ([`reject::recover`], which counts a
//!   line read twice once, by sequence number, sub-sequence number and
//!   part); each payload becomes its record again, validated anew, so a
//!   corrected contract recovers it.
//! - `aws/lambda/`: the batch an on-failure object carries, whole.
//!
//! Anything that does not read as its kind is unreadable, with the reason.

use crate::batch::{Payload, Record};
use crate::compress;
use crate::dead_letter::{self, DeadLetter};
use crate::on_failure::{self, InvocationRecord};
use crate::reject::{self, RejectLine};
use crate::undelivered::{DEAD_LETTERS_PREFIX, REJECTS_UNSENT_PREFIX};

use super::request::REJECTS_PREFIX;

/// The most bytes a gzip member of a dead letter or a rejects object may
/// open to: far above any record or buffer the stack writes, so that a
/// hostile object cannot exhaust the function's memory.
pub const MAX_OPENED: u64 = 256 * 1024 * 1024;

/// What an object holds, by where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    DeadLetters,
    Rejects,
    OnFailure,
}

impl Kind {
    pub fn of(key: &str) -> Option<Kind> {
        if key.starts_with(DEAD_LETTERS_PREFIX) {
            Some(Kind::DeadLetters)
        } else if key.starts_with(REJECTS_UNSENT_PREFIX) || key.starts_with(REJECTS_PREFIX) {
            Some(Kind::Rejects)
        } else if key.starts_with(on_failure::PREFIX) {
            Some(Kind::OnFailure)
        } else {
            None
        }
    }
}

/// The records `body` holds, as `kind`; an error says why it is not one.
pub fn records(kind: Kind, body: &[u8]) -> Result<Vec<Record>, String> {
    match kind {
        Kind::DeadLetters => dead_letter_records(&opened(body)?),
        Kind::Rejects => reject_records(&opened(body)?),
        Kind::OnFailure => InvocationRecord::parse(body)
            .map(|(_, batch)| batch.records)
            .map_err(|e| e.to_string()),
    }
}

fn dead_letter_records(body: &[u8]) -> Result<Vec<Record>, String> {
    let letters = lines_as::<DeadLetter>(body)?;
    if let Some((n, letter)) = letters.iter().enumerate().find(|(_, l)| l.kind != dead_letter::KIND) {
        return Err(format!("line {}: kind {:?}, not a dead letter", n + 1, letter.kind));
    }
    // A whole letter is a record; the parts of one line make one record.
    let mut units: Vec<(Vec<u8>, &DeadLetter)> = Vec::new();
    for record_letters in dead_letter::by_record(&letters, |l| l) {
        let mut joined = dead_letter::reassemble(record_letters.iter().copied()).map_err(|e| e.to_string())?;
        if let (Some(record), Some(first)) = (joined.pop(), record_letters.first().copied()) {
            units.push((record, first));
        }
    }
    let mut records = Vec::new();
    for (bytes, letter) in units {
        let plain = if letter.encoding.as_deref() == Some(dead_letter::GZIP) {
            opened(&bytes)?
        } else {
            bytes
        };
        let lines: Vec<&[u8]> = plain.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        // One sequence number per line when the letter lists as many;
        // else (events of one record, or a gzip letter's first and last)
        // the first stands for all.
        let exact = letter.sequence_numbers.len() == lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            let at = if exact { i } else { 0 };
            let sequence = letter.sequence_numbers.get(at).cloned().unwrap_or_default();
            records.push(record(sequence, String::new(), 0.0, line.to_vec()));
        }
    }
    Ok(records)
}

fn reject_records(body: &[u8]) -> Result<Vec<Record>, String> {
    let lines = reject::read_lines(body)
        .collect::<Result<Vec<RejectLine>, _>>()
        .map_err(|e| e.to_string())?;
    let recovered = reject::recover(lines).map_err(|e| e.to_string())?;
    Ok(recovered
        .into_iter()
        .map(|r| {
            let line = r.line;
            record(
                line.sequence_number,
                line.partition_key,
                line.approximate_arrival_timestamp,
                r.payload,
            )
        })
        .collect())
}

fn record(sequence_number: String, partition_key: String, arrival: f64, data: Vec<u8>) -> Record {
    Record {
        kinesis: Payload {
            sequence_number,
            partition_key,
            approximate_arrival_timestamp: arrival,
            data,
        },
    }
}

/// Every non-empty line of `body` as a `T`, or the first that is not one.
fn lines_as<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Vec<T>, String> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(n, l)| serde_json::from_slice(l).map_err(|e| format!("line {}: {e}", n + 1)))
        .collect()
}

/// `body`, its gzip members opened when it is gzip.
fn opened(body: &[u8]) -> Result<Vec<u8>, String> {
    compress::open(body, MAX_OPENED)
        .map(|b| b.into_owned())
        .map_err(|e| e.to_string())
}
