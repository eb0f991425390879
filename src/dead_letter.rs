//! Dead letters: records Firehose would not take, kept in the log so they
//! can be replayed.
//!
//! Each line carries the exact bytes that were to be delivered (base64) and
//! the Kinesis sequence numbers of the events inside. CloudWatch Logs cuts
//! log events at 256 KiB, so a large record is written as several dead
//! letters split at event boundaries, and a single event too large for one
//! line is split into numbered parts that [`reassemble`] joins again.

use base64_simd::STANDARD;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// CloudWatch Logs: "The maximum event size is 256 KB" (Quotas page).
pub const CLOUDWATCH_MAX_EVENT_SIZE: usize = 256 * 1024;

/// Raw bytes one dead letter may carry: base64 turns 3 bytes into 4, and the
/// rest of the line (stream, error, sequence numbers) needs room too.
pub const MAX_DATA_PER_LINE: usize = 160 * 1024;

pub const KIND: &str = "dead_letter";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub kind: String,
    pub delivery_stream: String,
    pub error_code: String,
    pub error_message: String,
    /// Kinesis sequence numbers of the events in `data`, in order, each once.
    pub sequence_numbers: Vec<String>,
    /// Base64 of the bytes: whole newline-terminated event lines, or one
    /// part of a single line when `part` is set.
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
}

/// One piece of an event line too large for a single log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Shared by all parts of the same line.
    pub group: String,
    pub index: usize,
    pub count: usize,
}

/// The failure a dead letter records.
#[derive(Debug, Clone, Copy)]
pub struct Cause<'a> {
    pub delivery_stream: &'a str,
    pub error_code: &'a str,
    pub error_message: &'a str,
}

