//! Payloads too large for one line, written in numbered parts.
//!
//! A line the bridge writes must fit a CloudWatch Logs event (256 KiB) and
//! a Firehose record (1,000 KiB). A payload whose base64 would not is cut
//! into pieces of at most [`MAX_DATA_PER_LINE`] raw bytes; each piece
//! travels in a line of its own that names its group, its index and the
//! count, and [`join`] puts the payload back together from the lines in any
//! order, each piece once. Dead letters and rejected records both use it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::limits::MAX_DATA_PER_LINE;

/// Which piece of a payload a line carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Shared by all parts of the same payload, and by no other payload.
    pub group: String,
    pub index: usize,
    pub count: usize,
}

/// The pieces of `data`: one `(None, data)` when it fits a line, else each
/// piece with its [`Part`].
pub fn split(data: &[u8], group: impl FnOnce() -> String) -> Vec<(Option<Part>, &[u8])> {
    if data.len() <= MAX_DATA_PER_LINE {
        return vec![(None, data)];
    }
    let group = group();
    let count = data.len().div_ceil(MAX_DATA_PER_LINE);
    data.chunks(MAX_DATA_PER_LINE)
        .enumerate()
        .map(|(index, piece)| {
            let part = Part {
                group: group.clone(),
                index,
                count,
            };
            (Some(part), piece)
        })
        .collect()
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum JoinError {
    #[error("part group {group} has {have} of its {count} parts (missing: {missing:?})")]
    MissingParts {
        group: String,
        have: usize,
        count: usize,
        missing: Vec<usize>,
    },
    #[error("part group {group} disagrees on its number of parts ({first} and {other})")]
    CountMismatch { group: String, first: usize, other: usize },
    #[error("part group {group}: part {index} appears twice with different bytes")]
    Conflict { group: String, index: usize },
}

/// Payloads from `(part, bytes)` pieces in any order: a whole one as it is,
/// the parts of a group joined once all of them are there. The same piece
/// read twice (a log read twice, a retried invocation) counts once.
/// Whole payloads come first, in input order, then groups by name.
pub fn join<B: AsRef<[u8]>>(pieces: impl IntoIterator<Item = (Option<Part>, B)>) -> Result<Vec<Vec<u8>>, JoinError> {
    let mut whole = Vec::new();
    let mut groups: BTreeMap<String, (usize, BTreeMap<usize, B>)> = BTreeMap::new();
    for (part, bytes) in pieces {
        let Some(part) = part else {
            whole.push(bytes.as_ref().to_vec());
            continue;
        };
        let (count, parts) = groups
            .entry(part.group.clone())
            .or_insert((part.count, BTreeMap::new()));
        if *count != part.count {
            return Err(JoinError::CountMismatch {
                group: part.group,
                first: *count,
                other: part.count,
            });
        }
        if let Some(seen) = parts.get(&part.index) {
            if seen.as_ref() != bytes.as_ref() {
                return Err(JoinError::Conflict {
                    group: part.group,
                    index: part.index,
                });
            }
            continue;
        }
        parts.insert(part.index, bytes);
    }
    for (group, (count, parts)) in groups {
        let missing: Vec<usize> = (0..count).filter(|i| !parts.contains_key(i)).collect();
        if !missing.is_empty() || parts.len() != count {
            return Err(JoinError::MissingParts {
                group,
                have: parts.len(),
                count,
                missing,
            });
        }
        let mut payload = Vec::new();
        for bytes in parts.values() {
            payload.extend_from_slice(bytes.as_ref());
        }
        whole.push(payload);
    }
    Ok(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_that_fits_is_one_piece_without_a_part() {
        let pieces = split(b"abc", || unreachable!("no group needed"));
        assert_eq!(pieces, vec![(None, &b"abc"[..])]);
    }

    #[test]
    fn a_large_payload_is_cut_into_numbered_parts_and_joined_back_in_any_order() {
        let data: Vec<u8> = (0..MAX_DATA_PER_LINE * 2 + 7).map(|i| i as u8).collect();
        let mut pieces = split(&data, || "g".to_owned());
        assert_eq!(pieces.len(), 3);
        assert!(
            pieces
                .iter()
                .all(|(p, b)| p.as_ref().unwrap().count == 3 && b.len() <= MAX_DATA_PER_LINE)
        );
        pieces.reverse();
        pieces.push(pieces[0].clone()); // read twice
        assert_eq!(join(pieces).unwrap(), vec![data]);
    }

    #[test]
    fn a_missing_part_is_an_error_naming_the_group_and_the_part() {
        let data = vec![b'x'; MAX_DATA_PER_LINE * 3];
        let mut pieces = split(&data, || "req/1/0".to_owned());
        pieces.remove(1);
        assert_eq!(
            join(pieces),
            Err(JoinError::MissingParts {
                group: "req/1/0".into(),
                have: 2,
                count: 3,
                missing: vec![1]
            })
        );
    }

    #[test]
    fn parts_that_disagree_are_an_error() {
        let part = |index, count| {
            Some(Part {
                group: "g".into(),
                index,
                count,
            })
        };
        assert!(matches!(
            join([(part(0, 2), b"a".to_vec()), (part(1, 3), b"b".to_vec())]),
            Err(JoinError::CountMismatch { .. })
        ));
        assert!(matches!(
            join([(part(0, 1), b"a".to_vec()), (part(0, 1), b"b".to_vec())]),
            Err(JoinError::Conflict { .. })
        ));
    }
}
