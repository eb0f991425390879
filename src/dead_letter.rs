//! Dead letters: records Firehose would not take, kept so they can be
//! replayed.
//!
//! Each dead letter carries the exact bytes that were to be delivered
//! (base64) and the Kinesis sequence numbers of the events inside. A line
//! must fit a CloudWatch Logs event, so a large record is written as
//! several dead letters split at event boundaries, and a single event too
//! large for one line is written in numbered parts ([`crate::part`]) that
//! [`reassemble`] joins again. The same lines go to the invocation's S3
//! object (`dead-letters/`); when that cannot be written, the records are
//! handed back to Kinesis instead.

use base64_simd::STANDARD;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::limits::MAX_DATA_PER_LINE;
use crate::part::{self, JoinError, Part};

/// The `kind` of a dead letter's line.
pub const KIND: &str = "dead_letter";

/// The `encoding` of a dead letter holding a gzip member.
pub const GZIP: &str = "gzip";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub kind: String,
    pub delivery_stream: String,
    pub error_code: String,
    pub error_message: String,
    /// Kinesis sequence numbers of the events in `data`, in order, each once.
    pub sequence_numbers: Vec<String>,
    /// Base64 of the bytes: whole newline-terminated event lines, or one
    /// part of a single line when `part` is set; with `encoding`, the
    /// record's bytes so encoded, or a part of them.
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
    /// `gzip` when the record is a gzip member (`COMPRESSION=gzip`); its
    /// `sequence_numbers` are then the first and the last of its events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

/// The failure a dead letter records.
#[derive(Debug, Clone, Copy)]
pub struct Cause<'a> {
    pub delivery_stream: &'a str,
    pub error_code: &'a str,
    pub error_message: &'a str,
}

/// Distinct sequence numbers one dead letter lists: 200 of the longest
/// (129 digits) take 27 KB, which with the base64 of
/// [`MAX_DATA_PER_LINE`] bytes keeps the line within a CloudWatch event.
pub const MAX_SEQUENCE_NUMBERS_PER_LINE: usize = 200;

