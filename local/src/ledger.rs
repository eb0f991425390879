//! Every event the load generator got into Kinesis, with its send time.
//!
//! The verifier accounts for each entry; the progress line reads the
//! counters. An event is entered once Kinesis accepted the record carrying
//! it, stamped with the time it was first sent.

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub id: String,
    /// When the event was first sent, in ms since the epoch.
    pub at_ms: u64,
    /// Whether it meets the bridge's default contract.
    pub valid: bool,
}

#[derive(Debug, Default)]
pub struct Ledger {
    events: Mutex<Vec<Sent>>,
    events_sent: AtomicU64,
    records_sent: AtomicU64,
}

impl Ledger {
    /// Enters `events`, carried by `records` Kinesis records.
    pub fn enter(&self, events: Vec<Sent>, records: u64) {
        self.events_sent.fetch_add(events.len() as u64, Ordering::Relaxed);
        self.records_sent.fetch_add(records, Ordering::Relaxed);
        if let Ok(mut all) = self.events.lock() {
            all.extend(events);
        }
    }

    pub fn events_sent(&self) -> u64 {
        self.events_sent.load(Ordering::Relaxed)
    }

    /// Kinesis records accepted (a KPL aggregate is one record).
    pub fn records_sent(&self) -> u64 {
        self.records_sent.load(Ordering::Relaxed)
    }

    pub fn events(&self) -> Vec<Sent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Writes `id<TAB>sent_ms<TAB>valid` lines.
    pub fn write_tsv(&self, path: &Path) -> Result<()> {
        let mut out = BufWriter::new(std::fs::File::create(path)?);
        for e in self.events() {
            writeln!(out, "{}\t{}\t{}", e.id, e.at_ms, u8::from(e.valid))?;
        }
        out.flush()?;
        Ok(())
    }
}

/// Reads what [`Ledger::write_tsv`] wrote.
pub fn read_tsv(path: &Path) -> Result<Vec<Sent>> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut events = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        let mut fields = line.split('\t');
        let parsed = (|| {
            let id = fields.next()?.to_owned();
            let at_ms = fields.next()?.parse().ok()?;
            let valid = fields.next()? == "1";
            Some(Sent { id, at_ms, valid })
        })();
        events.push(parsed.ok_or_else(|| format!("{}:{}: not `id<TAB>ms<TAB>0|1`", path.display(), n + 1))?);
    }
    Ok(events)
}
