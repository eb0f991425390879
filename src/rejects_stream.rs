//! Rejected records to the rejects stream: their lines written straight
//! into Firehose records and sent a few megabytes at a time, so that a batch
//! of many small rejects (a hostile KPL aggregate) never holds all of its
//! lines at once. What no stream takes comes back as lines to keep in S3.

use std::collections::BTreeMap;

use crate::batch::SourceRecord;
use crate::delivery::{self, Fate, Policy};
use crate::firehose::Firehose;
use crate::limits::REJECTS_CHUNK;
use crate::log::Lines;
use crate::pack::{Packer, Packing};
use crate::reason::Reason;
use crate::record::{self, Incoming};
use crate::reject;
use crate::route::Rotation;
use crate::undelivered::REJECTED_MESSAGE;

/// A rejected event and why.
pub(crate) struct Rejected<'a> {
    pub(crate) incoming: Incoming<'a>,
    pub(crate) reason: Reason,
}

/// Sends rejected records to the rejects stream, if there is one, and
/// returns the lines of those no stream took: their only copy.
pub(crate) async fn send<F: Firehose, R: SourceRecord>(
    firehose: &F,
    stream: Option<&String>,
    records: &[R],
    rejected: &[&Rejected<'_>],
    packing: Packing,
    policy: Policy,
) -> Unsent {
    let Some(stream) = stream else {
        return Unsent::of(records, rejected.iter().copied(), 0);
    };
    if rejected.is_empty() {
        return Unsent::default();
    }
    let mut failed = vec![false; rejected.len()];
    let mut calls = 0;
    let mut packer = Packer::new(packing);
    let mut owner = Vec::new(); // line of this chunk -> index in `rejected`
    let mut scratch = Vec::new();
    for (i, r) in rejected.iter().enumerate() {
        for line in reject_lines(records, r) {
            scratch.clear();
            // A struct of strings and numbers always serialises.
            if serde_json::to_writer(&mut scratch, &line).is_ok() {
                packer.push(&scratch);
                owner.push(i);
            }
        }
        if packer.bytes() < REJECTS_CHUNK && i + 1 < rejected.len() {
            continue;
        }
        let packed = std::mem::replace(&mut packer, Packer::new(packing)).finish();
        let data: Vec<&[u8]> = packed.iter().map(|p| &p.data[..]).collect();
        let one_stream = std::slice::from_ref(stream);
        let delivery = delivery::deliver(firehose, one_stream, Rotation::new(1, 0), policy, &data).await;
        calls += delivery.calls;
        for (record, fate) in packed.iter().zip(&delivery.fates) {
            if !matches!(fate, Fate::Delivered { .. }) {
                for &i in &owner[record.items.clone()] {
                    failed[i] = true;
                }
            }
        }
        owner.clear();
    }
    let unsent = rejected.iter().zip(&failed).filter(|(_, f)| **f).map(|(r, _)| *r);
    Unsent::of(records, unsent, calls)
}

/// The lines a rejected event is kept in.
fn reject_lines<R: SourceRecord>(records: &[R], r: &Rejected<'_>) -> Vec<reject::RejectLine> {
    let record = &records[r.incoming.origin.record];
    let source = reject::Source {
        sequence_number: record.sequence_number(),
        sub_sequence_number: r.incoming.origin.sub_sequence_number,
        partition_key: r.incoming.partition_key,
        approximate_arrival_timestamp: record.approximate_arrival_timestamp(),
    };
    reject::lines(source, &r.reason, r.incoming.data)
}

/// Rejections no rejects stream took.
#[derive(Default)]
pub(crate) struct Unsent {
    pub(crate) lines: Lines,
    pub(crate) events: usize,
    pub(crate) by_reason: BTreeMap<&'static str, usize>,
    /// The lowest record among them.
    pub(crate) from: Option<usize>,
    /// `PutRecordBatch` calls made trying.
    pub(crate) calls: u32,
}

impl Unsent {
    fn of<'a, 'b: 'a, R: SourceRecord>(
        records: &[R],
        rejected: impl Iterator<Item = &'a Rejected<'b>>,
        calls: u32,
    ) -> Self {
        let mut unsent = Unsent {
            calls,
            ..Unsent::default()
        };
        for r in rejected {
            for line in reject_lines(records, r) {
                unsent.lines.push("WARN", REJECTED_MESSAGE, &reject::log_body(&line));
            }
            unsent.events += 1;
            *unsent.by_reason.entry(r.reason.code()).or_default() += 1;
            unsent.from = record::lowest_of(records, unsent.from, Some(r.incoming.origin.record));
        }
        unsent
    }
}
