//! Rejected records: the lines that keep them.
//!
//! A rejected record never fails the invocation. It becomes a JSON line, a
//! [`RejectLine`], with its reason, where it came from and its original
//! bytes (base64); bytes too large for one line are written in numbered
//! parts ([`crate::part`]). The same lines go wherever the record is kept:
//! the rejects stream (`REJECTS_DELIVERY_STREAM`), or, when that is unset
//! or could not take them, an S3 object of the invocation's unsent
//! rejections, or the log. From any of them [`recover`] gives the payload
//! back byte for byte.
//!
//! Every field of a line is bounded, whatever the input: a line always fits
//! a CloudWatch Logs event, and so a Firehose record.

use base64_simd::STANDARD;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::limits::{MAX_PARTITION_KEY, MAX_SEQUENCE_NUMBER};
use crate::part::{self, JoinError, Part};
use crate::reason::Reason;

/// The `kind` of a rejection's log line.
pub const KIND: &str = "rejected";

/// Most bytes of `detail`: a reason's message can quote the event (a JSON
/// Schema error shows the value it refused).
pub const MAX_DETAIL: usize = 512;

/// One line of a rejected record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectLine {
    /// Stable code, e.g. `missing_timestamp` ([`Reason::code`]).
    pub reason: String,
    /// What to fix, at most [`MAX_DETAIL`] bytes.
    pub detail: String,
    pub sequence_number: String,
    /// Index inside a KPL aggregate; `None` for a plain record.
    pub sub_sequence_number: Option<u64>,
    /// The partition key, cut to [`MAX_PARTITION_KEY`] bytes as written in
    /// JSON; `partition_key_md5` then identifies the whole key.
    pub partition_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_key_md5: Option<String>,
    /// Seconds since the epoch, as Kinesis reports it.
    pub approximate_arrival_timestamp: f64,
    /// Fields cut to their bound, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub truncated: Vec<String>,
    /// Base64 of the original bytes, or of this part of them.
    #[serde(default)]
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
}

/// A rejection's log line: its kind, then the line's fields.
pub fn log_body(line: &RejectLine) -> impl Serialize + '_ {
    #[derive(Serialize)]
    struct Logged<'a> {
        kind: &'static str,
        #[serde(flatten)]
        line: &'a RejectLine,
    }
    Logged { kind: KIND, line }
}

/// Where a rejected payload came from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub sequence_number: &'a str,
    pub sub_sequence_number: Option<u64>,
    pub partition_key: &'a str,
    pub approximate_arrival_timestamp: f64,
}

/// The lines that keep a rejected payload: one, or its parts in order.
pub fn lines(source: Source<'_>, reason: &Reason, data: &[u8]) -> Vec<RejectLine> {
    let mut truncated = Vec::new();
    let mut bounded = |name: &str, value: &str, max: usize| {
        let kept = json_prefix(value, max);
        if kept.len() < value.len() {
            truncated.push(name.to_owned());
        }
        kept.to_owned()
    };
    let sequence_number = bounded("sequence_number", source.sequence_number, MAX_SEQUENCE_NUMBER);
    let partition_key = bounded("partition_key", source.partition_key, MAX_PARTITION_KEY);
    let detail = bounded("detail", &reason.to_string(), MAX_DETAIL);
    let partition_key_md5 =
        (partition_key.len() < source.partition_key.len()).then(|| hex(&Md5::digest(source.partition_key.as_bytes())));
    let group = || match source.sub_sequence_number {
        Some(sub) => format!("{sequence_number}/{sub}"),
        None => sequence_number.clone(),
    };
    part::split(data, group)
        .into_iter()
        .map(|(part, piece)| RejectLine {
            reason: reason.code().to_owned(),
            detail: detail.clone(),
            sequence_number: sequence_number.clone(),
            sub_sequence_number: source.sub_sequence_number,
            partition_key: partition_key.clone(),
            partition_key_md5: partition_key_md5.clone(),
            approximate_arrival_timestamp: source.approximate_arrival_timestamp,
            truncated: truncated.clone(),
            data: STANDARD.encode_to_string(piece),
            part,
        })
        .collect()
}

/// The longest prefix of `value`, on a character boundary, whose JSON
/// string form (escapes included, quotes not) is at most `max` bytes.
fn json_prefix(value: &str, max: usize) -> &str {
    let mut written = 0;
    for (at, c) in value.char_indices() {
        let width = match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        };
        if written + width > max {
            return &value[..at];
        }
        written += width;
    }
    value
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A rejected record put back together.
/// A line of a reject object that is not a reject line.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: not a reject line: {reason}")]
pub struct LineError {
    /// 1-based.
    pub line: usize,
    pub reason: String,
}

