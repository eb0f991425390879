//! The analytics event contract, and the one-line form a valid event takes.
//!
//! The default contract reads the event straight from its bytes: it looks at
//! the two fields it checks and skips the rest without building a
//! `serde_json::Value` tree. A JSON Schema (`EVENT_SCHEMA_FILE`) replaces it
//! when the team has one; that path needs the tree and pays for it.
//!
//! A schema is compiled once at cold start, as its author expects:
//! - its `$schema` decides the dialect; without one it is JSON Schema
//!   2020-12;
//! - `format` is asserted (`date-time`, `date`, `time`, `email`, `uuid`,
//!   `ipv4`, `ipv6`, `hostname`, `uri` and the rest the `jsonschema` crate
//!   knows), unless `EVENT_SCHEMA_FORMATS=annotate`; `date-time` is the very
//!   check the default contract makes of `timestamp`, so the two agree, and
//!   a format the validator does not know stops the function at init rather
//!   than checking nothing;
//! - `pattern` and `patternProperties` run on the `regex` engine, whose
//!   matching time is linear in the input: no event can make a pattern slow.
//!   A pattern it cannot run (look-around, back-references) stops the
//!   function at init, as does a `$ref` it cannot resolve (nothing is
//!   fetched over the network).

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, PatternOptions, ReferencingError};
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::limits::MAX_RECORD_SIZE;
use crate::reason::Reason;

#[derive(Debug, Error)]
pub enum ContractError {
    #[error("EVENT_SCHEMA_FILE {path}: cannot read it: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("EVENT_SCHEMA_FILE {path}: not JSON: {source}")]
    NotJson { path: String, source: serde_json::Error },
    #[error("EVENT_SCHEMA_FILE {path}: not a JSON Schema the function can use, at {pointer}: {message}")]
    InvalidSchema {
        path: String,
        /// Where in the schema, as a JSON pointer.
        pointer: String,
        message: String,
    },
}

/// Whether a schema's `format` keywords are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formats {
    /// A value that does not match its format is rejected (the default).
    Assert,
    /// Formats are annotations only, as JSON Schema 2020-12 has them unless
    /// told otherwise: for schemas written that way.
    Annotate,
}

/// Most bytes a compiled `pattern` may take (the `regex` crate's own
/// default is 10 MiB): a schema's patterns are compiled once, at cold start.
const PATTERN_SIZE_LIMIT: usize = 2 * 1024 * 1024;

/// Whether `text` is an RFC 3339 date-time, e.g. `2026-11-25T12:00:00Z`: the
/// default contract's check of `timestamp`, and a schema's `date-time`.
/// RFC 3339's grammar (section 5.6) separates date and time with `T` (or
/// `t`); the space its note lets applications use is not accepted, as JSON
/// Schema's `date-time` does not accept it either.
pub fn is_date_time(text: &str) -> bool {
    matches!(text.as_bytes().get(10), Some(b'T' | b't')) && OffsetDateTime::parse(text, &Rfc3339).is_ok()
}

/// The field the default contract requires to be a non-empty string.
pub const EVENT_TYPE: &str = "event_type";
/// The field the default contract requires to be an RFC 3339 date-time.
pub const TIMESTAMP: &str = "timestamp";
/// The fields the default contract checks, in the order it names them: the
/// columns every delivered event has (the lake's `events` table).
pub const CONTRACT_FIELDS: [&str; 2] = [EVENT_TYPE, TIMESTAMP];

/// What a valid analytics event must look like.
pub enum Contract {
    /// A JSON object with a non-empty string `event_type` and an RFC 3339
    /// `timestamp`; other fields are free.
    Default,
    /// A JSON Schema, compiled once at cold start.
    Schema(Box<jsonschema::Validator>),
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Contract::Default => "Contract::Default",
            Contract::Schema(_) => "Contract::Schema",
        })
    }
}

