//! The bridge's structured log lines, found in whatever holds them: the
//! function's own output (one JSON object per line, maybe behind a text
//! prefix such as Lambda's `timestamp requestId LEVEL`), or the output of
//! `aws logs filter-log-events` (JSON, where each event's `message` is the
//! line, or `--output text`).

use kinesis_firehose_bridge::dead_letter::{self, DeadLetter};
use kinesis_firehose_bridge::reject::{self, RejectLine};
use serde_json::Value;

/// Every JSON object the text carries, unwrapping CloudWatch Logs events.
pub fn objects(text: &str) -> Vec<Value> {
    let mut found = Vec::new();
    // The whole text as JSON documents: `filter-log-events` output, pretty
    // or not, one page after another.
    let documents: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(text).into_iter::<Value>().collect();
    if let Ok(documents) = documents
        && !documents.is_empty()
        && documents.iter().all(Value::is_object)
    {
        for document in documents {
            unwrap_into(document, &mut found);
        }
        return found;
    }
    for line in text.lines() {
        let Some(start) = line.find('{') else { continue };
        if let Some(Ok(value)) = serde_json::Deserializer::from_str(&line[start..])
            .into_iter::<Value>()
            .next()
        {
            unwrap_into(value, &mut found);
        }
    }
    found
}

fn unwrap_into(value: Value, found: &mut Vec<Value>) {
    if let Some(events) = value.get("events").and_then(Value::as_array) {
        for event in events {
            match event.get("message") {
                Some(Value::String(message)) => found.extend(objects(message)),
                Some(message @ Value::Object(_)) => unwrap_into(message.clone(), found),
                _ => {}
            }
        }
        return;
    }
    if value.get("kind").is_none()
        && let Some(message @ Value::Object(_)) = value.get("message")
    {
        unwrap_into(message.clone(), found);
        return;
    }
    if value.is_object() {
        found.push(value);
    }
}

fn of_kind(objects: &[Value], kind: &str) -> Vec<Value> {
    objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some(kind))
        .cloned()
        .collect()
}

/// The dead letters among `objects`, exact duplicates (the same line read
/// twice) dropped; and how many `dead_letter` lines could not be read.
pub fn dead_letters(objects: &[Value]) -> (Vec<DeadLetter>, usize) {
    let mut letters: Vec<DeadLetter> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut unreadable = 0;
    for value in of_kind(objects, dead_letter::KIND) {
        match serde_json::from_value::<DeadLetter>(value) {
            Ok(letter) => {
                let key = (
                    letter.data.clone(),
                    letter.sequence_numbers.clone(),
                    format!("{:?}", letter.part),
                );
                if seen.insert(key) {
                    letters.push(letter);
                }
            }
            Err(_) => unreadable += 1,
        }
    }
    (letters, unreadable)
}

/// The rejection lines among `objects`.
pub fn rejections(objects: &[Value]) -> Vec<RejectLine> {
    of_kind(objects, reject::KIND)
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"timestamp":"2026-11-25T12:00:00Z","level":"ERROR","message":"record could not be delivered; replay it from this line","kind":"dead_letter","delivery_stream":"s0","error_code":"ServiceUnavailableException","error_message":"Slow down.","sequence_numbers":["1"],"data":"eyJhIjoxfQo="}"#;

    #[test]
    fn reads_the_bridges_own_lines_and_skips_the_rest() {
        let text = format!("INFO starting\n{LINE}\n{LINE}\n{{\"kind\":\"summary\"}}\n");
        let (letters, unreadable) = dead_letters(&objects(&text));
        assert_eq!(letters.len(), 1, "the same line twice is one dead letter");
        assert_eq!(unreadable, 0);
        assert_eq!(letters[0].bytes().unwrap(), b"{\"a\":1}\n");
    }

    #[test]
    fn reads_filter_log_events_output_pretty_or_text() {
        let document = serde_json::json!({
            "events": [{"logStreamName": "x", "timestamp": 1, "message": LINE}],
            "searchedLogStreams": []
        });
        let pretty = serde_json::to_string_pretty(&document).unwrap();
        assert_eq!(dead_letters(&objects(&pretty)).0.len(), 1);
        let text = format!("EVENTS\tid\t1\tstream\t{LINE}\t1\n");
        assert_eq!(dead_letters(&objects(&text)).0.len(), 1);
    }

    #[test]
    fn reads_lines_behind_a_text_prefix() {
        let text = format!("2026-11-25T12:00:00Z 1234-abcd ERROR {LINE}\n");
        assert_eq!(dead_letters(&objects(&text)).0.len(), 1);
    }
}