/// The reject lines of an object of `rejects/` or `rejects-unsent/` (its
/// gzip members opened), in order; blank lines are skipped.
pub fn read_lines(body: &[u8]) -> impl Iterator<Item = Result<RejectLine, LineError>> + '_ {
    body.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(n, l)| {
            serde_json::from_slice(l).map_err(|e| LineError {
                line: n + 1,
                reason: e.to_string(),
            })
        })
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// The first line of the record, its `data` and `part` cleared.
    pub line: RejectLine,
    pub payload: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RecoverError {
    #[error("rejected record {sequence_number}: data is not base64: {message}")]
    BadData { sequence_number: String, message: String },
    #[error("rejected records: {0}")]
    Parts(#[from] JoinError),
}

/// Rejected payloads from their lines, in any order, parts joined. The same
/// line read twice counts once.
pub fn recover(lines: impl IntoIterator<Item = RejectLine>) -> Result<Vec<Recovered>, RecoverError> {
    let mut recovered = Vec::new();
    let mut seen_whole = std::collections::HashSet::new();
    // Each group: its first line, and every piece read of it.
    type Pieces = Vec<(Option<Part>, Vec<u8>)>;
    let mut groups: std::collections::BTreeMap<String, (RejectLine, Pieces)> = Default::default();
    for mut line in lines {
        let bytes = STANDARD.decode_to_vec(&line.data).map_err(|e| RecoverError::BadData {
            sequence_number: line.sequence_number.clone(),
            message: e.to_string(),
        })?;
        let part = line.part.take();
        line.data.clear();
        match part {
            None => {
                let key = (line.sequence_number.clone(), line.sub_sequence_number, bytes.clone());
                if seen_whole.insert(key) {
                    recovered.push(Recovered { line, payload: bytes });
                }
            }
            Some(part) => {
                let group = part.group.clone();
                groups
                    .entry(group)
                    .or_insert_with(|| (line, Vec::new()))
                    .1
                    .push((Some(part), bytes));
            }
        }
    }
    for (_, (line, pieces)) in groups {
        let mut joined = part::join(pieces)?;
        // One group, so one payload.
        if let Some(payload) = joined.pop() {
            recovered.push(Recovered { line, payload });
        }
    }
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{CLOUDWATCH_MAX_EVENT_SIZE, MAX_RECORD_SIZE};

    const SOURCE: Source = Source {
        sequence_number: "4959",
        sub_sequence_number: Some(2),
        partition_key: "pk",
        approximate_arrival_timestamp: 1764072000.5,
    };

    fn only(lines: Vec<RejectLine>) -> RejectLine {
        assert_eq!(lines.len(), 1);
        lines.into_iter().next().unwrap()
    }

    #[test]
    fn line_carries_reason_origin_and_original_bytes() {
        let line = only(lines(SOURCE, &Reason::MissingTimestamp, b"{\"x\":1}"));
        let text = serde_json::to_vec(&line).unwrap();
        assert!(!text.contains(&b'\n'));
        let parsed: RejectLine = serde_json::from_slice(&text).unwrap();
        assert_eq!(parsed.reason, "missing_timestamp");
        assert_eq!(parsed.sequence_number, "4959");
        assert_eq!(parsed.sub_sequence_number, Some(2));
        assert_eq!(parsed.partition_key, "pk");
        assert_eq!(parsed.approximate_arrival_timestamp, 1764072000.5);
        assert!(parsed.truncated.is_empty() && parsed.part.is_none());
        assert_eq!(STANDARD.decode_to_vec(parsed.data).unwrap(), b"{\"x\":1}");
    }

    #[test]
    fn a_payload_of_a_megabyte_is_kept_whole_in_parts_that_each_fit_a_log_event() {
        let big: Vec<u8> = (0..1_040_000u32).map(|i| (i % 251) as u8).collect();
        let written = lines(SOURCE, &Reason::TooLarge(1_040_001), &big);
        assert!(written.len() > 1);
        for line in &written {
            let size = serde_json::to_vec(line).unwrap().len();
            assert!(size < CLOUDWATCH_MAX_EVENT_SIZE - 1024, "{size}");
        }
        let mut shuffled = written.clone();
        shuffled.reverse();
        let recovered = recover(shuffled).unwrap();
        assert_eq!(recovered.len(), 1);
        assert_eq!(recovered[0].payload, big);
        assert_eq!(recovered[0].line.reason, "too_large");
    }

    #[test]
    fn an_over_long_partition_key_is_cut_said_so_and_identified_by_its_md5() {
        let key = "\u{1}".repeat(180_000);
        let source = Source {
            partition_key: &key,
            ..SOURCE
        };
        let line = only(lines(source, &Reason::NotAnObject, b"[]"));
        let size = serde_json::to_vec(&line).unwrap().len();
        assert!(size < 2_048, "{size}");
        assert!(serde_json::to_string(&line.partition_key).unwrap().len() <= MAX_PARTITION_KEY + 2);
        assert_eq!(line.truncated, vec!["partition_key"]);
        assert_eq!(
            line.partition_key_md5.as_deref(),
            Some(&*hex(&Md5::digest(key.as_bytes())))
        );
        assert!(size < MAX_RECORD_SIZE);
    }

    #[test]
    fn a_long_detail_is_cut_at_a_character_boundary() {
        let reason = Reason::SchemaViolation(format!("at /x: \"{}\" is too long", "é".repeat(10_000)));
        let line = only(lines(SOURCE, &reason, b"{}"));
        assert!(line.detail.len() <= MAX_DETAIL);
        assert_eq!(line.truncated, vec!["detail"]);
    }

    #[test]
    fn json_prefix_counts_escapes() {
        assert_eq!(json_prefix("abc", 2), "ab");
        assert_eq!(json_prefix("a\"b", 2), "a");
        assert_eq!(json_prefix("\u{1}\u{1}", 11), "\u{1}");
        assert_eq!(json_prefix("éé", 3), "é");
        assert_eq!(json_prefix("", 0), "");
    }

    #[test]
    fn recover_counts_a_line_read_twice_once_and_names_a_missing_part() {
        let line = only(lines(SOURCE, &Reason::NotAnObject, b"[]"));
        assert_eq!(recover([line.clone(), line]).unwrap().len(), 1);
        let big = vec![b'x'; 400_000];
        let mut parts = lines(SOURCE, &Reason::TooLarge(400_001), &big);
        parts.remove(0);
        let error = recover(parts).unwrap_err();
        assert!(error.to_string().contains("4959/2"), "{error}");
    }
}