impl Contract {
    /// The default contract, or the JSON Schema at `schema_file`.
    pub fn load(schema_file: Option<&Path>, formats: Formats) -> Result<Self, ContractError> {
        let Some(path) = schema_file else {
            return Ok(Contract::Default);
        };
        let shown = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| ContractError::Read {
            path: shown.clone(),
            source,
        })?;
        let schema: serde_json::Value = serde_json::from_slice(&text).map_err(|source| ContractError::NotJson {
            path: shown.clone(),
            source,
        })?;
        Self::from_schema(&schema, formats).map_err(|(pointer, message)| ContractError::InvalidSchema {
            path: shown,
            pointer,
            message,
        })
    }

    /// Compiles `schema`; an error says where in it (a JSON pointer) and why.
    pub fn from_schema(schema: &serde_json::Value, formats: Formats) -> Result<Self, (String, String)> {
        let mut options = jsonschema::options()
            .should_validate_formats(formats == Formats::Assert)
            .should_ignore_unknown_formats(formats == Formats::Annotate)
            .with_format("date-time", is_date_time)
            .with_pattern_options(PatternOptions::regex().size_limit(PATTERN_SIZE_LIMIT));
        if schema.get("$schema").is_none() {
            options = options.with_draft(Draft::Draft202012);
        }
        options
            .build(schema)
            .map(|v| Contract::Schema(Box::new(v)))
            .map_err(|e| {
                let mut pointer = e.schema_path().to_string();
                if pointer.is_empty()
                    && let ValidationErrorKind::Referencing(ReferencingError::Unretrievable { uri, .. }) = e.kind()
                {
                    pointer = ref_pointer(schema, uri).unwrap_or_default();
                }
                let pointer = if pointer.is_empty() { "/".to_owned() } else { pointer };
                (pointer, e.to_string())
            })
    }

    /// Checks one event and returns the line it is written as: the bytes
    /// themselves when they are already one compact line, a compacted copy
    /// when they are pretty-printed. The newline is not included.
    pub fn check<'a>(&self, data: &'a [u8]) -> Result<Cow<'a, [u8]>, Reason> {
        // serde_json checks UTF-8 only in the strings it reads, not in the
        // ones it skips; simdutf8 checks all of it at memory speed.
        if let Err(e) = simdutf8::compat::from_utf8(data) {
            return Err(Reason::NotUtf8(e.valid_up_to()));
        }
        match self {
            Contract::Default => check_default(data)?,
            Contract::Schema(validator) => {
                let value: serde_json::Value =
                    serde_json::from_slice(data).map_err(|e| Reason::NotJson(e.to_string()))?;
                if !value.is_object() {
                    return Err(Reason::NotAnObject);
                }
                if let Some(error) = validator.iter_errors(&value).next() {
                    let at = error.instance_path().to_string();
                    let at = if at.is_empty() { "/".to_owned() } else { at };
                    return Err(Reason::SchemaViolation(format!("at {at}: {error}")));
                }
            }
        }
        let line = compact(data);
        if line.len() + 1 > MAX_RECORD_SIZE {
            return Err(Reason::TooLarge(line.len() + 1));
        }
        Ok(line)
    }
}

/// The JSON pointer of the first `$ref` in `schema` that names `uri`.
fn ref_pointer(schema: &serde_json::Value, uri: &str) -> Option<String> {
    use serde_json::Value;
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref")
                && (target == uri || uri.ends_with(target.as_str()) || uri.starts_with(target.as_str()))
            {
                return Some("/$ref".to_owned());
            }
            map.iter().find_map(|(key, value)| {
                let key = key.replace('~', "~0").replace('/', "~1");
                ref_pointer(value, uri).map(|rest| format!("/{key}{rest}"))
            })
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, value)| ref_pointer(value, uri).map(|rest| format!("/{i}{rest}"))),
        _ => None,
    }
}

