//! Packing event lines into gzip members (`COMPRESSION=gzip`).
//!
//! Each Firehose record is one complete gzip member holding whole
//! newline-terminated events. Firehose concatenates the records it receives
//! into each S3 object, and a series of gzip members is a gzip file (RFC
//! 1952, 2.2: "A gzip file consists of a series of members"), which `zcat`,
//! Python's `gzip`, Java's `GZIPInputStream` (so Athena, Glue and Spark) read
//! as one stream. Firehose bills and throttles on the bytes it receives: the
//! compressed ones.
//!
//! A record holds as many events as fit in [`MAX_RECORD_SIZE`] once
//! compressed: all of an invocation's events when they fit, else the lines
//! are cut into as many groups as the first attempt's ratio says are
//! needed, and each is compressed again. An event that alone stays above
//! the limit once compressed is given back, to be rejected as too large.
//!
//! The compressor is `flate2` on `zlib-rs` (a pure-Rust port of zlib-ng) at
//! level [`LEVEL`]: chosen by measurement (docs/compression.md).

use std::borrow::Cow;
use std::io::{Read, Write};
use std::ops::Range;

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use thiserror::Error;

use crate::limits::MAX_RECORD_SIZE;
use crate::pack::Packed;

/// zlib-rs level 4: the most compression within the time the bridge may
/// spend on it (gzip at most 1.5 times the uncompressed invocation, 500 x
/// 1 KB through the SDK): 1.41 times, against 1.61 at level 5 and 1.78 at
/// 6, while sending 5% fewer bytes than level 3 on realistic events
/// (docs/compression.md).
pub const LEVEL: u32 = 4;

/// What packing lines into gzip members gives.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Compressed {
    /// The records, each a gzip member of `items` (indexes into the lines).
    pub records: Vec<Packed>,
    /// Lines that alone stay above the limit once compressed, with their
    /// compressed size.
    pub too_large: Vec<(usize, usize)>,
}

/// Packs `lines`, each newline-terminated, into gzip members of at most
/// `max_bytes` (at most [`MAX_RECORD_SIZE`]).
pub fn pack<L: AsRef<[u8]>>(lines: &[L], max_bytes: usize) -> Compressed {
    let max_bytes = max_bytes.min(MAX_RECORD_SIZE);
    let mut out = Compressed::default();
    // Groups to compress, the next one last: records keep the lines' order.
    let mut pending: Vec<Range<usize>> = Vec::new();
    if !lines.is_empty() {
        pending.push(0..lines.len());
    }
    while let Some(group) = pending.pop() {
        let member = gzip(&lines[group.clone()]);
        if member.len() <= max_bytes {
            out.records.push(Packed {
                data: member,
                items: group,
            });
            continue;
        }
        if group.len() == 1 {
            out.too_large.push((group.start, member.len()));
            continue;
        }
        // Cut into as many groups as the ratio says, with a tenth to spare,
        // by bytes of raw lines.
        let parts = (member.len() * 11 / 10).div_ceil(max_bytes).clamp(2, group.len());
        let raw: usize = lines[group.clone()].iter().map(|l| l.as_ref().len() + 1).sum();
        let target = raw.div_ceil(parts);
        let mut cut = Vec::new();
        let (mut start, mut size) = (group.start, 0);
        for i in group.clone() {
            let len = lines[i].as_ref().len() + 1;
            if i > start && size + len > target {
                cut.push(start..i);
                (start, size) = (i, 0);
            }
            size += len;
        }
        cut.push(start..group.end);
        pending.extend(cut.into_iter().rev());
    }
    out
}

/// One gzip member of `lines`, each followed by a newline.
pub fn gzip<L: AsRef<[u8]>>(lines: &[L]) -> Vec<u8> {
    let raw: usize = lines.iter().map(|l| l.as_ref().len() + 1).sum();
    let mut encoder = GzEncoder::new(Vec::with_capacity(raw / 4 + 64), Compression::new(LEVEL));
    for line in lines {
        // Writing to a Vec cannot fail.
        let _ = encoder.write_all(line.as_ref());
        let _ = encoder.write_all(b"\n");
    }
    encoder.finish().unwrap_or_default()
}

/// Whether `data` starts as a gzip member does (RFC 1952: ID1 ID2).
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1F, 0x8B])
}

/// Why [`open`] could not open an object or record.
#[derive(Debug, Error)]
pub enum OpenError {
    #[error("not a whole gzip stream: {0}")]
    Gzip(#[from] std::io::Error),
    #[error("opens to more than {0} bytes")]
    TooLarge(u64),
}

/// `data` as it is, or, when it is gzip, its members opened (a series of
/// members, as Firehose concatenates the records the bridge gzipped), up
/// to `max` bytes.
pub fn open(data: &[u8], max: u64) -> Result<Cow<'_, [u8]>, OpenError> {
    if !is_gzip(data) {
        return Ok(Cow::Borrowed(data));
    }
    let mut out = Vec::new();
    MultiGzDecoder::new(data)
        .take(max.saturating_add(1))
        .read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(OpenError::TooLarge(max));
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    fn lines(n: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut state = seed | 1;
        (0..n)
            .map(|_| {
                (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        b'a' + (state % 26) as u8
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn compressible_lines_make_one_member_that_decompresses_to_them() {
        let input: Vec<&str> = vec![r#"{"a":1}"#; 1_000];
        let packed = pack(&input, MAX_RECORD_SIZE);
        assert_eq!(packed.records.len(), 1);
        assert!(packed.too_large.is_empty());
        assert_eq!(packed.records[0].items, 0..1_000);
        assert_eq!(
            gunzip(&packed.records[0].data),
            "{\"a\":1}\n".repeat(1_000).into_bytes()
        );
    }

    #[test]
    fn incompressible_lines_are_cut_into_members_within_the_limit_in_order() {
        // 3 MB of random letters compress to about 60% (5 bits of 8).
        let input = lines(3_000, 1_000, 7);
        let packed = pack(&input, MAX_RECORD_SIZE);
        assert!(packed.records.len() >= 2);
        let mut next = 0;
        let mut joined = Vec::new();
        for record in &packed.records {
            assert!(record.data.len() <= MAX_RECORD_SIZE, "{}", record.data.len());
            assert!(is_gzip(&record.data));
            assert_eq!(record.items.start, next, "records keep the lines' order");
            next = record.items.end;
            joined.extend(&record.data);
        }
        assert_eq!(next, input.len());
        let expected: Vec<u8> = input.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
        assert_eq!(
            gunzip(&joined),
            expected,
            "the members concatenated are one gzip stream"
        );
    }

    #[test]
    fn a_line_that_stays_too_large_once_compressed_is_given_back() {
        // High entropy: every byte value, from a generator.
        let mut state = 99u64;
        let noise: Vec<u8> = (0..1_000_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let input = vec![b"small".to_vec(), noise, b"after".to_vec()];
        let packed = pack(&input, 900_000);
        assert_eq!(packed.too_large.len(), 1);
        assert_eq!(packed.too_large[0].0, 1);
        assert!(packed.too_large[0].1 > 900_000);
        let items: Vec<_> = packed.records.iter().map(|r| r.items.clone()).collect();
        assert_eq!(items, vec![0..1, 2..3]);
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert_eq!(pack::<&[u8]>(&[], MAX_RECORD_SIZE), Compressed::default());
    }
}
