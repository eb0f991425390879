//! An event through the default contract, and `event::compact` on anything.
//! Holds: compaction never panics and is idempotent; a valid event's line
//! is one line and the same JSON document as the event.
#![no_main]

use kinesis_firehose_bridge::event::{self, Contract};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let once = event::compact(data).into_owned();
    assert_eq!(event::compact(&once).into_owned(), once, "compaction is idempotent");

    if let Ok(line) = Contract::Default.check(data) {
        assert!(!line.contains(&b'\n'));
        let event: serde_json::Value = serde_json::from_slice(data).expect("a valid event is JSON");
        let written: serde_json::Value = serde_json::from_slice(&line).expect("its line is JSON");
        assert_eq!(event, written, "compaction keeps the document");
    }
});