impl DeadLetter {
    /// Dead letters for one undelivered record of newline-terminated event
    /// lines. `sequence_of(i)` is the sequence number of line `i`;
    /// `group_prefix` makes part groups unique (e.g. request id and record).
    pub fn for_record(
        cause: Cause<'_>,
        data: &[u8],
        sequence_of: impl Fn(usize) -> String,
        group_prefix: &str,
    ) -> Vec<DeadLetter> {
        let new = |range: std::ops::Range<usize>, bytes: &[u8], part: Option<Part>| {
            let mut sequence_numbers: Vec<String> = range.map(&sequence_of).collect();
            sequence_numbers.dedup();
            DeadLetter {
                kind: KIND.to_owned(),
                delivery_stream: cause.delivery_stream.to_owned(),
                error_code: cause.error_code.to_owned(),
                error_message: cause.error_message.to_owned(),
                sequence_numbers,
                data: STANDARD.encode_to_string(bytes),
                part,
            }
        };

        let mut letters = Vec::new();
        let mut chunk_start = 0; // byte offset
        let mut chunk_first = 0; // line index
        let mut line_start = 0;
        let mut line = 0;
        let line_ends = data
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1)
            .chain((data.last() != Some(&b'\n') && !data.is_empty()).then_some(data.len()));
        for line_end in line_ends {
            if line_end - line_start > MAX_DATA_PER_LINE {
                // Flush what came before, then this line in parts.
                if chunk_start < line_start {
                    letters.push(new(chunk_first..line, &data[chunk_start..line_start], None));
                }
                let pieces: Vec<&[u8]> = data[line_start..line_end].chunks(MAX_DATA_PER_LINE).collect();
                let group = format!("{group_prefix}/{line}");
                for (index, piece) in pieces.iter().enumerate() {
                    let part = Part {
                        group: group.clone(),
                        index,
                        count: pieces.len(),
                    };
                    letters.push(new(line..line + 1, piece, Some(part)));
                }
                chunk_start = line_end;
                chunk_first = line + 1;
            } else if line_end - chunk_start > MAX_DATA_PER_LINE {
                letters.push(new(chunk_first..line, &data[chunk_start..line_start], None));
                chunk_start = line_start;
                chunk_first = line;
            }
            line_start = line_end;
            line += 1;
        }
        if chunk_start < data.len() {
            letters.push(new(chunk_first..line, &data[chunk_start..], None));
        }
        letters
    }

    /// The bytes this dead letter carries.
    pub fn bytes(&self) -> Result<Vec<u8>, ReplayError> {
        STANDARD
            .decode_to_vec(&self.data)
            .map_err(|e| ReplayError::BadData(e.to_string()))
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReplayError {
    #[error("dead letter data is not base64: {0}")]
    BadData(String),
    #[error("dead letter part group {group} has {have} of its {count} parts")]
    MissingParts { group: String, have: usize, count: usize },
}

/// The records to deliver again, from dead letters in any order: whole
/// letters as they are, parted lines joined once all their parts are here.
pub fn reassemble(letters: &[DeadLetter]) -> Result<Vec<Vec<u8>>, ReplayError> {
    let mut records = Vec::new();
    let mut groups: std::collections::BTreeMap<&str, Vec<&DeadLetter>> = Default::default();
    for letter in letters {
        match &letter.part {
            None => records.push(letter.bytes()?),
            Some(part) => groups.entry(part.group.as_str()).or_default().push(letter),
        }
    }
    for (group, mut parts) in groups {
        parts.sort_by_key(|l| l.part.as_ref().map_or(0, |p| p.index));
        parts.dedup_by_key(|l| l.part.as_ref().map_or(0, |p| p.index));
        let count = parts[0].part.as_ref().map_or(0, |p| p.count);
        if parts.len() != count {
            return Err(ReplayError::MissingParts {
                group: group.to_owned(),
                have: parts.len(),
                count,
            });
        }
        let mut line = Vec::new();
        for p in parts {
            line.extend_from_slice(&p.bytes()?);
        }
        records.push(line);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAUSE: Cause = Cause {
        delivery_stream: "s1",
        error_code: "ServiceUnavailableException",
        error_message: "Slow down.",
    };

    fn lines(n: usize, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            let mut line = vec![b'a' + (i % 26) as u8; len - 1];
            line.push(b'\n');
            out.extend_from_slice(&line);
        }
        out
    }

    #[test]
    fn small_record_is_one_dead_letter_with_its_exact_bytes() {
        let data = b"{\"a\":1}\n{\"b\":2}\n";
        let letters = DeadLetter::for_record(CAUSE, data, |i| format!("{}", 100 + i), "r");
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].bytes().unwrap(), data);
        assert_eq!(letters[0].sequence_numbers, vec!["100", "101"]);
        assert_eq!(letters[0].error_message, "Slow down.");
    }

    #[test]
    fn repeated_sequence_numbers_of_an_aggregate_are_listed_once() {
        let letters = DeadLetter::for_record(CAUSE, b"a\nb\nc\n", |_| "7".to_owned(), "r");
        assert_eq!(letters[0].sequence_numbers, vec!["7"]);
    }

    #[test]
    fn large_record_splits_at_event_boundaries_and_every_line_fits_cloudwatch() {
        let data = lines(400, 2560); // 1,024,000 bytes
        let letters = DeadLetter::for_record(CAUSE, &data, |i| i.to_string(), "r");
        assert!(letters.len() > 1);
        let mut joined = Vec::new();
        let mut seqs = Vec::new();
        for l in &letters {
            assert!(l.part.is_none());
            assert!(serde_json::to_vec(l).unwrap().len() < CLOUDWATCH_MAX_EVENT_SIZE);
            let bytes = l.bytes().unwrap();
            assert_eq!(bytes.last(), Some(&b'\n'));
            assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), l.sequence_numbers.len());
            joined.extend_from_slice(&bytes);
            seqs.extend(l.sequence_numbers.iter().cloned());
        }
        assert_eq!(joined, data);
        assert_eq!(seqs, (0..400).map(|i| i.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn oversized_line_is_split_into_parts_and_reassembled() {
        let mut data = b"small\n".to_vec();
        data.extend(lines(1, 500_000));
        data.extend_from_slice(b"tail\n");
        let letters = DeadLetter::for_record(CAUSE, &data, |i| format!("s{i}"), "req/0");
        let parted: Vec<_> = letters.iter().filter(|l| l.part.is_some()).collect();
        assert_eq!(parted.len(), 4);
        assert!(parted.iter().all(|l| l.sequence_numbers == vec!["s1"]));
        for l in &letters {
            assert!(serde_json::to_vec(l).unwrap().len() < CLOUDWATCH_MAX_EVENT_SIZE);
        }
        let mut shuffled = letters.clone();
        shuffled.reverse();
        let mut records = reassemble(&shuffled).unwrap();
        records.sort_by_key(|r| r.len());
        assert_eq!(
            records,
            vec![b"tail\n".to_vec(), b"small\n".to_vec(), data[6..500_006].to_vec()]
        );
    }

    #[test]
    fn reassembly_refuses_incomplete_groups() {
        let data = lines(1, 400_000);
        let mut letters = DeadLetter::for_record(CAUSE, &data, |_| "1".into(), "g");
        letters.pop();
        assert!(matches!(
            reassemble(&letters),
            Err(ReplayError::MissingParts { have: 2, count: 3, .. })
        ));
    }

    #[test]
    fn parses_back_from_its_json_line() {
        let letters = DeadLetter::for_record(CAUSE, b"x\n", |_| "1".into(), "g");
        let line = serde_json::to_string(&letters[0]).unwrap();
        assert!(line.contains(r#""kind":"dead_letter""#));
        assert_eq!(serde_json::from_str::<DeadLetter>(&line).unwrap(), letters[0]);
    }
}
