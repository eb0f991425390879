//! The bridge's structured lines, found in whatever holds them: the
//! function's own output (one JSON object per line, maybe behind a text
//! prefix such as Lambda's `timestamp requestId LEVEL`), an S3 object of
//! undelivered records (the same lines), or the output of `aws logs
//! filter-log-events` (JSON, where each event's `message` is the line, or
//! `--output text`).
//!
//! Nothing is skipped silently: a line that names a kind the bridge writes
//! (`dead_letter`, `rejected`, `stored`) but cannot be read, because it was
//! cut or edited, is reported with its number.

use std::collections::HashSet;

use kinesis_firehose_bridge::dead_letter::{self, DeadLetter};
use kinesis_firehose_bridge::reject::{self, RejectLine};
use kinesis_firehose_bridge::undelivered::{STORED_KIND, Stored};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A line's content and when it was written, if it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed<T> {
    pub value: T,
    /// The line's `timestamp`, in ms since the epoch.
    pub at_ms: Option<u64>,
}

/// A line that should have been one of the bridge's and could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Where: `file:line`, or `file:event N` in `filter-log-events` output.
    pub place: String,
    pub reason: String,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.reason)
    }
}

/// What the bridge's lines in one or more texts hold.
#[derive(Debug, Clone, Default)]
pub struct Logged {
    pub dead_letters: Vec<Timed<DeadLetter>>,
    pub rejections: Vec<Timed<RejectLine>>,
    /// Lines naming the S3 objects undelivered records were written to.
    pub stored: Vec<Stored>,
    pub unreadable: Vec<Unreadable>,
}

impl Logged {
    /// Reads `text`, naming its lines after `source` (a file name).
    pub fn read(text: &str, source: &str) -> Self {
        let mut logged = Logged::default();
        logged.add(text, source);
        logged
    }

    /// Adds what `text` holds; the same dead letter read twice counts once.
    pub fn add(&mut self, text: &str, source: &str) {
        let mut seen: HashSet<(String, Vec<String>, String)> =
            self.dead_letters.iter().map(|l| key(&l.value)).collect();
        for (place, found) in objects(text, source) {
            let value = match found {
                Ok(value) => value,
                Err(reason) => {
                    self.unreadable.push(Unreadable { place, reason });
                    continue;
                }
            };
            let at_ms = value.get("timestamp").and_then(Value::as_str).and_then(epoch_ms);
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
            let unreadable = |e: serde_json::Error| Unreadable {
                place: place.clone(),
                reason: format!("a `{kind}` line that does not read as one: {e}"),
            };
            match kind.as_str() {
                dead_letter::KIND => match serde_json::from_value::<DeadLetter>(value) {
                    Ok(letter) => {
                        if seen.insert(key(&letter)) {
                            self.dead_letters.push(Timed { value: letter, at_ms });
                        }
                    }
                    Err(e) => self.unreadable.push(unreadable(e)),
                },
                reject::KIND => match serde_json::from_value::<RejectLine>(value) {
                    Ok(line) => self.rejections.push(Timed { value: line, at_ms }),
                    Err(e) => self.unreadable.push(unreadable(e)),
                },
                STORED_KIND => match serde_json::from_value::<Stored>(value) {
                    Ok(stored) => self.stored.push(stored),
                    Err(e) => self.unreadable.push(unreadable(e)),
                },
                _ => {}
            }
        }
    }

    pub fn letters(&self) -> Vec<DeadLetter> {
        self.dead_letters.iter().map(|l| l.value.clone()).collect()
    }

    pub fn reject_lines(&self) -> Vec<RejectLine> {
        self.rejections.iter().map(|l| l.value.clone()).collect()
    }
}

fn key(letter: &DeadLetter) -> (String, Vec<String>, String) {
    (
        letter.data.clone(),
        letter.sequence_numbers.clone(),
        format!("{:?}", letter.part),
    )
}

/// The bridge's kinds, as they appear in a line that may be cut.
const KINDS: [&str; 3] = [dead_letter::KIND, reject::KIND, STORED_KIND];

fn names_a_kind(text: &str) -> bool {
    KINDS.iter().any(|kind| text.contains(&format!("\"kind\":\"{kind}\"")))
}