fn check_default(data: &[u8]) -> Result<(), Reason> {
    let mut de = serde_json::Deserializer::from_slice(data);
    let found = (&mut de)
        .deserialize_any(DefaultContract)
        .map_err(|e| Reason::NotJson(e.to_string()))?;
    de.end().map_err(|e| Reason::NotJson(e.to_string()))?;
    if let Some(at) = unpaired_surrogate(data) {
        return Err(Reason::NotJson(format!(
            "unpaired surrogate escape at byte {at}: not a Unicode character"
        )));
    }
    found
}

/// Where the first `\u` escape of a UTF-16 surrogate without its other half
/// is, in a well-formed JSON document. serde_json refuses one in every string
/// it reads, but not in the fields the default contract skips, so without
/// this check the default contract would deliver what a schema, serde_json
/// and other strict readers downstream refuse (found by the `contract` fuzz
/// target). In well-formed JSON every backslash is in a string and, read from
/// one escape to the next, starts an escape: `\\u` is a backslash, then `u`.
fn unpaired_surrogate(json: &[u8]) -> Option<usize> {
    let hex = |at: usize| {
        let digits = std::str::from_utf8(json.get(at..at + 4)?).ok()?;
        u16::from_str_radix(digits, 16).ok()
    };
    let mut i = 0;
    while let Some(k) = memchr::memchr(b'\\', json.get(i..).unwrap_or_default()) {
        let at = i + k;
        if json.get(at + 1) != Some(&b'u') {
            i = at + 2;
            continue;
        }
        i = at + 6;
        match hex(at + 2) {
            Some(0xD800..=0xDBFF) => {
                let low = (json.get(i..i + 2) == Some(b"\\u".as_slice()))
                    .then(|| hex(i + 2))
                    .flatten();
                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                    return Some(at);
                }
                i += 6;
            }
            Some(0xDC00..=0xDFFF) => return Some(at),
            _ => {}
        }
    }
    None
}

/// Walks the top level of an event. The outer `Result` is the JSON's
/// well-formedness; the inner one is the contract's verdict.
struct DefaultContract;

impl<'de> Visitor<'de> for DefaultContract {
    type Value = Result<(), Reason>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut event_type: Option<Field<'de>> = None;
        let mut timestamp: Option<Field<'de>> = None;
        let mut duplicate = None;
        while let Some(key) = map.next_key::<Field<'de>>()? {
            let (name, slot) = match key.as_str() {
                Some(EVENT_TYPE) => (EVENT_TYPE, &mut event_type),
                Some(TIMESTAMP) => (TIMESTAMP, &mut timestamp),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let value = map.next_value::<Field<'de>>()?;
            if slot.replace(value).is_some() {
                duplicate = Some(name);
            }
        }
        Ok(verdict(event_type, timestamp, duplicate))
    }

    // Anything but an object is well-formed JSON that breaks the contract;
    // it must still be read to the end so that trailing garbage is caught.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(Reason::NotAnObject))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(Reason::NotAnObject))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(Reason::NotAnObject))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(Reason::NotAnObject))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(Reason::NotAnObject))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(Reason::NotAnObject))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err(Reason::NotAnObject))
    }
}

fn verdict(event_type: Option<Field>, timestamp: Option<Field>, duplicate: Option<&'static str>) -> Result<(), Reason> {
    if let Some(field) = duplicate {
        return Err(Reason::DuplicateField(field));
    }
    match event_type {
        None => return Err(Reason::MissingEventType),
        Some(Field::Str(s)) if !s.is_empty() => {}
        Some(_) => return Err(Reason::InvalidEventType),
    }
    match timestamp {
        None => Err(Reason::MissingTimestamp),
        Some(Field::Str(s)) if is_date_time(&s) => Ok(()),
        Some(_) => Err(Reason::InvalidTimestamp),
    }
}

/// A checked field's value: a string (borrowed unless it had escapes), or
/// something else, which the contract only needs to know is not a string.
enum Field<'de> {
    Str(Cow<'de, str>),
    Other,
}

impl Field<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(s) => Some(s),
            Field::Other => None,
        }
    }
}

impl<'de> serde::Deserialize<'de> for Field<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
        }
        d.deserialize_any(FieldVisitor)
    }
}

