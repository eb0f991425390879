//! Splitting one stream's records into `PutRecordBatch` requests.

use crate::limits::{
    MAX_RECORDS_PER_REQUEST, MAX_REQUEST_SIZE, REQUEST_BYTES_FIXED, REQUEST_BYTES_PER_RECORD, base64_len,
};

/// Bytes a request spends on one record of `len` bytes, as sent (base64
/// and the entry's JSON).
pub fn wire_size(len: usize) -> usize {
    base64_len(len) + REQUEST_BYTES_PER_RECORD
}

/// Groups records (given by their byte lengths, in order) into requests of
/// at most [`MAX_RECORDS_PER_REQUEST`] records and [`MAX_REQUEST_SIZE`]
/// bytes as sent (`stream`'s name counts in each request). Returns, for
/// each request, the range of its records' positions in `lengths`. Every record is within the Firehose record limit, so each
/// fits in a request of its own.
pub fn split(stream: &str, lengths: &[usize]) -> Vec<std::ops::Range<usize>> {
    let fixed = REQUEST_BYTES_FIXED + stream.len();
    let mut requests = Vec::new();
    let mut start = 0;
    let mut size = fixed;
    for (i, &len) in lengths.iter().enumerate() {
        let next = wire_size(len);
        if i > start && (i - start == MAX_RECORDS_PER_REQUEST || size + next > MAX_REQUEST_SIZE) {
            requests.push(start..i);
            start = i;
            size = fixed;
        }
        size += next;
    }
    if start < lengths.len() {
        requests.push(start..lengths.len());
    }
    requests
}

/// The size of a request as sent, for checks and tests.
pub fn request_size(stream: &str, lengths: &[usize]) -> usize {
    REQUEST_BYTES_FIXED + stream.len() + lengths.iter().map(|&l| wire_size(l)).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_RECORD_SIZE;

    #[test]
    fn five_hundred_records_make_one_request_and_one_more_makes_two() {
        assert_eq!(split("s", &[10; 500]), vec![0..500]);
        assert_eq!(split("s", &[10; 501]), vec![0..500, 500..501]);
    }

    #[test]
    fn three_maximum_records_fit_in_four_mib_as_sent_and_four_do_not() {
        let requests = split("stream", &[MAX_RECORD_SIZE; 4]);
        assert_eq!(requests, vec![0..3, 3..4]);
        assert!(request_size("stream", &[MAX_RECORD_SIZE; 3]) <= MAX_REQUEST_SIZE);
        assert!(request_size("stream", &[MAX_RECORD_SIZE; 4]) > MAX_REQUEST_SIZE);
    }

    #[test]
    fn counts_base64_not_raw_bytes() {
        // 3.2 MB raw fits 4 MiB; base64 (4.27 MB) does not.
        let lengths = [800_000; 4];
        let requests = split("s", &lengths);
        assert!(requests.len() > 1);
        for r in &requests {
            assert!(request_size("s", &lengths[r.clone()]) <= MAX_REQUEST_SIZE);
        }
    }

    #[test]
    fn no_records_no_requests() {
        assert!(split("s", &[]).is_empty());
    }
}