/// Every JSON object `text` carries, with its place, unwrapping CloudWatch
/// Logs events; or, for a line that names one of the bridge's kinds but is
/// not JSON, why.
fn objects(text: &str, source: &str) -> Vec<(String, Result<Value, String>)> {
    let mut found = Vec::new();
    // The whole text as JSON documents: `filter-log-events` output, pretty
    // or not, one page after another.
    let documents: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(text).into_iter::<Value>().collect();
    if let Ok(documents) = documents
        && !documents.is_empty()
        && documents.iter().all(Value::is_object)
    {
        let mut event = 0;
        for document in documents {
            unwrap_into(document, source, &mut event, &mut found);
        }
        return found;
    }
    for (number, line) in text.lines().enumerate() {
        let place = format!("{source}:{}", number + 1);
        let Some(start) = line.find('{') else { continue };
        match serde_json::Deserializer::from_str(&line[start..])
            .into_iter::<Value>()
            .next()
        {
            Some(Ok(value)) => {
                let mut event = 0;
                let mut inner = Vec::new();
                unwrap_into(value, &place, &mut event, &mut inner);
                found.extend(inner.into_iter().map(|(_, v)| (place.clone(), v)));
            }
            _ if names_a_kind(line) => found.push((place, Err("the line is not whole JSON (cut short?)".to_owned()))),
            _ => {}
        }
    }
    found
}

fn unwrap_into(value: Value, source: &str, event: &mut usize, found: &mut Vec<(String, Result<Value, String>)>) {
    if let Some(events) = value.get("events").and_then(Value::as_array) {
        for e in events {
            *event += 1;
            let place = format!("{source}: event {event}");
            match e.get("message") {
                Some(Value::String(message)) => {
                    let message = message.trim_end();
                    match serde_json::from_str::<Value>(
                        message.get(message.find('{').unwrap_or(0)..).unwrap_or_default(),
                    ) {
                        Ok(inner) => found.push((place, Ok(inner))),
                        Err(_) if names_a_kind(message) => {
                            found.push((place, Err("the message is not whole JSON (cut short?)".to_owned())))
                        }
                        Err(_) => {}
                    }
                }
                Some(message @ Value::Object(_)) => found.push((place, Ok(message.clone()))),
                _ => {}
            }
        }
        return;
    }
    if value.get("kind").is_none()
        && let Some(message @ Value::Object(_)) = value.get("message")
    {
        found.push((source.to_owned(), Ok(message.clone())));
        return;
    }
    if value.is_object() {
        found.push((source.to_owned(), Ok(value)));
    }
}

fn epoch_ms(text: &str) -> Option<u64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"timestamp":"2026-11-25T12:00:00Z","level":"ERROR","message":"record could not be delivered; replay it from this line","kind":"dead_letter","delivery_stream":"s0","error_code":"ServiceUnavailableException","error_message":"Slow down.","sequence_numbers":["1"],"data":"eyJhIjoxfQo="}"#;

    #[test]
    fn reads_the_bridges_own_lines_and_skips_the_rest() {
        let text = format!("INFO starting\n{LINE}\n{LINE}\n{{\"kind\":\"summary\"}}\n");
        let logged = Logged::read(&text, "f.log");
        assert_eq!(logged.dead_letters.len(), 1, "the same line twice is one dead letter");
        assert!(logged.unreadable.is_empty());
        assert_eq!(logged.dead_letters[0].value.bytes().unwrap(), b"{\"a\":1}\n");
        assert_eq!(logged.dead_letters[0].at_ms, Some(1_795_608_000_000));
    }

    #[test]
    fn reads_filter_log_events_output_pretty_or_text() {
        let document = serde_json::json!({
            "events": [{"logStreamName": "x", "timestamp": 1, "message": LINE}],
            "searchedLogStreams": []
        });
        let pretty = serde_json::to_string_pretty(&document).unwrap();
        assert_eq!(Logged::read(&pretty, "out.json").dead_letters.len(), 1);
        let text = format!("EVENTS\tid\t1\tstream\t{LINE}\t1\n");
        assert_eq!(Logged::read(&text, "out.txt").dead_letters.len(), 1);
    }

    #[test]
    fn reads_lines_behind_a_text_prefix() {
        let text = format!("2026-11-25T12:00:00Z 1234-abcd ERROR {LINE}\n");
        assert_eq!(Logged::read(&text, "f").dead_letters.len(), 1);
    }

    #[test]
    fn a_cut_or_edited_line_of_the_bridge_is_named_with_its_number() {
        let cut = &LINE[..LINE.len() - 40];
        let edited = LINE.replace("\"sequence_numbers\":[\"1\"]", "\"sequence_numbers\":7");
        let text = format!("start\n{LINE}\n{cut}\n{edited}\n");
        let logged = Logged::read(&text, "function.log");
        let places: Vec<&str> = logged.unreadable.iter().map(|u| u.place.as_str()).collect();
        assert_eq!(places, ["function.log:3", "function.log:4"]);
        assert_eq!(logged.dead_letters.len(), 1);
    }
}