/// The event as one line: JSON whitespace outside strings removed. An
/// event that is already compact (the usual case) is returned as it is,
/// without a copy. Meant for valid JSON, whose document it keeps; any other
/// input gives some bytes back, never a panic.
pub fn compact(json: &[u8]) -> Cow<'_, [u8]> {
    if !has_insignificant_whitespace(json) {
        return Cow::Borrowed(json);
    }
    let mut out = Vec::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in json {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !is_json_whitespace(b) {
            out.push(b);
            in_string = b == b'"';
        }
    }
    Cow::Owned(out)
}

fn has_insignificant_whitespace(json: &[u8]) -> bool {
    // Outside strings, look at every byte; inside, jump to the next quote or
    // backslash (memchr), since string contents may hold any whitespace.
    let mut i = 0;
    while i < json.len() {
        let b = json[i];
        if is_json_whitespace(b) {
            return true;
        }
        i += 1;
        if b == b'"' {
            loop {
                // An escape at the very end leaves `i` past the input.
                match memchr::memchr2(b'"', b'\\', json.get(i..).unwrap_or_default()) {
                    None => return false,
                    Some(k) if json[i + k] == b'\\' => i += k + 2,
                    Some(k) => {
                        i += k + 1;
                        break;
                    }
                }
            }
        }
    }
    false
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TS: &str = "2026-11-25T12:00:00Z";

    fn check(data: &str) -> Result<Cow<'_, [u8]>, Reason> {
        Contract::Default.check(data.as_bytes())
    }

    #[test]
    fn accepts_minimal_event_and_borrows_its_bytes() {
        let data = format!(r#"{{"event_type":"click","timestamp":"{TS}","n":[1,{{"a":null}}]}}"#);
        let line = check(&data).unwrap();
        assert!(matches!(line, Cow::Borrowed(_)));
        assert_eq!(&line[..], data.as_bytes());
    }

    #[test]
    fn codes_lists_every_reason_once() {
        use crate::kpl::KplError;
        let one_of_each = [
            Reason::CorruptAggregate(KplError::ChecksumMismatch),
            Reason::AggregateOverLimit(KplError::ExpandsTooFar { limit: 1 }),
            Reason::EmptyAggregate,
            Reason::NotUtf8(0),
            Reason::NotJson(String::new()),
            Reason::NotAnObject,
            Reason::MissingEventType,
            Reason::InvalidEventType,
            Reason::MissingTimestamp,
            Reason::InvalidTimestamp,
            Reason::DuplicateField("timestamp"),
            Reason::SchemaViolation(String::new()),
            Reason::TooLarge(0),
            Reason::TooLargeCompressed(0),
        ];
        // A new variant fails to compile here until it is listed above.
        for reason in &one_of_each {
            match reason {
                Reason::CorruptAggregate(_)
                | Reason::AggregateOverLimit(_)
                | Reason::EmptyAggregate
                | Reason::NotUtf8(_)
                | Reason::NotJson(_)
                | Reason::NotAnObject
                | Reason::MissingEventType
                | Reason::InvalidEventType
                | Reason::MissingTimestamp
                | Reason::InvalidTimestamp
                | Reason::DuplicateField(_)
                | Reason::SchemaViolation(_)
                | Reason::TooLarge(_)
                | Reason::TooLargeCompressed(_) => {}
            }
        }
        let mut codes: Vec<&str> = one_of_each.iter().map(Reason::code).collect();
        codes.dedup();
        assert_eq!(codes, Reason::CODES);
    }

    #[test]
    fn rejects_event_without_timestamp() {
        assert_eq!(check(r#"{"event_type":"click"}"#), Err(Reason::MissingTimestamp));
    }

    #[test]
    fn rejects_event_without_event_type() {
        assert_eq!(
            check(&format!(r#"{{"timestamp":"{TS}"}}"#)),
            Err(Reason::MissingEventType)
        );
    }

    #[test]
    fn rejects_empty_or_non_string_event_type() {
        assert_eq!(
            check(&format!(r#"{{"event_type":"","timestamp":"{TS}"}}"#)),
            Err(Reason::InvalidEventType)
        );
        assert_eq!(
            check(&format!(r#"{{"event_type":7,"timestamp":"{TS}"}}"#)),
            Err(Reason::InvalidEventType)
        );
        assert_eq!(
            check(&format!(r#"{{"event_type":{{"x":1}},"timestamp":"{TS}"}}"#)),
            Err(Reason::InvalidEventType)
        );
    }

    #[test]
    fn rejects_timestamps_that_are_not_rfc3339() {
        for ts in [
            r#""2026-11-25""#,
            r#""2026-11-25 12:00:00""#,
            r#""2026-11-25 12:00:00Z""#,
            r#""yesterday""#,
            "1764072000",
            r#""2026-13-01T00:00:00Z""#,
        ] {
            let data = format!(r#"{{"event_type":"a","timestamp":{ts}}}"#);
            assert_eq!(check(&data), Err(Reason::InvalidTimestamp), "{ts}");
        }
    }

    #[test]
    fn accepts_rfc3339_with_offset_and_fraction() {
        for ts in [
            "2026-11-25T12:00:00.123456Z",
            "2026-11-25T12:00:00+05:30",
            "2026-11-25t12:00:00z",
        ] {
            let data = format!(r#"{{"event_type":"a","timestamp":"{ts}"}}"#);
            assert!(check(&data).is_ok(), "{ts}");
        }
    }

    #[test]
    fn reads_escaped_field_values() {
        let data = format!(r#"{{"event_type":"cl\u0069ck","timestamp":"{TS}"}}"#);
        assert!(check(&data).is_ok());
    }

    #[test]
    fn rejects_non_objects() {
        for data in ["[1,2]", "\"s\"", "3", "null", "true"] {
            assert_eq!(check(data), Err(Reason::NotAnObject), "{data}");
        }
    }

    #[test]
    fn rejects_malformed_json_and_trailing_garbage() {
        assert!(matches!(check("{"), Err(Reason::NotJson(_))));
        assert!(matches!(
            check(&format!(r#"{{"event_type":"a","timestamp":"{TS}"}} x"#)),
            Err(Reason::NotJson(_))
        ));
        assert!(matches!(
            check(&format!(r#"[1] {{"timestamp":"{TS}"}}"#)),
            Err(Reason::NotJson(_))
        ));
        assert!(matches!(check(""), Err(Reason::NotJson(_))));
    }

    #[test]
    fn finds_unpaired_surrogate_escapes_only() {
        let cases: [(&str, Option<usize>); 9] = [
            (r#"{"x":"\uDDDD"}"#, Some(6)),
            (r#"{"x":"\uD83D"}"#, Some(6)),
            (r#"{"x":"\ud83d\u0041"}"#, Some(6)),
            (r#"{"x":"a\n\uD83D\uDE00\uDE00"}"#, Some(21)),
            (r#"{"x":"\uD83D\uDE00"}"#, None),
            (r#"{"x":"\\uDDDD"}"#, None),
            (r#"{"x":"\"\\\/\u00e9"}"#, None),
            (r#"{"x":"\uDBFF\uDFFF","y":"\uD800\uDC00"}"#, None),
            (r#"{"x":"plain"}"#, None),
        ];
        for (json, at) in cases {
            assert_eq!(unpaired_surrogate(json.as_bytes()), at, "{json}");
        }
    }

    #[test]
    fn rejects_an_unpaired_surrogate_even_inside_ignored_fields() {
        let data = format!(r#"{{"event_type":"a","timestamp":"{TS}","x":"\uDDDD"}}"#);
        assert!(matches!(check(&data), Err(Reason::NotJson(m)) if m.contains("surrogate")));
        let data = format!(r#"{{"event_type":"a","timestamp":"{TS}","x":"\uD83D\uDE00"}}"#);
        assert!(check(&data).is_ok());
    }

    #[test]
    fn rejects_invalid_utf8_even_inside_ignored_fields() {
        let mut data = format!(r#"{{"event_type":"a","timestamp":"{TS}","x":"#).into_bytes();
        data.extend_from_slice(b"\"\xff\"}");
        assert!(matches!(Contract::Default.check(&data), Err(Reason::NotUtf8(_))));
    }

    #[test]
    fn rejects_duplicate_checked_fields() {
        let data = format!(r#"{{"event_type":"a","event_type":"b","timestamp":"{TS}"}}"#);
        assert_eq!(check(&data), Err(Reason::DuplicateField("event_type")));
    }

    #[test]
    fn writes_pretty_printed_event_as_one_compact_line() {
        let pretty =
            format!("{{\n  \"event_type\": \"a b\",\n\t\"timestamp\": \"{TS}\",\r\n  \"q\": \"x \\\" y\"\n}}\n");
        let line = check(&pretty).unwrap();
        let expected = format!(r#"{{"event_type":"a b","timestamp":"{TS}","q":"x \" y"}}"#);
        assert_eq!(String::from_utf8(line.into_owned()).unwrap(), expected);
    }

    #[test]
    fn finds_whitespace_only_outside_strings() {
        assert!(!has_insignificant_whitespace(br#"{"a":"x y\" z","b":[1,2]}"#));
        assert!(has_insignificant_whitespace(br#"{"a":"x\\", "b":1}"#));
        assert!(has_insignificant_whitespace(b"{\"a\":1}\n"));
        assert!(!has_insignificant_whitespace(br#"{"a":"\\"}"#));
    }

    #[test]
    fn compact_is_total_on_input_that_is_not_json() {
        for input in [&b"\"a\\"[..], b"\"\\", b"\"", b" \"a\\", b"\\", b""] {
            let once = compact(input).into_owned();
            assert_eq!(compact(&once).into_owned(), once, "{input:?}");
        }
    }

    #[test]
    fn compact_keeps_escaped_backslash_before_closing_quote() {
        let json = br#"{ "a": "x\\", "b" : 1 }"#;
        assert_eq!(&compact(json)[..], br#"{"a":"x\\","b":1}"#);
    }

    #[test]
    fn accepts_line_exactly_at_the_record_limit_and_rejects_one_byte_more() {
        let skeleton = format!(r#"{{"event_type":"a","timestamp":"{TS}","pad":""}}"#);
        let pad = MAX_RECORD_SIZE - 1 - skeleton.len();
        let at_limit = format!(r#"{{"event_type":"a","timestamp":"{TS}","pad":"{}"}}"#, "x".repeat(pad));
        assert_eq!(at_limit.len() + 1, MAX_RECORD_SIZE);
        assert!(check(&at_limit).is_ok());
        let over = format!(
            r#"{{"event_type":"a","timestamp":"{TS}","pad":"{}"}}"#,
            "x".repeat(pad + 1)
        );
        assert_eq!(check(&over), Err(Reason::TooLarge(MAX_RECORD_SIZE + 1)));
    }

    #[test]
    fn schema_contract_replaces_the_default() {
        let schema = json!({
            "type": "object",
            "required": ["user_id"],
            "properties": {"user_id": {"type": "integer"}}
        });
        let contract = Contract::from_schema(&schema, Formats::Assert).unwrap();
        // No event_type or timestamp: the schema alone decides.
        assert!(contract.check(br#"{"user_id": 42}"#).is_ok());
        let err = contract.check(br#"{"user_id": "42"}"#).unwrap_err();
        assert_eq!(err.code(), "schema_violation");
        assert!(err.to_string().contains("/user_id"), "{err}");
        assert_eq!(contract.check(b"[1]"), Err(Reason::NotAnObject));
    }

    #[test]
    fn loading_a_missing_schema_file_names_the_variable() {
        let err = Contract::load(Some(Path::new("/nonexistent/schema.json")), Formats::Assert).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("EVENT_SCHEMA_FILE /nonexistent/schema.json"),
            "{err}"
        );
    }
}
