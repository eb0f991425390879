//! The lake check of `make demo`: objects as moto writes them, laid out as
//! the template's Glue tables' partitions and read back by DuckDB
//! (`.venv/duckdb`, `make duckdb`) the way the tables describe them.

use std::io::Write;

use bridge_local::bucket::Object;
use bridge_local::lake::Lake;
use flate2::Compression;
use flate2::write::GzEncoder;
use kinesis_firehose_bridge::reason::Reason;
use kinesis_firehose_bridge::reject::{self, Source};

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

fn object(key: &str, body: Vec<u8>) -> Object {
    Object {
        key: key.to_owned(),
        etag: String::new(),
        last_modified_ms: 0,
        body,
    }
}

fn event(ty: &str, n: usize) -> String {
    format!(
        r#"{{"event_id":"e-{n}","event_type":"{ty}","timestamp":"2026-01-02T03:04:05Z","properties":{{"a":[1,2]}}}}"#
    )
}

#[test]
fn duckdb_reads_the_laid_out_objects_as_the_tables_describe_them() {
    let lake = Lake::from_repo().expect("the template's lake");
    // Two objects of gzip members in one hour, as the bridge sends them
    // with COMPRESSION=gzip, a plain one in the next hour, and a rejects
    // object holding a line the library writes.
    let first = [
        gzip(&format!("{}\n{}\n", event("click", 1), event("view", 2))),
        gzip(&format!("{}\n", event("click", 3))),
    ]
    .concat();
    let second = format!("{}\n{}\n", event("click", 4), event("buy", 5)).into_bytes();
    let source = Source {
        sequence_number: "4965",
        sub_sequence_number: None,
        partition_key: "k",
        approximate_arrival_timestamp: 1_764_072_000.5,
    };
    let rejects: String = reject::lines(source, &Reason::MissingTimestamp, br#"{"event_type":"x"}"#)
        .iter()
        .map(|l| serde_json::to_string(l).unwrap() + "\n")
        .collect();
    // Today (UTC): the ready query looks at today and yesterday.
    let today = time::OffsetDateTime::now_utc().date();
    let (y, m, d) = (today.year(), today.month() as u8, today.day());
    let objects = [
        object(&format!("events/{y}/{m:02}/{d:02}/03/analytics-events-0-1-a"), first),
        object(&format!("events/{y}/{m:02}/{d:02}/04/analytics-events-1-1-b"), second),
        object(
            &format!("rejects/{y}/{m:02}/{d:02}/03/analytics-events-rejects-1-c"),
            rejects.into_bytes(),
        ),
        object("dead-letters/2026/x", b"not a table's".to_vec()),
    ];
    let dir = std::env::temp_dir().join(format!("bridge-local-lake-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let written = lake.lay_out(&objects.iter().collect::<Vec<_>>(), &dir).unwrap();
    assert_eq!(written, 3, "only what the tables are over");
    assert!(
        dir.join(format!(
            "events/year={y}/month={m:02}/day={d:02}/hour=03/analytics-events-0-1-a.gz"
        ))
        .is_file(),
        "gzip objects are named .gz"
    );
    assert!(
        dir.join(format!(
            "events/year={y}/month={m:02}/day={d:02}/hour=04/analytics-events-1-1-b"
        ))
        .is_file()
    );

    let read = lake.read(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.rows["events"], 5, "{read:?}");
    assert_eq!(read.rows["events_raw"], 5, "{read:?}");
    assert_eq!(read.rows["rejects"], 1, "{read:?}");
    assert_eq!(
        read.events_per_type,
        [("click".to_owned(), 3), ("buy".to_owned(), 1), ("view".to_owned(), 1)]
    );
    assert_eq!(read.hours, 2, "{read:?}");
    assert!(read.disagreements(&lake, "events/", 5).is_empty());
    let wrong = read.disagreements(&lake, "events/", 6);
    assert_eq!(wrong.len(), 3, "both tables and the query disagree with 6: {wrong:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
