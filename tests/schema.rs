//! A custom JSON Schema does what its author expects: formats are asserted,
//! the dialect is the schema's own, a schema the function cannot use stops
//! it at init with the place and the reason, and no event can make a
//! pattern slow.

use std::path::Path;
use std::time::{Duration, Instant};

use kinesis_firehose_bridge::event::{Contract, ContractError, Formats};
use kinesis_firehose_bridge::reason::Reason;
use serde_json::json;

/// The schema a user tried.
fn user_schema() -> serde_json::Value {
    json!({"type":"object","required":["event_type","timestamp","user_id"],
           "properties":{"event_type":{"type":"string","minLength":1},
                         "timestamp":{"type":"string","format":"date-time"},
                         "user_id":{"type":"integer","minimum":1}}})
}

fn schema(value: &serde_json::Value) -> Contract {
    Contract::from_schema(value, Formats::Assert).unwrap_or_else(|e| panic!("{e:?}"))
}

fn event_at(timestamp: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"event_type": "a", "timestamp": timestamp, "user_id": 1})).unwrap()
}

#[test]
fn a_timestamp_that_is_not_a_date_time_is_rejected_with_a_pointer_to_it() {
    let contract = schema(&user_schema());
    let error = contract.check(&event_at("not a time")).unwrap_err();
    assert_eq!(error.code(), "schema_violation");
    let Reason::SchemaViolation(detail) = &error else {
        unreachable!()
    };
    assert!(detail.starts_with("at /timestamp"), "{detail}");
    assert!(contract.check(&event_at("2026-11-25T12:00:00Z")).is_ok());
}

#[test]
fn the_default_contract_and_a_date_time_schema_accept_and_reject_the_same_timestamps() {
    let contract = schema(&user_schema());
    let table = [
        ("2026-11-25T12:00:00Z", true),
        ("2026-11-25T12:00:00.123456789Z", true),
        ("2026-11-25T12:00:00+05:30", true),
        ("2026-11-25T12:00:00-00:00", true),
        ("2026-11-25t12:00:00z", true),
        ("2016-12-31T23:59:60Z", true),
        ("2026-02-29T12:00:00Z", false),
        ("2024-02-29T12:00:00Z", true),
        ("2026-11-25", false),
        ("12:00:00Z", false),
        ("2026-11-25 12:00:00Z", false),
        ("2026-11-25T12:00:00", false),
        ("2026-11-25T24:00:00Z", false),
        ("2026-13-01T00:00:00Z", false),
        ("2026-11-25T12:00:00+25:00", false),
        ("2026-11-25T12:00Z", false),
        ("25/11/2026", false),
        ("not a time", false),
        ("", false),
    ];
    for (timestamp, valid) in table {
        let data = event_at(timestamp);
        let by_default = Contract::Default.check(&data).is_ok();
        let by_schema = contract.check(&data).is_ok();
        assert_eq!(by_default, by_schema, "{timestamp:?}: the two contracts disagree");
        assert_eq!(by_default, valid, "{timestamp:?}");
    }
}

