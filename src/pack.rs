//! Packing event lines into Firehose records.
//!
//! S3 receives the same newline-delimited bytes either way, but Firehose
//! bills each record in 5 KiB steps and throttles on records per second, so
//! a few large records cost far less than many small ones.

use std::ops::Range;

use crate::limits::MAX_RECORD_SIZE;

/// How lines are grouped into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    /// Most bytes in one record, newlines included.
    pub max_bytes: usize,
    /// Most lines in one record; 1 sends one event per record.
    pub max_events: usize,
}

impl Packing {
    /// One event per record.
    pub const UNPACKED: Packing = Packing {
        max_bytes: MAX_RECORD_SIZE,
        max_events: 1,
    };
}

/// One Firehose record: newline-terminated lines, and which of the packed
/// items (by index in the input order) it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub data: Vec<u8>,
    pub items: Range<usize>,
}

/// Packs `lines` in order. A line that does not fit `max_bytes` on its own
/// goes alone in its record; callers keep every line within
/// [`MAX_RECORD_SIZE`] with its newline, so each record is one Firehose
/// accepts.
pub fn pack<L: AsRef<[u8]>>(lines: &[L], packing: Packing) -> Vec<Packed> {
    let mut records = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < lines.len() && end - start < packing.max_events {
            let next = lines[end].as_ref().len() + 1;
            if end > start && bytes + next > packing.max_bytes {
                break;
            }
            bytes += next;
            end += 1;
        }
        // Sized exactly: the records are most of an invocation's memory.
        let mut data = Vec::with_capacity(bytes);
        for line in &lines[start..end] {
            data.extend_from_slice(line.as_ref());
            data.push(b'\n');
        }
        records.push(Packed {
            data,
            items: start..end,
        });
        start = end;
    }
    records
}

/// Packs lines one at a time, as they are made, so that they exist only in
/// their records; the records it makes are the ones [`pack`] would.
#[derive(Debug)]
pub struct Packer {
    packing: Packing,
    records: Vec<Packed>,
    lines: usize,
}

impl Packer {
    pub fn new(packing: Packing) -> Self {
        Packer {
            packing,
            records: Vec::new(),
            lines: 0,
        }
    }

    /// Adds the next line (newline not included).
    pub fn push(&mut self, line: &[u8]) {
        let next = line.len() + 1;
        let start_new = match self.records.last() {
            None => true,
            Some(open) => {
                open.items.len() >= self.packing.max_events || open.data.len() + next > self.packing.max_bytes
            }
        };
        if start_new {
            if let Some(closed) = self.records.last_mut() {
                closed.data.shrink_to_fit();
            }
            self.records.push(Packed {
                data: Vec::with_capacity(next),
                items: self.lines..self.lines,
            });
        }
        if let Some(open) = self.records.last_mut() {
            open.data.extend_from_slice(line);
            open.data.push(b'\n');
            open.items.end += 1;
        }
        self.lines += 1;
    }

    /// Bytes packed so far.
    pub fn bytes(&self) -> usize {
        self.records.iter().map(|r| r.data.len()).sum()
    }

    pub fn finish(mut self) -> Vec<Packed> {
        if let Some(last) = self.records.last_mut() {
            last.data.shrink_to_fit();
        }
        self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKED: Packing = Packing {
        max_bytes: MAX_RECORD_SIZE,
        max_events: 500,
    };

    fn lines(n: usize, len: usize) -> Vec<Vec<u8>> {
        (0..n).map(|_| vec![b'x'; len]).collect()
    }

    #[test]
    fn packs_lines_newline_terminated_in_order() {
        let records = pack(&["a", "bb", "c"], PACKED);
        assert_eq!(
            records,
            vec![Packed {
                data: b"a\nbb\nc\n".to_vec(),
                items: 0..3
            }]
        );
    }

    #[test]
    fn fills_a_record_to_exactly_max_bytes() {
        // 2,559 bytes + newline = 2,560; 400 of them are exactly 1,024,000.
        let records = pack(&lines(800, 2559), PACKED);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].data.len(), MAX_RECORD_SIZE);
        assert_eq!(records[0].items, 0..400);
        assert_eq!(records[1].items, 400..800);
    }

    #[test]
    fn one_byte_over_starts_a_new_record() {
        let mut input = lines(400, 2559);
        input[399].push(b'x');
        let records = pack(&input, PACKED);
        assert_eq!(records[0].items, 0..399);
        assert_eq!(records[1].items, 399..400);
    }

    #[test]
    fn stops_at_max_events() {
        let records = pack(&lines(1001, 10), PACKED);
        let sizes: Vec<_> = records.iter().map(|r| r.items.len()).collect();
        assert_eq!(sizes, vec![500, 500, 1]);
    }

    #[test]
    fn a_line_at_the_record_limit_travels_alone() {
        let input = vec![vec![b'a'; 5], vec![b'b'; MAX_RECORD_SIZE - 1], vec![b'c'; 5]];
        let records = pack(&input, PACKED);
        let items: Vec<_> = records.iter().map(|r| r.items.clone()).collect();
        assert_eq!(items, vec![0..1, 1..2, 2..3]);
        assert_eq!(records[1].data.len(), MAX_RECORD_SIZE);
    }

    #[test]
    fn a_line_longer_than_a_small_target_still_gets_a_record() {
        let records = pack(
            &lines(2, 100),
            Packing {
                max_bytes: 50,
                max_events: 500,
            },
        );
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].data.len(), 101);
    }

    #[test]
    fn unpacked_sends_one_line_per_record() {
        let records = pack(&["a", "b"], Packing::UNPACKED);
        assert_eq!(
            records.iter().map(|r| &r.data[..]).collect::<Vec<_>>(),
            vec![&b"a\n"[..], b"b\n"]
        );
    }

    #[test]
    fn the_packer_makes_the_records_pack_makes() {
        let mut input = lines(700, 2559);
        input[10].push(b'y');
        input.push(vec![b'z'; MAX_RECORD_SIZE - 1]);
        input.extend(lines(3, 7));
        for packing in [
            PACKED,
            Packing::UNPACKED,
            Packing {
                max_bytes: 5_000,
                max_events: 3,
            },
        ] {
            let mut packer = Packer::new(packing);
            for line in &input {
                packer.push(line);
            }
            assert_eq!(packer.finish(), pack(&input, packing), "{packing:?}");
        }
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert!(pack::<&str>(&[], PACKED).is_empty());
    }
}