impl DeadLetter {
    /// Dead letters for one undelivered record of newline-terminated event
    /// lines. `sequence_of(i)` is the sequence number of line `i`;
    /// `group_prefix` makes part groups unique (e.g. request id and record).
    /// Each letter holds whole lines, at most [`MAX_DATA_PER_LINE`] bytes
    /// and [`MAX_SEQUENCE_NUMBERS_PER_LINE`] sequence numbers of them; a
    /// line larger than that alone is written in parts.
    pub fn for_record<'s>(
        cause: Cause<'_>,
        data: &[u8],
        sequence_of: impl Fn(usize) -> &'s str,
        group_prefix: &str,
    ) -> Vec<DeadLetter> {
        let new = |lines: std::ops::Range<usize>, bytes: &[u8], part: Option<Part>| {
            let mut sequence_numbers: Vec<String> = Vec::new();
            for line in lines {
                let sequence = sequence_of(line);
                if sequence_numbers.last().map(String::as_str) != Some(sequence) {
                    sequence_numbers.push(bounded(sequence).to_owned());
                }
            }
            DeadLetter {
                kind: KIND.to_owned(),
                delivery_stream: cause.delivery_stream.to_owned(),
                error_code: cause.error_code.to_owned(),
                error_message: cause.error_message.to_owned(),
                sequence_numbers,
                data: STANDARD.encode_to_string(bytes),
                part,
                encoding: None,
            }
        };

        let mut letters = Vec::new();
        // The chunk being gathered: from byte `chunk_start`, line
        // `chunk_first`, holding `chunk_sequences` distinct sequence numbers.
        let (mut chunk_start, mut chunk_first, mut chunk_sequences) = (0, 0, 0);
        let mut line_start = 0;
        let mut line = 0;
        let line_ends = data
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1)
            .chain((data.last() != Some(&b'\n') && !data.is_empty()).then_some(data.len()));
        for line_end in line_ends {
            let new_sequence = line == chunk_first || sequence_of(line) != sequence_of(line - 1);
            if line_end - line_start > MAX_DATA_PER_LINE {
                // Flush what came before, then this line in parts.
                if chunk_start < line_start {
                    letters.push(new(chunk_first..line, &data[chunk_start..line_start], None));
                }
                for (part, piece) in part::split(&data[line_start..line_end], || format!("{group_prefix}/{line}")) {
                    letters.push(new(line..line + 1, piece, part));
                }
                (chunk_start, chunk_first, chunk_sequences) = (line_end, line + 1, 0);
            } else {
                let full = line_end - chunk_start > MAX_DATA_PER_LINE
                    || (new_sequence && chunk_sequences == MAX_SEQUENCE_NUMBERS_PER_LINE);
                if full && chunk_start < line_start {
                    letters.push(new(chunk_first..line, &data[chunk_start..line_start], None));
                    (chunk_start, chunk_first, chunk_sequences) = (line_start, line, 0);
                }
                if line == chunk_first || new_sequence {
                    chunk_sequences += 1;
                }
            }
            line_start = line_end;
            line += 1;
        }
        if chunk_start < data.len() {
            letters.push(new(chunk_first..line, &data[chunk_start..], None));
        }
        letters
    }

    /// Dead letters for one undelivered gzip member holding `events` events,
    /// the first and last with the sequence numbers given: the exact
    /// bytes, in parts when they do not fit one line.
    pub fn for_compressed(cause: Cause<'_>, data: &[u8], first_and_last: [&str; 2], group: &str) -> Vec<DeadLetter> {
        let mut sequence_numbers: Vec<String> = first_and_last.iter().map(|s| bounded(s).to_owned()).collect();
        sequence_numbers.dedup();
        part::split(data, || group.to_owned())
            .into_iter()
            .map(|(part, piece)| DeadLetter {
                kind: KIND.to_owned(),
                delivery_stream: cause.delivery_stream.to_owned(),
                error_code: cause.error_code.to_owned(),
                error_message: cause.error_message.to_owned(),
                sequence_numbers: sequence_numbers.clone(),
                data: STANDARD.encode_to_string(piece),
                part,
                encoding: Some(GZIP.to_owned()),
            })
            .collect()
    }

    /// The bytes this dead letter carries.
    pub fn bytes(&self) -> Result<Vec<u8>, ReplayError> {
        STANDARD
            .decode_to_vec(&self.data)
            .map_err(|e| ReplayError::BadData(e.to_string()))
    }
}