#[test]
fn the_default_contract_and_a_schema_agree_on_what_is_json() {
    // The first input is what the `contract` fuzz target found: an unpaired
    // surrogate escape in a field the default contract skips was delivered,
    // while a schema (which reads every field) refused the event.
    let found = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fuzz/contract-unpaired-surrogate.json"
    ))
    .unwrap();
    let contract = schema(&json!({"type": "object"}));
    let event = |extra: &str| format!(r#"{{"event_type":"a","timestamp":"2026-11-25T12:00:00Z","x":"{extra}"}}"#);
    let table = [
        (found, false),
        (event(r"\uDDDD").into_bytes(), false),
        (event(r"\uD83D").into_bytes(), false),
        (event(r"\uD83D\u0041").into_bytes(), false),
        (event(r"\uD83D\uDE00").into_bytes(), true),
        (event(r"\\uDDDD").into_bytes(), true),
        (event(r#"\u00e9\n\t\""#).into_bytes(), true),
    ];
    for (data, json) in table {
        let text = String::from_utf8_lossy(&data).into_owned();
        let by_default = Contract::Default.check(&data);
        let by_schema = contract.check(&data);
        assert_eq!(by_default.is_ok(), json, "{text}: {by_default:?}");
        assert_eq!(by_schema.is_ok(), json, "{text}: {by_schema:?}");
        if !json {
            assert_eq!(by_default.unwrap_err().code(), "not_json", "{text}");
            assert_eq!(by_schema.unwrap_err().code(), "not_json", "{text}");
        }
    }
}

#[test]
fn other_formats_are_asserted_too_unless_annotated() {
    let with_email = json!({"type": "object", "properties": {
        "email": {"type": "string", "format": "email"},
        "id": {"type": "string", "format": "uuid"},
        "ip": {"type": "string", "format": "ipv4"},
        "day": {"type": "string", "format": "date"}
    }});
    let asserted = schema(&with_email);
    for bad in [
        json!({"email": "not an address"}),
        json!({"id": "not-a-uuid"}),
        json!({"ip": "300.1.1.1"}),
        json!({"day": "2026-02-30"}),
    ] {
        let data = serde_json::to_vec(&bad).unwrap();
        assert_eq!(asserted.check(&data).unwrap_err().code(), "schema_violation", "{bad}");
    }
    let good = json!({"email": "a@example.com", "id": "0193a5c2-7d4e-7a8b-9c1d-000000000001", "ip": "10.0.0.1", "day": "2026-02-28"});
    assert!(asserted.check(&serde_json::to_vec(&good).unwrap()).is_ok());

    let annotated = Contract::from_schema(&user_schema(), Formats::Annotate).unwrap();
    assert!(
        annotated.check(&event_at("not a time")).is_ok(),
        "annotation only, on request"
    );
}

#[test]
fn the_schema_s_own_dialect_decides_and_2020_12_without_one() {
    // `prefixItems` is a 2020-12 keyword; draft-07 does not know it.
    let rule = json!({"type": "object", "properties": {"pair": {"prefixItems": [{"type": "integer"}]}}});
    let mut draft7 = rule.clone();
    draft7["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    let pair = br#"{"pair": ["x"]}"#;
    assert_eq!(
        schema(&rule).check(pair).unwrap_err().code(),
        "schema_violation",
        "no $schema: 2020-12"
    );
    assert!(schema(&draft7).check(pair).is_ok(), "draft-07 ignores prefixItems");
}

fn init_error(value: &serde_json::Value) -> String {
    let dir = std::env::temp_dir().join(format!("bridge-schema-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("schema-{}.json", value.to_string().len()));
    std::fs::write(&path, value.to_string()).unwrap();
    match Contract::load(Some(&path), Formats::Assert) {
        Ok(_) => panic!("{value} compiled"),
        Err(e @ ContractError::InvalidSchema { .. }) => {
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("EVENT_SCHEMA_FILE {}", path.display())),
                "{message}"
            );
            message
        }
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn a_remote_ref_stops_the_function_at_init_with_the_file_the_reason_and_the_pointer() {
    let message = init_error(&json!({
        "type": "object",
        "properties": {"user": {"$ref": "https://schemas.example.com/user.json"}}
    }));
    assert!(message.contains("https://schemas.example.com/user.json"), "{message}");
    assert!(message.contains("/properties/user"), "{message}");
}

#[test]
fn a_pattern_the_linear_engine_cannot_run_stops_the_function_at_init() {
    let message = init_error(&json!({
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^(a+)\\1$"}}
    }));
    assert!(message.contains("/properties/code/pattern"), "{message}");
}

#[test]
fn an_unknown_format_stops_the_function_at_init_rather_than_checking_nothing() {
    let message = init_error(&json!({
        "type": "object",
        "properties": {"when": {"type": "string", "format": "date_time"}}
    }));
    assert!(message.contains("date_time"), "{message}");
}

/// `^(a+)+$` against thirty `a` and a `!` takes a backtracking engine
/// about 2^30 steps. On the linear engine the bridge uses it is a few
/// microseconds; the bound here only tells linear from exponential.
#[test]
fn a_classic_backtracking_pattern_cannot_make_an_event_slow() {
    let contract = schema(&json!({
        "type": "object",
        "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}},
        "patternProperties": {"^(x+x+)+y$": {"type": "string"}}
    }));
    for length in [30, 1_000, 100_000] {
        let hostile = format!("{}!", "a".repeat(length));
        let key = format!("{}!", "x".repeat(length));
        let data = serde_json::to_vec(&json!({"name": hostile, key: "v"})).unwrap();
        let started = Instant::now();
        let verdict = contract.check(&data);
        let took = started.elapsed();
        assert_eq!(verdict.unwrap_err().code(), "schema_violation");
        assert!(took < Duration::from_millis(250), "{length}: {took:?}");
    }
}

#[test]
fn the_shipped_schema_compiles_and_names_its_dialect() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("events/schema.json");
    let text: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(text["$schema"], "https://json-schema.org/draft/2020-12/schema");
    Contract::load(Some(&path), Formats::Assert).unwrap();
}