/// A sequence number as long as Kinesis makes them, at most.
fn bounded(sequence: &str) -> &str {
    let mut end = sequence.len().min(crate::limits::MAX_SEQUENCE_NUMBER);
    while !sequence.is_char_boundary(end) {
        end -= 1;
    }
    &sequence[..end]
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReplayError {
    #[error("dead letter data is not base64: {0}")]
    BadData(String),
    #[error("dead letters: {0}")]
    Parts(#[from] JoinError),
}

/// The records to deliver again, from dead letters in any order: whole
/// letters as they are, parted lines joined once all their parts are here.
pub fn reassemble<'a>(letters: impl IntoIterator<Item = &'a DeadLetter>) -> Result<Vec<Vec<u8>>, ReplayError> {
    let pieces = letters
        .into_iter()
        .map(|l| Ok((l.part.clone(), l.bytes()?)))
        .collect::<Result<Vec<_>, ReplayError>>()?;
    Ok(part::join(pieces)?)
}

/// The letters of each record they carry, in the order given: a whole
/// letter alone, or every part of one parted line together. `letter` finds
/// the dead letter in whatever holds it (a log line with its time, say).
pub fn by_record<'a, L>(letters: &'a [L], letter: impl Fn(&L) -> &DeadLetter) -> Vec<Vec<&'a L>> {
    let mut records: Vec<Vec<&'a L>> = Vec::new();
    let mut groups: std::collections::HashMap<&'a str, usize> = std::collections::HashMap::new();
    for held in letters {
        match &letter(held).part {
            None => records.push(vec![held]),
            Some(part) => match groups.get(part.group.as_str()) {
                Some(&at) => records[at].push(held),
                None => {
                    groups.insert(part.group.as_str(), records.len());
                    records.push(vec![held]);
                }
            },
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::limits::CLOUDWATCH_MAX_EVENT_SIZE;

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

    fn numbered(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn many_small_events_with_long_sequence_numbers_still_fit_cloudwatch() {
        // 4,000 events of 50 bytes, each from its own Kinesis record with a
        // sequence number of the longest kind.
        let data = lines(4_000, 50);
        let names: Vec<String> = (0..4_000).map(|i| format!("{:0>129}", i)).collect();
        let letters = DeadLetter::for_record(CAUSE, &data, |i| &names[i], "r");
        let mut joined = Vec::new();
        for l in &letters {
            assert!(l.sequence_numbers.len() <= MAX_SEQUENCE_NUMBERS_PER_LINE);
            let size = serde_json::to_vec(l).unwrap().len();
            assert!(size < CLOUDWATCH_MAX_EVENT_SIZE - 1024, "{size}");
            joined.extend(l.bytes().unwrap());
        }
        assert_eq!(joined, data);
        assert_eq!(letters.len(), 20);
    }

    #[test]
    fn small_record_is_one_dead_letter_with_its_exact_bytes() {
        let data = b"{\"a\":1}\n{\"b\":2}\n";
        let letters = DeadLetter::for_record(CAUSE, data, |i| ["100", "101"][i], "r");
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].bytes().unwrap(), data);
        assert_eq!(letters[0].sequence_numbers, vec!["100", "101"]);
        assert_eq!(letters[0].error_message, "Slow down.");
    }

    #[test]
    fn repeated_sequence_numbers_of_an_aggregate_are_listed_once() {
        let letters = DeadLetter::for_record(CAUSE, b"a\nb\nc\n", |_| "7", "r");
        assert_eq!(letters[0].sequence_numbers, vec!["7"]);
    }

    #[test]
    fn large_record_splits_at_event_boundaries_and_every_line_fits_cloudwatch() {
        let data = lines(400, 2560); // 1,024,000 bytes
        let names = numbered("", 400);
        let letters = DeadLetter::for_record(CAUSE, &data, |i| &names[i], "r");
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
        let names = numbered("s", 3);
        let letters = DeadLetter::for_record(CAUSE, &data, |i| &names[i], "req/0");
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
        let mut letters = DeadLetter::for_record(CAUSE, &data, |_| "1", "g");
        letters.pop();
        assert!(matches!(
            reassemble(&letters),
            Err(ReplayError::Parts(JoinError::MissingParts { have: 2, count: 3, .. }))
        ));
    }

    #[test]
    fn a_compressed_record_is_kept_byte_for_byte_with_its_first_and_last_sequence_numbers() {
        let data: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let letters = DeadLetter::for_compressed(CAUSE, &data, ["1", "9"], "req/0");
        assert_eq!(letters.len(), 3);
        for l in &letters {
            assert_eq!(l.encoding.as_deref(), Some("gzip"));
            assert_eq!(l.sequence_numbers, vec!["1", "9"]);
            assert!(serde_json::to_vec(l).unwrap().len() < CLOUDWATCH_MAX_EVENT_SIZE);
        }
        assert_eq!(reassemble(&letters).unwrap(), vec![data]);
    }

    #[test]
    fn parses_back_from_its_json_line() {
        let letters = DeadLetter::for_record(CAUSE, b"x\n", |_| "1", "g");
        let line = serde_json::to_string(&letters[0]).unwrap();
        assert!(line.contains(r#""kind":"dead_letter""#));
        assert_eq!(serde_json::from_str::<DeadLetter>(&line).unwrap(), letters[0]);
    }
}
