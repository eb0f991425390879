//! The deployment template (`template.yaml`), checked for what cfn-lint,
//! `sam validate --lint` and checkov do not know about: how the event source
//! mapping handles failure, that Firehose access is `PutRecordBatch` on this
//! stack's delivery streams only, and that the function's environment speaks
//! the bridge's configuration names (`config::vars::ALL`) and its alarms the
//! bridge's metric names (`metrics::NAMES`). And that every stage that can
//! drop data alarms (Firehose's delivery to S3 and its throttling, for every
//! delivery stream; the mapping's on-failure writes; a stalled mapping): each
//! alarm is run through a small model of CloudWatch's alarm evaluation over
//! healthy, idle and failing data points, so a test fails when an alarm
//! would stay silent, or cry wolf.
//!
//! The YAML is read with `serde_norway`, which keeps CloudFormation's short
//! tags (`!Ref`, `!GetAtt`, `!Sub`, `!If`, ...) as tagged values; they are
//! rewritten into their long JSON form (`{"Ref": ...}`, `{"Fn::GetAtt":
//! [resource, attribute]}`, ...) so the checks below see one form only.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use kinesis_firehose_bridge::part::Part;
use kinesis_firehose_bridge::reject::RejectLine;
use kinesis_firehose_bridge::{config::vars, event, metrics};
use serde_json::{Map, Value};

// ------------------------------------------------------------- reading --

fn template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let yaml: serde_norway::Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
        long_form(yaml)
    })
}

/// YAML into JSON, short intrinsic-function tags into their long form.
fn long_form(yaml: serde_norway::Value) -> Value {
    use serde_norway::Value as Yaml;
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (None, Some(u), _) => Value::from(u),
            (None, None, Some(f)) => Value::from(f),
            _ => panic!("unrepresentable number {n}"),
        },
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(long_form).collect()),
        Yaml::Mapping(mapping) => Value::Object(
            mapping
                .into_iter()
                .map(|(key, value)| match key {
                    Yaml::String(key) => (key, long_form(value)),
                    other => panic!("non-string mapping key {other:?}"),
                })
                .collect(),
        ),
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let value = long_form(tagged.value);
            let (key, value) = match name {
                "Ref" | "Condition" => (name.to_owned(), value),
                // `!GetAtt Resource.Attribute` is `{"Fn::GetAtt": ["Resource", "Attribute"]}`.
                "GetAtt" => match value {
                    Value::String(s) => {
                        let (resource, attribute) = s
                            .split_once('.')
                            .unwrap_or_else(|| panic!("!GetAtt {s} has no attribute"));
                        ("Fn::GetAtt".to_owned(), Value::from(vec![resource, attribute]))
                    }
                    other => ("Fn::GetAtt".to_owned(), other),
                },
                other => (format!("Fn::{other}"), value),
            };
            Value::Object(Map::from_iter([(key, value)]))
        }
    }
}

// ------------------------------------------------------------- looking --

fn resources() -> &'static Map<String, Value> {
    template()["Resources"].as_object().expect("template has Resources")
}

fn resource(name: &str) -> &'static Value {
    resources().get(name).unwrap_or_else(|| panic!("no resource {name}"))
}

fn type_of(name: &str) -> &'static str {
    resource(name)["Type"]
        .as_str()
        .unwrap_or_else(|| panic!("resource {name} has no Type"))
}

fn resources_of_type(ty: &str) -> Vec<(&'static str, &'static Value)> {
    resources()
        .iter()
        .filter(|(_, r)| r["Type"] == ty)
        .map(|(name, r)| (name.as_str(), r))
        .collect()
}

fn parameter(name: &str) -> &'static Value {
    template()["Parameters"]
        .get(name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

/// The function built from the binary `binary`: (logical id, resource).
fn function_of(binary: &str) -> (&'static str, &'static Value) {
    let functions: Vec<_> = resources_of_type("AWS::Serverless::Function")
        .into_iter()
        .filter(|(_, f)| f["Metadata"]["BuildProperties"]["Binary"] == binary)
        .collect();
    assert_eq!(functions.len(), 1, "expected one function built from {binary}");
    functions[0]
}

/// The bridge: (logical id, resource).
fn function() -> (&'static str, &'static Value) {
    function_of("kinesis-firehose-bridge")
}

/// The function's Kinesis event, which SAM turns into the event source mapping.
fn kinesis_event() -> &'static Value {
    let events: Vec<&Value> = function().1["Properties"]["Events"]
        .as_object()
        .expect("the function has Events")
        .values()
        .filter(|e| e["Type"] == "Kinesis")
        .collect();
    assert_eq!(events.len(), 1, "expected one Kinesis event on the function");
    &events[0]["Properties"]
}

fn environment() -> &'static Map<String, Value> {
    function().1["Properties"]["Environment"]["Variables"]
        .as_object()
        .expect("the function has Environment.Variables")
}

fn ref_target(value: &Value) -> Option<&str> {
    value.get("Ref")?.as_str()
}

/// `{"Fn::GetAtt": [resource, "Arn"]}` gives `resource`.
fn arn_of(value: &Value) -> Option<&str> {
    match value.get("Fn::GetAtt")?.as_array()?.as_slice() {
        [resource, attribute] if attribute == "Arn" => resource.as_str(),
        _ => None,
    }
}

/// One value or a list of them, as a list.
fn listed(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// The values a list element can take: both branches of an `Fn::If`, less
/// `AWS::NoValue`, which drops the element.
fn alternatives(value: &Value) -> Vec<&Value> {
    match value.get("Fn::If").and_then(Value::as_array).map(Vec::as_slice) {
        Some([_, then, otherwise]) => {
            let mut all = alternatives(then);
            all.extend(alternatives(otherwise));
            all
        }
        Some(_) => panic!("malformed Fn::If: {value}"),
        None if ref_target(value) == Some("AWS::NoValue") => Vec::new(),
        None => vec![value],
    }
}

/// Every resource `Ref` reached anywhere inside `value`, and every
/// `${Name}` of an `Fn::Sub` string (a reference too).
fn refs_within(value: &Value) -> BTreeSet<&str> {
    let mut found = BTreeSet::new();
    fn walk<'a>(value: &'a Value, found: &mut BTreeSet<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("Ref") {
                    found.insert(target.as_str());
                }
                if let Some(Value::String(text)) = map.get("Fn::Sub") {
                    found.extend(sub_names(text));
                }
                map.values().for_each(|v| walk(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    walk(value, &mut found);
    found
}

/// The names an `Fn::Sub` string substitutes (`${Name}`, not
/// `${Resource.Attribute}`, `${AWS::...}` or `${!Literal}`).
fn sub_names(text: &str) -> Vec<&str> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .filter(|name| !name.contains('.') && !name.contains("::") && !name.starts_with('!'))
        .collect()
}

fn number(value: &Value) -> Option<f64> {
    value.as_f64().or_else(|| value.as_str()?.parse().ok())
}

/// A number the template sets, literally or through a parameter: the value
/// it takes by default and every value a deployment may give it.
#[derive(Debug)]
struct Setting {
    default: f64,
    lowest: Option<f64>,
    highest: Option<f64>,
}

fn setting(value: &Value) -> Setting {
    if let Some(n) = number(value) {
        return Setting {
            default: n,
            lowest: Some(n),
            highest: Some(n),
        };
    }
    let name = ref_target(value).unwrap_or_else(|| panic!("{value} is neither a number nor a !Ref"));
    let p = parameter(name);
    let default = number(&p["Default"]).unwrap_or_else(|| panic!("parameter {name} has no numeric Default"));
    let allowed: Vec<f64> = listed(&p["AllowedValues"]).into_iter().filter_map(number).collect();
    let (lowest, highest) = if allowed.is_empty() {
        (number(&p["MinValue"]), number(&p["MaxValue"]))
    } else {
        (
            allowed.iter().copied().reduce(f64::min),
            allowed.iter().copied().reduce(f64::max),
        )
    };
    Setting {
        default,
        lowest,
        highest,
    }
}

/// Every statement of every identity policy in the template, with where it is.
fn policy_statements() -> Vec<(String, &'static Value)> {
    let mut statements = Vec::new();
    for (name, r) in resources() {
        let props = &r["Properties"];
        let documents: Vec<(String, &Value)> = match r["Type"].as_str() {
            Some("AWS::IAM::Role") => listed(&props["Policies"])
                .into_iter()
                .map(|p| (format!("{name}/{}", p["PolicyName"]), &p["PolicyDocument"]))
                .collect(),
            Some("AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" | "AWS::IAM::RolePolicy") => {
                vec![(name.clone(), &props["PolicyDocument"])]
            }
            // SAM inline policies: documents among policy names and templates.
            Some("AWS::Serverless::Function") => listed(&props["Policies"])
                .into_iter()
                .filter(|p| p.get("Statement").is_some())
                .map(|p| (name.clone(), p))
                .collect(),
            _ => Vec::new(),
        };
        for (place, document) in documents {
            for statement in listed(&document["Statement"]) {
                statements.push((place.clone(), statement));
            }
        }
    }
    statements
}

fn actions(statement: &Value) -> Vec<&str> {
    listed(&statement["Action"])
        .into_iter()
        .filter_map(Value::as_str)
        .collect()
}

/// The role the function runs as: (logical id, resource).
fn function_role() -> (&'static str, &'static Value) {
    let role = arn_of(&function().1["Properties"]["Role"])
        .expect("the function's Role is the !GetAtt Arn of a role in this template");
    assert_eq!(type_of(role), "AWS::IAM::Role");
    (role, resource(role))
}

fn function_role_statements() -> Vec<&'static Value> {
    let (role, _) = function_role();
    policy_statements()
        .into_iter()
        .filter(|(place, _)| place.split('/').next() == Some(role))
        .map(|(_, s)| s)
        .collect()
}

fn delivery_streams() -> BTreeSet<&'static str> {
    resources_of_type("AWS::KinesisFirehose::DeliveryStream")
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

fn s3_destination(stream: &str) -> &'static Value {
    &resource(stream)["Properties"]["ExtendedS3DestinationConfiguration"]
}

fn literal<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a literal string: {value}"))
}

const PARTITIONS: &str = "year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/";

// ------------------------------------------- the event source mapping --

#[test]
fn event_source_mapping_reads_this_stack_s_stream_in_batches_of_500() {
    let esm = kinesis_event();
    assert_eq!(esm["BatchSize"], 500);
    let stream = arn_of(&esm["Stream"]).expect("Stream is the !GetAtt Arn of a resource");
    assert_eq!(type_of(stream), "AWS::Kinesis::Stream");
}

#[test]
fn event_source_mapping_bisects_and_reports_item_failures() {
    let esm = kinesis_event();
    assert_eq!(esm["BisectBatchOnFunctionError"], Value::Bool(true));
    let types = listed(&esm["FunctionResponseTypes"]);
    assert!(types.contains(&&Value::from("ReportBatchItemFailures")), "{types:?}");
}

#[test]
fn event_source_mapping_tuning_is_left_to_parameters() {
    let esm = kinesis_event();
    for property in [
        "StartingPosition",
        "MaximumBatchingWindowInSeconds",
        "ParallelizationFactor",
    ] {
        let name = ref_target(&esm[property]).unwrap_or_else(|| panic!("{property} is not a !Ref"));
        parameter(name);
    }
}

#[test]
fn event_source_mapping_starts_at_trim_horizon_by_default_so_nothing_is_skipped() {
    let position = parameter(ref_target(&kinesis_event()["StartingPosition"]).unwrap());
    assert_eq!(position["Default"], "TRIM_HORIZON");
}

#[test]
fn event_source_mapping_retries_are_bounded_so_a_poison_batch_cannot_block_a_shard() {
    let retries = setting(&kinesis_event()["MaximumRetryAttempts"]);
    assert!((0.0..=10_000.0).contains(&retries.default), "{retries:?}");
    assert!(
        retries.lowest.is_some_and(|n| n >= 0.0),
        "-1 (infinite) must not be allowed: {retries:?}"
    );
    assert!(retries.highest.is_some_and(|n| n <= 10_000.0), "{retries:?}");
}

#[test]
fn event_source_mapping_gives_up_on_records_before_the_stream_drops_them() {
    let age = setting(&kinesis_event()["MaximumRecordAgeInSeconds"]);
    assert!(
        age.lowest.is_some_and(|n| n >= 60.0),
        "-1 (infinite) must not be allowed: {age:?}"
    );
    assert!(age.highest.is_some_and(|n| n <= 604_800.0), "{age:?}");
    let (stream_name, _) = resources_of_type("AWS::Kinesis::Stream")[0];
    let retention = setting(&resource(stream_name)["Properties"]["RetentionPeriodHours"]);
    // Not only by default: no pair of values a deployment may give lets a
    // record expire from the stream before the mapping gives up on it (and
    // writes its batch to the bucket).
    let shortest_retention_s = retention.lowest.expect("RetentionPeriodHours has a lower bound") * 3600.0;
    let oldest_age_s = age.highest.expect("MaximumRecordAgeInSeconds has an upper bound");
    assert!(
        oldest_age_s < shortest_retention_s,
        "MaximumRecordAgeInSeconds may be {oldest_age_s} s, but the stream may keep records only {shortest_retention_s} s"
    );
    assert!(age.default < retention.default * 3600.0, "{age:?} vs {retention:?} h");
}

/// The bucket the function keeps undelivered records in, and the event
/// source mapping's on-failure destination: the events bucket itself.
fn undelivered_bucket() -> &'static str {
    let on_failure = &kinesis_event()["DestinationConfig"]["OnFailure"];
    let target = arn_of(&on_failure["Destination"]).expect("OnFailure.Destination is a !GetAtt Arn");
    assert_eq!(
        type_of(target),
        "AWS::S3::Bucket",
        "the on-failure destination keeps whole batches in S3"
    );
    target
}

/// `${Bucket.Arn}/prefix/*`, as the policies write it.
fn objects_under(bucket: &str, prefix: &str) -> Value {
    serde_json::json!({"Fn::Sub": format!("${{{bucket}.Arn}}/{prefix}*")})
}

#[test]
fn batches_given_up_on_are_kept_whole_in_an_encrypted_private_bucket_with_a_lifecycle() {
    let bucket = undelivered_bucket();
    let props = &resource(bucket)["Properties"];
    assert!(!props["BucketEncryption"].is_null(), "{bucket} is not encrypted");
    let block = &props["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[setting], Value::Bool(true), "{bucket}: {setting}");
    }
    let rules = listed(&props["LifecycleConfiguration"]["Rules"]);
    assert!(
        rules.iter().any(|r| r["Status"] == "Enabled"
            && r.get("Prefix").is_none()
            && r.get("Filter").is_none()
            && !r["ExpirationInDays"].is_null()),
        "one lifecycle rule covers every prefix, undelivered records included: {rules:?}"
    );
    assert!(
        resources_of_type("AWS::SQS::Queue").is_empty(),
        "no metadata-only queue: the batches themselves are kept"
    );
}

#[test]
fn an_alarm_fires_when_a_batch_is_given_up_on() {
    let bucket = undelivered_bucket();
    let metrics = listed(&resource(bucket)["Properties"]["MetricsConfigurations"]);
    let filter = metrics
        .iter()
        .find(|m| m["Prefix"] == "aws/lambda/")
        .expect("request metrics on the prefix Lambda writes given-up batches to");
    let alarm = alarm_on(&Value::from("AWS/S3"), "PutRequests");
    let dimensions = listed(&alarm["Dimensions"]);
    assert!(
        dimensions
            .iter()
            .any(|d| d["Name"] == "FilterId" && d["Value"] == filter["Id"])
    );
    assert!(
        dimensions
            .iter()
            .any(|d| d["Name"] == "BucketName" && ref_target(&d["Value"]) == Some(bucket))
    );
    assert_eq!(alarm["ComparisonOperator"], "GreaterThanThreshold");
    assert_eq!(setting(&alarm["Threshold"]).default, 0.0);
}

#[test]
fn the_function_keeps_undelivered_records_in_the_same_bucket_and_may_write_only_there() {
    let bucket = undelivered_bucket();
    assert_eq!(ref_target(&environment()[vars::UNDELIVERED_BUCKET]), Some(bucket));
    let allowed = ["dead-letters/", "rejects-unsent/", "aws/lambda/"].map(|p| objects_under(bucket, p));
    let mut puts = BTreeSet::new();
    let mut lists = 0;
    for statement in function_role_statements() {
        let s3: Vec<&str> = actions(statement)
            .into_iter()
            .filter(|a| a.starts_with("s3:"))
            .collect();
        if s3.is_empty() {
            continue;
        }
        assert_eq!(statement["Effect"], "Allow");
        for action in &s3 {
            match *action {
                "s3:PutObject" => {
                    for r in listed(&statement["Resource"]) {
                        assert!(
                            allowed.contains(r),
                            "s3:PutObject on {r}, outside the undelivered prefixes"
                        );
                        puts.insert(r.to_string());
                    }
                }
                "s3:ListBucket" => {
                    lists += 1;
                    for r in listed(&statement["Resource"]) {
                        assert_eq!(arn_of(r), Some(bucket), "s3:ListBucket on {r}");
                    }
                }
                other => panic!("the function may not {other}"),
            }
        }
    }
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert_eq!(lists, 1, "Lambda needs s3:ListBucket for an S3 on-failure destination");
}

// ---------------------------------------------------- least privilege --

#[test]
fn every_firehose_permission_is_put_record_batch_on_this_stack_s_delivery_streams() {
    let streams = delivery_streams();
    let mut seen = 0;
    for (place, statement) in policy_statements() {
        assert!(
            statement.get("NotAction").is_none() && statement.get("NotResource").is_none(),
            "{place}: NotAction/NotResource"
        );
        let acts = actions(statement);
        let grants_firehose = acts
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("firehose:") || *a == "*");
        if !grants_firehose || statement["Effect"] != "Allow" {
            continue;
        }
        seen += 1;
        assert_eq!(acts, ["firehose:PutRecordBatch"], "{place}: Firehose actions");
        let resources = listed(&statement["Resource"]);
        assert!(!resources.is_empty(), "{place}: no Resource");
        for element in resources {
            for r in alternatives(element) {
                let target = arn_of(r).unwrap_or_else(|| panic!("{place}: Resource {r} is not a delivery stream ARN"));
                assert!(
                    streams.contains(target),
                    "{place}: {target} is not a delivery stream of this template"
                );
            }
        }
    }
    assert!(seen > 0, "no statement grants firehose:PutRecordBatch");
}

#[test]
fn function_may_put_to_each_of_its_delivery_streams_including_rejects() {
    let granted: BTreeSet<&str> = function_role_statements()
        .into_iter()
        .filter(|s| actions(s).contains(&"firehose:PutRecordBatch"))
        .flat_map(|s| listed(&s["Resource"]))
        .flat_map(alternatives)
        .filter_map(arn_of)
        .collect();
    assert_eq!(granted, delivery_streams());
}

#[test]
fn function_reads_only_its_own_stream_and_has_no_managed_policies() {
    let (role, props) = (function_role().0, &function_role().1["Properties"]);
    assert!(
        props["ManagedPolicyArns"].is_null(),
        "{role}: managed policies (AWSLambdaKinesisExecutionRole is on every stream)"
    );
    assert!(
        function().1["Properties"]["Policies"].is_null(),
        "SAM Policies beside an explicit Role"
    );
    let stream = arn_of(&kinesis_event()["Stream"]).unwrap();
    let read_only = [
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
        "kinesis:SubscribeToShard",
    ];
    let mut reads = 0;
    for statement in function_role_statements() {
        let kinesis: Vec<&str> = actions(statement)
            .into_iter()
            .filter(|a| a.starts_with("kinesis:"))
            .collect();
        if kinesis.is_empty() {
            continue;
        }
        reads += 1;
        assert!(kinesis.iter().all(|a| read_only.contains(a)), "{role}: {kinesis:?}");
        for r in listed(&statement["Resource"]) {
            assert_eq!(arn_of(r), Some(stream), "{role}: kinesis Resource {r}");
        }
    }
    assert!(reads > 0, "{role} cannot read the stream");
}

#[test]
fn firehose_role_writes_only_under_its_bucket_prefixes() {
    let roles: BTreeSet<&str> = delivery_streams()
        .into_iter()
        .map(|s| arn_of(&s3_destination(s)["RoleARN"]).expect("RoleARN is a !GetAtt Arn"))
        .collect();
    let buckets: BTreeSet<&str> = delivery_streams()
        .into_iter()
        .map(|s| arn_of(&s3_destination(s)["BucketARN"]).expect("BucketARN is a !GetAtt Arn"))
        .collect();
    assert_eq!(
        buckets.len(),
        1,
        "all delivery streams write to one bucket: {buckets:?}"
    );
    let bucket = *buckets.first().unwrap();
    let allowed_objects: Vec<String> = ["events", "rejects", "errors"]
        .iter()
        .map(|p| format!("${{{bucket}.Arn}}/{p}/*"))
        .collect();
    for (place, statement) in policy_statements() {
        if !roles.contains(place.split('/').next().unwrap()) {
            continue;
        }
        for r in listed(&statement["Resource"]) {
            assert_ne!(r, "*", "{place}: Resource *");
            if actions(statement).iter().any(|a| a.starts_with("s3:")) {
                let ok = arn_of(r) == Some(bucket)
                    || r.get("Fn::Sub")
                        .and_then(Value::as_str)
                        .is_some_and(|s| allowed_objects.iter().any(|a| a == s));
                assert!(
                    ok,
                    "{place}: S3 Resource {r} is not the bucket or one of {allowed_objects:?}"
                );
            }
        }
    }
}

// ------------------------------------------------------- environment --

#[test]
fn function_environment_uses_only_the_bridge_s_configuration_names() {
    let env = environment();
    for name in env.keys() {
        assert!(vars::ALL.contains(&name.as_str()), "{name} is not in config::vars::ALL");
    }
    assert!(env.contains_key(vars::DELIVERY_STREAMS));
}

#[test]
fn delivery_streams_variable_lists_the_events_streams_and_rejects_go_to_the_rejects_stream() {
    let env = environment();
    let rejects = ref_target(&env[vars::REJECTS_DELIVERY_STREAM]).expect("REJECTS_DELIVERY_STREAM is a !Ref");
    assert_eq!(type_of(rejects), "AWS::KinesisFirehose::DeliveryStream");
    let events: BTreeSet<&str> = refs_within(&env[vars::DELIVERY_STREAMS]);
    let mut expected = delivery_streams();
    expected.remove(rejects);
    assert_eq!(
        events, expected,
        "DELIVERY_STREAMS must name every events delivery stream"
    );
}

/// The value of condition `name` when the parameters are `params` (those
/// absent take their default).
fn condition_holds(name: &str, params: &[(&str, &str)]) -> bool {
    let condition = template()["Conditions"]
        .get(name)
        .unwrap_or_else(|| panic!("no condition {name}"));
    condition_value(condition, params)
}

fn condition_value(value: &Value, params: &[(&str, &str)]) -> bool {
    let (function, args) = value
        .as_object()
        .and_then(|m| m.iter().next())
        .unwrap_or_else(|| panic!("not a condition: {value}"));
    let args_list = || args.as_array().unwrap_or_else(|| panic!("{function}: {args}"));
    match function.as_str() {
        "Condition" => condition_holds(args.as_str().expect("a condition's name"), params),
        "Fn::Not" => !condition_value(&args_list()[0], params),
        "Fn::And" => args_list().iter().all(|a| condition_value(a, params)),
        "Fn::Or" => args_list().iter().any(|a| condition_value(a, params)),
        "Fn::Equals" => {
            let [a, b] = args_list().as_slice() else {
                panic!("Fn::Equals takes two: {args}")
            };
            scalar_value(a, params) == scalar_value(b, params)
        }
        other => panic!("condition function {other} is not modelled"),
    }
}

fn scalar_value(value: &Value, params: &[(&str, &str)]) -> String {
    if let Some(name) = ref_target(value) {
        if let Some((_, v)) = params.iter().find(|(p, _)| *p == name) {
            return (*v).to_owned();
        }
        return match &parameter(name)["Default"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    }
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A string-valued expression (`Ref` of a resource is its logical name;
/// `Fn::Join`, `Fn::If`, `Fn::Sub` of names) under `params`.
fn string_value(value: &Value, params: &[(&str, &str)]) -> String {
    if let Some(name) = ref_target(value) {
        return name.to_owned();
    }
    if let Some(text) = value.as_str() {
        return text.to_owned();
    }
    let (function, args) = value.as_object().and_then(|m| m.iter().next()).expect("an expression");
    match (function.as_str(), args) {
        ("Fn::If", Value::Array(branches)) => {
            let holds = condition_holds(branches[0].as_str().expect("a condition's name"), params);
            string_value(&branches[if holds { 1 } else { 2 }], params)
        }
        ("Fn::Join", Value::Array(parts)) => {
            let separator = parts[0].as_str().expect("a separator");
            let items = parts[1].as_array().expect("a list to join");
            items
                .iter()
                .map(|item| string_value(item, params))
                .collect::<Vec<_>>()
                .join(separator)
        }
        ("Fn::Sub", Value::String(text)) => {
            let mut out = text.clone();
            for name in sub_names(text) {
                out = out.replace(&format!("${{{name}}}"), name);
            }
            out
        }
        other => panic!("expression {other:?} is not modelled"),
    }
}

#[test]
fn every_delivery_stream_count_deploys_that_many_streams_each_with_its_alarms_and_permission() {
    let counts: Vec<String> = parameter("DeliveryStreamCount")["AllowedValues"]
        .as_array()
        .expect("DeliveryStreamCount lists its values")
        .iter()
        .map(|v| scalar_value(v, &[]))
        .collect();
    assert_eq!(counts, (1..=10).map(|n| n.to_string()).collect::<Vec<_>>());
    let rejects = ref_target(&environment()[vars::REJECTS_DELIVERY_STREAM]).unwrap();
    let deployed = |params: &[(&str, &str)], name: &str| {
        resource(name)
            .get("Condition")
            .and_then(Value::as_str)
            .is_none_or(|c| condition_holds(c, params))
    };
    let granted: Vec<&Value> = function_role_statements()
        .into_iter()
        .filter(|s| actions(s).contains(&"firehose:PutRecordBatch"))
        .flat_map(|s| listed(&s["Resource"]))
        .collect();
    for n in 1..=10usize {
        let count = n.to_string();
        let params = [("DeliveryStreamCount", count.as_str())];
        let streams: Vec<&str> = delivery_streams()
            .into_iter()
            .filter(|s| *s != rejects && deployed(&params, s))
            .collect();
        let expected: Vec<String> = (1..=n).map(|i| format!("EventsDeliveryStream{i}")).collect();
        let mut sorted = streams.clone();
        sorted.sort_by_key(|s| {
            s.trim_start_matches("EventsDeliveryStream")
                .parse::<usize>()
                .unwrap_or(0)
        });
        assert_eq!(sorted, expected, "DeliveryStreamCount={n}");
        assert_eq!(
            string_value(&environment()[vars::DELIVERY_STREAMS], &params),
            expected.join(","),
            "DELIVERY_STREAMS at DeliveryStreamCount={n}"
        );
        for stream in &streams {
            for metric in ["DeliveryToS3.DataFreshness", "DeliveryToS3.Success", "ThrottledRecords"] {
                let (alarm, _, _) = stream_alarm(metric, stream);
                assert!(deployed(&params, alarm), "{alarm} is deployed with {stream}");
            }
        }
        // The function may put to exactly the deployed streams (and rejects).
        let mut may_put: Vec<&str> = granted
            .iter()
            .filter_map(|element| match element.get("Fn::If").and_then(Value::as_array) {
                Some(branches) => {
                    let holds = condition_holds(branches[0].as_str().unwrap(), &params);
                    arn_of(&branches[if holds { 1 } else { 2 }])
                }
                None => arn_of(element),
            })
            .filter(|s| *s != rejects)
            .collect();
        may_put.sort_by_key(|s| {
            s.trim_start_matches("EventsDeliveryStream")
                .parse::<usize>()
                .unwrap_or(0)
        });
        assert_eq!(may_put, expected, "PutRecordBatch at DeliveryStreamCount={n}");
    }
    // The dashboard's Firehose widgets have a row for every stream.
    let body = resource("Dashboard")["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_array()
        .expect("the dashboard body is a !Sub with variables");
    let (text, vars) = (body[0].as_str().unwrap(), body[1].as_object().unwrap());
    for n in 2..=10 {
        let var = format!("Stream{n}Row");
        assert_eq!(
            text.matches(&format!("${{{var}}}")).count(),
            4,
            "{var} in every Firehose widget"
        );
        let row = vars[&var]["Fn::If"]
            .as_array()
            .unwrap_or_else(|| panic!("{var} is an !If"));
        assert_eq!(row[0], format!("HasStream{n}"), "{var}");
        assert!(
            refs_within(&row[1]).contains(format!("EventsDeliveryStream{n}").as_str()),
            "{var} names its stream"
        );
    }
}

#[test]
fn partial_failure_mode_is_a_parameter_defaulting_to_log() {
    let name = ref_target(&environment()[vars::ON_PARTIAL_FAILURE]).expect("ON_PARTIAL_FAILURE is a !Ref");
    let p = parameter(name);
    assert_eq!(p["Default"], "log");
    let allowed: BTreeSet<&str> = listed(&p["AllowedValues"])
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(allowed, BTreeSet::from(["log", "retry"]));
}

// ------------------------------------------------------------ runtime --

#[test]
fn function_is_a_rust_bootstrap_for_arm64_on_al2023() {
    let f = function().1;
    let props = &f["Properties"];
    assert_eq!(props["Runtime"], "provided.al2023");
    assert_eq!(props["Architectures"], serde_json::json!(["arm64"]));
    assert_eq!(props["Handler"], "bootstrap");
    assert_eq!(props["CodeUri"], ".");
    assert_eq!(props["LoggingConfig"]["LogFormat"], "JSON");
    assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda");
    // The [[bin]] target in Cargo.toml.
    assert_eq!(f["Metadata"]["BuildProperties"]["Binary"], "kinesis-firehose-bridge");
}

// ------------------------------------------------------------ delivery --

#[test]
fn delivery_streams_write_gzip_under_time_partitioned_prefixes() {
    let rejects = ref_target(&environment()[vars::REJECTS_DELIVERY_STREAM]).unwrap();
    for stream in delivery_streams() {
        assert_eq!(
            resource(stream)["Properties"]["DeliveryStreamType"],
            "DirectPut",
            "{stream}"
        );
        let s3 = s3_destination(stream);
        let folder = if stream == rejects { "rejects" } else { "events" };
        assert_eq!(
            literal(&s3["Prefix"], "Prefix"),
            format!("{folder}/{PARTITIONS}"),
            "{stream}"
        );
        let errors = literal(&s3["ErrorOutputPrefix"], "ErrorOutputPrefix");
        assert!(
            errors.starts_with("errors/") && errors.contains("!{firehose:error-output-type}"),
            "{stream}: ErrorOutputPrefix {errors}"
        );
        assert_eq!(s3["CloudWatchLoggingOptions"]["Enabled"], Value::Bool(true), "{stream}");
        let interval = setting(&s3["BufferingHints"]["IntervalInSeconds"]);
        assert!(
            interval.default <= 120.0,
            "{stream}: data should land within a minute or two: {interval:?}"
        );
    }
    // The rejects stream is not compressed by the function (rare, small,
    // read by people): Firehose gzips it.
    assert_eq!(s3_destination(rejects)["CompressionFormat"], "GZIP");
}

/// The `Fn::If` of `value`: (condition, then, else).
fn if_of(value: &Value) -> (&str, &Value, &Value) {
    match value.get("Fn::If").and_then(Value::as_array).map(Vec::as_slice) {
        Some([Value::String(condition), then, otherwise]) => (condition, then, otherwise),
        _ => panic!("{value} is not an Fn::If"),
    }
}

#[test]
fn one_parameter_sets_the_function_s_compression_and_the_delivery_streams_and_they_agree() {
    let parameter_name = ref_target(&environment()[vars::COMPRESSION]).expect("COMPRESSION is a !Ref");
    let p = parameter(parameter_name);
    assert_eq!(
        p["Default"], "gzip",
        "the cost figures choose gzip (docs/compression.md)"
    );
    let allowed: BTreeSet<&str> = listed(&p["AllowedValues"])
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        allowed,
        BTreeSet::from(["gzip", "none"]),
        "the values COMPRESSION reads"
    );
    let rejects = ref_target(&environment()[vars::REJECTS_DELIVERY_STREAM]).unwrap();
    for stream in delivery_streams().into_iter().filter(|s| *s != rejects) {
        let s3 = s3_destination(stream);
        let (condition, compressed, uncompressed) = if_of(&s3["CompressionFormat"]);
        // The condition is `Compression == gzip`.
        let test = &template()["Conditions"][condition]["Fn::Equals"];
        let sides: Vec<&Value> = listed(test);
        assert!(
            sides.iter().any(|v| ref_target(v) == Some(parameter_name)) && sides.iter().any(|v| *v == "gzip"),
            "{stream}: {condition} is not {parameter_name} == gzip"
        );
        assert_eq!(compressed, "UNCOMPRESSED", "{stream}: the function compressed already");
        assert_eq!(
            uncompressed, "GZIP",
            "{stream}: Firehose compresses what the function did not"
        );
        let (extension_condition, extension, none) = if_of(&s3["FileExtension"]);
        assert_eq!(extension_condition, condition);
        assert_eq!(
            extension, ".gz",
            "{stream}: Athena and the console see gzip by the name"
        );
        assert_eq!(ref_target(none), Some("AWS::NoValue"));
    }
}

// ------------------------------------------------------------- alarms --

fn alarms() -> Vec<(&'static str, &'static Value)> {
    resources_of_type("AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(name, r)| (name, &r["Properties"]))
        .collect()
}

fn alarm_on(namespace: &Value, metric: &str) -> &'static Value {
    alarms()
        .into_iter()
        .find(|(_, a)| &a["Namespace"] == namespace && a["MetricName"] == metric)
        .unwrap_or_else(|| panic!("no alarm on {namespace} {metric}"))
        .1
}

fn watches_the_function(alarm: &Value) -> bool {
    let function = function().0;
    listed(&alarm["Dimensions"])
        .into_iter()
        .any(|d| d["Name"] == "FunctionName" && ref_target(&d["Value"]) == Some(function))
}

#[test]
fn alarms_watch_iterator_age_errors_and_throttles() {
    for metric in ["IteratorAge", "Errors", "Throttles"] {
        let alarm = alarm_on(&Value::from("AWS/Lambda"), metric);
        assert!(watches_the_function(alarm), "{metric} alarm is not on the function");
    }
}

#[test]
fn bridge_metric_alarms_use_the_function_s_namespace_and_metric_names() {
    let namespace = &environment()[vars::METRICS_NAMESPACE];
    let parameter_name = ref_target(namespace).expect("METRICS_NAMESPACE is a !Ref");
    assert_eq!(parameter(parameter_name)["Default"], "KinesisFirehoseBridge");
    for (name, alarm) in alarms().into_iter().filter(|(_, a)| &a["Namespace"] == namespace) {
        let metric = literal(&alarm["MetricName"], "MetricName");
        assert!(
            metrics::NAMES.contains(&metric),
            "{name}: the bridge emits no metric {metric}"
        );
        // The EMF line carries one dimension, FunctionName.
        assert!(
            watches_the_function(alarm),
            "{name} is not on the function's FunctionName dimension"
        );
    }
    let dead = alarm_on(namespace, "EventsDeadLettered");
    assert_eq!(dead["ComparisonOperator"], "GreaterThanThreshold");
    assert_eq!(setting(&dead["Threshold"]).default, 0.0);
    let rejected = alarm_on(namespace, "EventsRejected");
    assert_eq!(rejected["ComparisonOperator"], "GreaterThanThreshold");
    assert!(
        ref_target(&rejected["Threshold"]).is_some(),
        "EventsRejected threshold is a parameter"
    );
}

/// The topic the alarms notify: the template's one SNS topic.
fn alarm_topic() -> &'static str {
    let topics = resources_of_type("AWS::SNS::Topic");
    assert_eq!(topics.len(), 1, "expected one alarm topic");
    topics[0].0
}

#[test]
fn every_alarm_says_what_happened_and_notifies_the_encrypted_alarm_topic_when_it_fires_and_clears() {
    let topic = alarm_topic();
    assert!(
        !resource(topic)["Properties"]["KmsMasterKeyId"].is_null(),
        "{topic} is not encrypted"
    );
    for (name, alarm) in alarms() {
        description(name, alarm);
        for actions in ["AlarmActions", "OKActions"] {
            let targets: Vec<&Value> = listed(&alarm[actions]);
            assert_eq!(
                targets.iter().map(|t| ref_target(t)).collect::<Vec<_>>(),
                [Some(topic)],
                "{name}: {actions}"
            );
        }
    }
}

#[test]
fn the_alarm_email_has_no_default_and_is_always_subscribed() {
    let p = parameter("AlarmEmail");
    assert!(
        p.get("Default").is_none(),
        "AlarmEmail must be given by every deployment: {p}"
    );
    assert!(
        number(&p["MinLength"]).is_some_and(|n| n >= 3.0),
        "an empty AlarmEmail must be refused: {p}"
    );
    let emails: Vec<(&str, &Value)> = resources_of_type("AWS::SNS::Subscription")
        .into_iter()
        .filter(|(_, s)| s["Properties"]["Protocol"] == "email")
        .collect();
    assert_eq!(emails.len(), 1, "expected one e-mail subscription");
    let (name, subscription) = emails[0];
    assert!(subscription.get("Condition").is_none(), "{name} must not be optional");
    assert_eq!(ref_target(&subscription["Properties"]["Endpoint"]), Some("AlarmEmail"));
    assert_eq!(ref_target(&subscription["Properties"]["TopicArn"]), Some(alarm_topic()));
}

/// The deploy workflow passes every parameter the template has no default
/// for, always (not through its `add` helper, which drops an empty value),
/// from a variable it refuses to run without.
#[test]
fn the_deploy_workflow_always_passes_the_parameters_without_a_default() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/.github/workflows/deploy.yml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let workflow: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
    let script = workflow["jobs"]["deploy"]["steps"]
        .as_sequence()
        .expect("the deploy job has steps")
        .iter()
        .filter_map(|step| step["run"].as_str())
        .find(|run| run.contains("sam deploy"))
        .expect("a step runs sam deploy");
    let required: Vec<&str> = template()["Parameters"]
        .as_object()
        .expect("template has Parameters")
        .iter()
        .filter(|(_, p)| p.get("Default").is_none())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(required.contains(&"AlarmEmail"), "{required:?}");
    for name in required {
        let prefix = format!("overrides+=(\"{name}=$");
        let variable = script
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.strip_suffix("\")"))
            .unwrap_or_else(|| panic!("{path}: {name} is not always passed (expected {prefix}VARIABLE\"))"));
        assert!(
            script.contains(&format!(": \"${{{variable}:?")),
            "{path}: {name} comes from {variable}, which the step does not require"
        );
    }
}

// ------------------------------------------------ alarms along the path --
//
// Every stage that can drop data alarms. The checks below do not only look
// for the alarms: they run each one, through a small model of how
// CloudWatch evaluates an alarm and its metric math, over the data points a
// healthy, an idle and a failing pipeline would give it.

/// A metric an alarm watches, alone or as one query of its metric math.
#[derive(Debug)]
struct Watched {
    /// The query's Id in the alarm's metric math; `None` for a plain alarm.
    id: Option<&'static str>,
    /// A literal, or the `!Ref` of the bridge's own namespace.
    namespace: &'static Value,
    name: &'static str,
    dimensions: Vec<(&'static str, &'static Value)>,
    stat: &'static str,
    period: f64,
}

impl Watched {
    /// The resource whose `!Ref` is the value of the dimension `name`.
    fn dimension(&self, name: &str) -> Option<&'static str> {
        self.dimensions
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| ref_target(v))
    }
}

fn watched(alarm: &'static Value) -> Vec<Watched> {
    let metric = |id: Option<&'static str>, m: &'static Value, stat: &'static Value, period: &'static Value| Watched {
        id,
        namespace: &m["Namespace"],
        name: literal(&m["MetricName"], "MetricName"),
        dimensions: listed(&m["Dimensions"])
            .into_iter()
            .map(|d| (literal(&d["Name"], "dimension Name"), &d["Value"]))
            .collect(),
        stat: literal(stat, "statistic"),
        period: number(period).unwrap_or_else(|| panic!("Period {period} is not a number")),
    };
    if alarm.get("Metrics").is_some() {
        listed(&alarm["Metrics"])
            .into_iter()
            .filter(|q| q.get("MetricStat").is_some())
            .map(|q| {
                let stat = &q["MetricStat"];
                metric(q["Id"].as_str(), &stat["Metric"], &stat["Stat"], &stat["Period"])
            })
            .collect()
    } else {
        vec![metric(None, alarm, &alarm["Statistic"], &alarm["Period"])]
    }
}

/// The alarms that watch `namespace` `metric`, with that metric.
fn alarms_watching(namespace: &str, metric: &str) -> Vec<(&'static str, &'static Value, Watched)> {
    alarms()
        .into_iter()
        .flat_map(|(name, alarm)| {
            watched(alarm)
                .into_iter()
                .filter(|w| w.namespace == namespace && w.name == metric)
                .map(move |w| (name, alarm, w))
        })
        .collect()
}

/// The one alarm on `metric` of the delivery stream `stream`.
fn stream_alarm(metric: &str, stream: &str) -> (&'static str, &'static Value, Watched) {
    let mut found: Vec<_> = alarms_watching("AWS/Firehose", metric)
        .into_iter()
        .filter(|(_, _, w)| w.dimension("DeliveryStreamName") == Some(stream))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one alarm on {metric} of {stream}, found {:?}",
        found.iter().map(|f| f.0).collect::<Vec<_>>()
    );
    let (name, alarm, metric) = found.remove(0);
    assert_eq!(
        resource(name).get("Condition"),
        resource(stream).get("Condition"),
        "{name} must exist exactly when {stream} does"
    );
    (name, alarm, metric)
}

/// The alarm's description, as written (`${...}` left in).
fn description(name: &str, alarm: &Value) -> &'static str {
    let text = resource(name)["Properties"]["AlarmDescription"]
        .get("Fn::Sub")
        .unwrap_or(&resource(name)["Properties"]["AlarmDescription"]);
    let text = literal(text, "AlarmDescription");
    assert!(!text.trim().is_empty(), "{name}: empty AlarmDescription ({alarm})");
    text
}

/// Data points for one period: each metric's value by metric name; a
/// metric not named has no data point in that period.
type Period<'a> = &'a [(&'a str, f64)];

/// Whether `alarm` is in ALARM after `periods` (oldest first), with the
/// parameters in `params` (the others at their defaults). Only the last
/// EvaluationPeriods periods count, DatapointsToAlarm of them must breach,
/// and a period without a value counts as TreatMissingData says
/// (`missing` and `ignore` taken as not breaching).
fn fires(name: &str, alarm: &Value, periods: &[Period], params: &[(&str, f64)]) -> bool {
    let parameter_value = |p: &str| {
        params
            .iter()
            .find(|(n, _)| *n == p)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| number(&parameter(p)["Default"]).unwrap_or_else(|| panic!("{p} has no default")))
    };
    let n = number(&alarm["EvaluationPeriods"]).expect("EvaluationPeriods") as usize;
    let m = number(&alarm["DatapointsToAlarm"]).map_or(n, |m| m as usize);
    let threshold = match ref_target(&alarm["Threshold"]) {
        Some(p) => parameter_value(p),
        None => number(&alarm["Threshold"]).expect("Threshold"),
    };
    let metrics = watched(resource(name).get("Properties").expect("Properties"));
    let missing_breaches = alarm["TreatMissingData"] == "breaching";
    let recent = &periods[periods.len().saturating_sub(n)..];
    let breaching = (0..n - recent.len())
        .map(|_| None)
        .chain(recent.iter().map(|period| {
            let by_name = |metric: &str| period.iter().find(|(n, _)| *n == metric).map(|(_, v)| *v);
            if alarm.get("Metrics").is_some() {
                let queries = listed(&alarm["Metrics"]);
                let returned: Vec<&&Value> = queries.iter().filter(|q| q["ReturnData"] != false).collect();
                assert_eq!(returned.len(), 1, "{name}: one query returns the alarm's value");
                let expression = substituted(&returned[0]["Expression"], &parameter_value);
                math::eval(&expression, &|id| {
                    let metric = metrics
                        .iter()
                        .find(|w| w.id == Some(id))
                        .unwrap_or_else(|| panic!("{name}: {expression} names no query {id}"));
                    by_name(metric.name)
                })
            } else {
                by_name(metrics[0].name)
            }
        }))
        .map(|value| match value {
            None => missing_breaches,
            Some(v) => match literal(&alarm["ComparisonOperator"], "ComparisonOperator") {
                "GreaterThanThreshold" => v > threshold,
                "GreaterThanOrEqualToThreshold" => v >= threshold,
                "LessThanThreshold" => v < threshold,
                "LessThanOrEqualToThreshold" => v <= threshold,
                other => panic!("{name}: {other}"),
            },
        })
        .filter(|b| *b)
        .count();
    breaching >= m
}

/// A literal string, or an `Fn::Sub` of one with `${Parameter}` replaced.
fn substituted(value: &Value, parameter_value: &dyn Fn(&str) -> f64) -> String {
    let Some(text) = value.get("Fn::Sub") else {
        return literal(value, "Expression").to_owned();
    };
    let mut text = literal(text, "Fn::Sub").to_owned();
    while let Some(start) = text.find("${") {
        let end = start + text[start..].find('}').expect("unclosed ${");
        let name = text[start + 2..end].to_owned();
        text.replace_range(start..=end, &parameter_value(&name).to_string());
    }
    text
}

/// A model of CloudWatch metric math, enough for this template's alarms:
/// numbers, query ids, `+ - * /`, comparisons (1 or 0), `AND`/`&&`,
/// `OR`/`||`, `IF(condition, then, else)` and `FILL(series, value)`. A
/// missing data point (`None`) makes what it touches missing, as in
/// CloudWatch; `FILL` replaces it.
mod math {
    pub fn eval(expression: &str, var: &dyn Fn(&str) -> Option<f64>) -> Option<f64> {
        let mut parser = Parser {
            tokens: tokens(expression),
            at: 0,
            var,
        };
        let value = parser.or();
        assert_eq!(parser.at, parser.tokens.len(), "cannot read all of {expression}");
        value
    }

    fn tokens(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let start = i;
            if c.is_whitespace() {
                i += 1;
                continue;
            } else if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_') {
                    i += 1;
                }
            } else if i + 1 < chars.len()
                && ["==", "!=", ">=", "<=", "&&", "||"].contains(&&*format!("{c}{}", chars[i + 1]))
            {
                i += 2;
            } else if "+-*/(),<>".contains(c) {
                i += 1;
            } else {
                panic!("unexpected {c:?} in {text}");
            }
            out.push(chars[start..i].iter().collect());
        }
        out
    }

    struct Parser<'a> {
        tokens: Vec<String>,
        at: usize,
        var: &'a dyn Fn(&str) -> Option<f64>,
    }

    fn both(a: Option<f64>, b: Option<f64>, f: impl Fn(f64, f64) -> f64) -> Option<f64> {
        Some(f(a?, b?))
    }

    fn truth(b: bool) -> f64 {
        if b { 1.0 } else { 0.0 }
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<&str> {
            self.tokens.get(self.at).map(String::as_str)
        }

        fn take(&mut self, expected: &str) {
            assert_eq!(self.peek(), Some(expected), "at token {}", self.at);
            self.at += 1;
        }

        fn or(&mut self) -> Option<f64> {
            let mut value = self.and();
            while matches!(self.peek(), Some("OR" | "||")) {
                self.at += 1;
                let right = self.and();
                value = both(value, right, |a, b| truth(a != 0.0 || b != 0.0));
            }
            value
        }

        fn and(&mut self) -> Option<f64> {
            let mut value = self.comparison();
            while matches!(self.peek(), Some("AND" | "&&")) {
                self.at += 1;
                let right = self.comparison();
                value = both(value, right, |a, b| truth(a != 0.0 && b != 0.0));
            }
            value
        }

        fn comparison(&mut self) -> Option<f64> {
            let left = self.sum();
            let op = match self.peek() {
                Some(op @ ("==" | "!=" | ">" | "<" | ">=" | "<=")) => op.to_owned(),
                _ => return left,
            };
            self.at += 1;
            let right = self.sum();
            both(left, right, |a, b| {
                truth(match op.as_str() {
                    "==" => a == b,
                    "!=" => a != b,
                    ">" => a > b,
                    "<" => a < b,
                    ">=" => a >= b,
                    _ => a <= b,
                })
            })
        }

        fn sum(&mut self) -> Option<f64> {
            let mut value = self.product();
            while let Some(op @ ("+" | "-")) = self.peek() {
                let minus = op == "-";
                self.at += 1;
                let right = self.product();
                value = both(value, right, |a, b| if minus { a - b } else { a + b });
            }
            value
        }

        fn product(&mut self) -> Option<f64> {
            let mut value = self.primary();
            while let Some(op @ ("*" | "/")) = self.peek() {
                let divide = op == "/";
                self.at += 1;
                let right = self.primary();
                value = both(value, right, |a, b| if divide { a / b } else { a * b });
            }
            value
        }

        fn primary(&mut self) -> Option<f64> {
            let token = self.peek().expect("an expression ends too soon").to_owned();
            self.at += 1;
            if token == "(" {
                let value = self.or();
                self.take(")");
                return value;
            }
            if let Ok(n) = token.parse::<f64>() {
                return Some(n);
            }
            if self.peek() != Some("(") {
                return (self.var)(&token);
            }
            self.take("(");
            let mut args = vec![self.or()];
            while self.peek() == Some(",") {
                self.at += 1;
                args.push(self.or());
            }
            self.take(")");
            match (token.as_str(), args.as_slice()) {
                ("IF", [condition, then, otherwise]) => {
                    if condition.as_ref()? != &0.0 {
                        *then
                    } else {
                        *otherwise
                    }
                }
                ("FILL", [series, value]) => series.or(*value),
                (function, args) => panic!("no model of {function} with {} arguments", args.len()),
            }
        }
    }
}

#[test]
fn every_delivery_stream_alarms_when_its_delivery_to_s3_is_late() {
    for stream in delivery_streams() {
        let (name, alarm, metric) = stream_alarm("DeliveryToS3.DataFreshness", stream);
        assert_eq!(metric.stat, "Maximum", "{name}: the oldest record counts");
        // Records wait in Firehose up to the buffer interval: the alarm must
        // allow that much, whatever BufferIntervalSeconds a deployment
        // chooses, and fire when a record has waited long past it.
        let interval = &s3_destination(stream)["BufferingHints"]["IntervalInSeconds"];
        let parameter_name = ref_target(interval).expect("IntervalInSeconds is a parameter");
        let bounds = setting(interval);
        for buffer in [bounds.lowest, Some(bounds.default), bounds.highest] {
            let buffer = buffer.expect("BufferIntervalSeconds is bounded");
            let params = [(parameter_name, buffer)];
            let freshness = |age: f64| [("DeliveryToS3.DataFreshness", age)];
            assert!(
                !fires(name, alarm, &[&freshness(buffer + 60.0)], &params),
                "{name} fires on a healthy stream (BufferIntervalSeconds {buffer})"
            );
            assert!(
                fires(name, alarm, &[&freshness(buffer + 900.0)], &params),
                "{name} is silent on a record held 15 min past BufferIntervalSeconds {buffer}"
            );
            assert!(!fires(name, alarm, &[&[]], &params), "{name} fires on an idle stream");
        }
        let text = description(name, alarm);
        for needed in ["24 h", "bucket policy", "${FirehoseRole}", "KMS", "${FirehoseLogGroup}"] {
            assert!(
                text.contains(needed),
                "{name}: the description does not mention {needed}"
            );
        }
    }
}

#[test]
fn every_delivery_stream_alarms_when_its_writes_to_s3_keep_failing() {
    for stream in delivery_streams() {
        let (name, alarm, metric) = stream_alarm("DeliveryToS3.Success", stream);
        assert!(["Average", "Minimum"].contains(&metric.stat), "{name}: {}", metric.stat);
        let success = |share: f64| [("DeliveryToS3.Success", share)];
        assert!(fires(name, alarm, &[&success(0.0), &success(0.0)], &[]), "{name}");
        assert!(fires(name, alarm, &[&success(0.9), &success(0.5)], &[]), "{name}");
        assert!(!fires(name, alarm, &[&success(1.0), &success(1.0)], &[]), "{name}");
        assert!(!fires(name, alarm, &[&[], &[]], &[]), "{name} fires on an idle stream");
        // One period with a failed PUT that Firehose's retry then wrote is
        // not worth waking anyone for.
        assert!(!fires(name, alarm, &[&success(1.0), &success(0.9)], &[]), "{name}");
        let text = description(name, alarm);
        for needed in ["24 h", "bucket policy", "${FirehoseRole}", "KMS", "${FirehoseLogGroup}"] {
            assert!(
                text.contains(needed),
                "{name}: the description does not mention {needed}"
            );
        }
    }
}

#[test]
fn every_delivery_stream_alarms_when_firehose_keeps_throttling_it() {
    let rejects = ref_target(&environment()[vars::REJECTS_DELIVERY_STREAM]).unwrap();
    for stream in delivery_streams() {
        let (name, alarm, metric) = stream_alarm("ThrottledRecords", stream);
        assert_eq!(metric.stat, "Sum", "{name}");
        let throttled = |records: f64| [("ThrottledRecords", records)];
        assert!(
            fires(
                name,
                alarm,
                &[&throttled(0.0), &throttled(40.0), &throttled(300.0)],
                &[]
            ),
            "{name}"
        );
        assert!(
            !fires(name, alarm, &[&throttled(0.0), &throttled(0.0), &throttled(0.0)], &[]),
            "{name}"
        );
        assert!(
            !fires(name, alarm, &[&[], &[], &[]], &[]),
            "{name} fires on an idle stream"
        );
        // A single burst is resent by the function; a lasting one alarms.
        assert!(!fires(name, alarm, &[&[], &[], &throttled(10.0)], &[]), "{name}");
        let text = description(name, alarm);
        assert!(
            text.contains("quota"),
            "{name}: the description does not say to ask for a quota"
        );
        if stream != rejects {
            assert!(
                text.contains("DeliveryStreamCount"),
                "{name}: the description does not say to add a delivery stream"
            );
        }
    }
}

#[test]
fn an_alarm_fires_when_lambda_cannot_keep_a_batch_it_gave_up_on() {
    undelivered_bucket(); // the on-failure destination is there to fail
    let found = alarms_watching("AWS/Lambda", "DestinationDeliveryFailures");
    assert_eq!(found.len(), 1, "expected one alarm on DestinationDeliveryFailures");
    let (name, alarm, metric) = &found[0];
    assert_eq!(metric.dimension("FunctionName"), Some(function().0), "{name}");
    assert_eq!(metric.stat, "Sum", "{name}");
    let failures = |n: f64| [("DestinationDeliveryFailures", n)];
    assert!(fires(name, alarm, &[&failures(1.0)], &[]), "{name}");
    assert!(!fires(name, alarm, &[&failures(0.0)], &[]), "{name}");
    assert!(!fires(name, alarm, &[&[]], &[]), "{name}");
    assert!(description(name, alarm).contains("RetentionPeriodHours"), "{name}");
}

#[test]
fn an_alarm_fires_when_records_arrive_but_the_mapping_does_not_invoke_the_function() {
    let stream = arn_of(&kinesis_event()["Stream"]).unwrap();
    let found: Vec<_> = alarms_watching("AWS/Kinesis", "IncomingRecords")
        .into_iter()
        .filter(|(_, _, w)| w.dimension("StreamName") == Some(stream))
        .filter(|(_, alarm, _)| {
            watched(alarm).iter().any(|w| {
                w.name == "Invocations"
                    && w.namespace == "AWS/Lambda"
                    && w.dimension("FunctionName") == Some(function().0)
            })
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one alarm on IncomingRecords against Invocations"
    );
    let (name, alarm, _) = &found[0];
    for metric in watched(alarm) {
        assert_eq!(metric.stat, "Sum", "{name}: {}", metric.name);
        let window = metric.period * number(&alarm["EvaluationPeriods"]).unwrap();
        assert_eq!(window, 900.0, "{name}: a stall is 15 minutes of it");
    }
    let records = ("IncomingRecords", 1000.0);
    let invoked = ("Invocations", 20.0);
    let not_invoking: Period = &[records, ("Invocations", 0.0)];
    let healthy: Period = &[records, invoked];
    let idle_as_zero: Period = &[("IncomingRecords", 0.0)];
    // A disabled mapping invokes nothing and reports nothing: no data point.
    assert!(
        fires(name, alarm, &[&[records], &[records], &[records]], &[]),
        "{name}: disabled"
    );
    assert!(fires(name, alarm, &[not_invoking; 3], &[]), "{name}: not invoking");
    assert!(!fires(name, alarm, &[healthy; 3], &[]), "{name}: healthy");
    assert!(!fires(name, alarm, &[&[], &[], &[]], &[]), "{name}: idle");
    assert!(
        !fires(name, alarm, &[idle_as_zero; 3], &[]),
        "{name}: idle, reported as 0"
    );
    assert!(
        !fires(
            name,
            alarm,
            &[&[records, invoked], &[records], &[records, invoked]],
            &[]
        ),
        "{name}: one quiet period is no stall"
    );
    assert!(
        !fires(name, alarm, &[&[records], &[records], &[records, invoked]], &[]),
        "{name}: it has started again"
    );
    assert!(description(name, alarm).contains("RetentionPeriodHours"), "{name}");
}

// ---------------------------------------------------------- dashboard --

/// The dashboard's body as CloudFormation would render it, with every
/// HasStreamN condition true (`all_streams`) or false, parameters at their
/// defaults and each resource's name standing for itself.
fn dashboard(all_streams: bool) -> Value {
    let dashboards = resources_of_type("AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "expected one dashboard");
    let body = &dashboards[0].1["Properties"]["DashboardBody"]["Fn::Sub"];
    let (text, variables) = match listed(body).as_slice() {
        [text, variables] => (literal(text, "DashboardBody"), *variables),
        _ => panic!("DashboardBody is not an Fn::Sub of a text and its variables"),
    };
    fn render(text: &str, lookup: &dyn Fn(&str) -> String) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            let end = start + rest[start..].find('}').expect("unclosed ${");
            out.push_str(&rest[..start]);
            out.push_str(&lookup(&rest[start + 2..end]));
            rest = &rest[end + 1..];
        }
        out + rest
    }
    let plain = |name: &str| -> String {
        if name == "AWS::Region" {
            return "us-east-1".to_owned();
        }
        if let Some(p) = template()["Parameters"].get(name) {
            return match &p["Default"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
        }
        assert!(
            resources().contains_key(name),
            "the dashboard names ${{{name}}}, which is not in the template"
        );
        name.to_owned()
    };
    let variable = |name: &str| -> String {
        let Some(value) = variables.get(name) else {
            return plain(name);
        };
        let (_, then, otherwise) = if_of(value);
        let chosen = if all_streams { then } else { otherwise };
        match chosen.get("Fn::Sub") {
            Some(text) => render(literal(text, name), &plain),
            None => literal(chosen, name).to_owned(),
        }
    };
    let rendered = render(text, &variable);
    serde_json::from_str(&rendered)
        .unwrap_or_else(|e| panic!("the dashboard body (all streams: {all_streams}) is not JSON: {e}\n{rendered}"))
}

/// Each metric a widget draws: namespace, metric name and dimensions, with
/// the body's "." (as the row above) and "..." (all of the row above)
/// resolved.
fn dashboard_metrics(widget: &Value) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for row in listed(&widget["properties"]["metrics"]) {
        let items: Vec<&str> = listed(row).into_iter().filter_map(Value::as_str).collect();
        let previous = rows.last().cloned().unwrap_or_default();
        let resolved: Vec<String> = if items == ["..."] {
            previous
        } else {
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match *item {
                    "." => previous.get(i).cloned().expect("\".\" with nothing above it"),
                    other => other.to_owned(),
                })
                .collect()
        };
        rows.push(resolved);
    }
    rows
}

#[test]
fn the_dashboard_renders_for_one_to_four_streams_and_shows_each_one_s_freshness_and_throttling() {
    let rejects = ref_target(&environment()[vars::REJECTS_DELIVERY_STREAM]).unwrap();
    for all_streams in [false, true] {
        let body = dashboard(all_streams);
        let widgets = listed(&body["widgets"]);
        // Widgets on CloudWatch's 24-column grid, none over another.
        let places: Vec<[f64; 4]> = widgets
            .iter()
            .map(|w| {
                ["x", "y", "width", "height"]
                    .map(|k| number(&w[k]).unwrap_or_else(|| panic!("widget without {k}: {w}")))
            })
            .collect();
        for (i, [x, y, w, h]) in places.iter().enumerate() {
            assert!(x + w <= 24.0, "widget {i} is wider than the grid");
            for [x2, y2, w2, h2] in &places[i + 1..] {
                assert!(
                    x + w <= *x2 || x2 + w2 <= *x || y + h <= *y2 || y2 + h2 <= *y,
                    "widget {i} overlaps another"
                );
            }
        }
        let metrics: Vec<Vec<String>> = widgets
            .iter()
            .filter(|w| w["type"] == "metric")
            .flat_map(|w| dashboard_metrics(w))
            .collect();
        let present: Vec<&str> = delivery_streams()
            .into_iter()
            .filter(|s| all_streams || resource(s).get("Condition").is_none())
            .collect();
        for metric in ["DeliveryToS3.DataFreshness", "ThrottledRecords", "DeliveryToS3.Success"] {
            let shown: BTreeSet<&str> = metrics
                .iter()
                .filter(|m| m[..3] == ["AWS/Firehose", metric, "DeliveryStreamName"])
                .map(|m| m[3].as_str())
                .collect();
            assert_eq!(
                shown,
                present.iter().copied().collect(),
                "{metric} per delivery stream (all streams: {all_streams})"
            );
            assert!(shown.contains(rejects));
        }
        // The bridge's own metrics are ones it emits.
        let namespace = parameter("MetricsNamespace")["Default"].as_str().unwrap();
        for m in metrics.iter().filter(|m| m[0] == namespace) {
            assert!(
                metrics::NAMES.contains(&m[1].as_str()),
                "the bridge emits no metric {}",
                m[1]
            );
        }
        let advice: Vec<&str> = widgets
            .iter()
            .filter(|w| w["type"] == "text")
            .filter_map(|w| w["properties"]["markdown"].as_str())
            .collect();
        assert!(
            advice
                .iter()
                .any(|t| t.contains("Throttled") && t.contains("DeliveryStreamCount") && t.contains("quota")),
            "no text on the dashboard says what to do about throttling: {advice:?}"
        );
    }
}

// --------------------------------------------------------------- lake --
//
// The lake: Glue tables over what the delivery streams write, and an
// Athena workgroup to query them in. Partition projection must compute the
// very prefixes the streams write (else a query finds nothing, silently);
// the columns must be what the bridge writes: the default contract's fields
// (`event::CONTRACT_FIELDS`) and the fields of a reject line (`RejectLine`),
// taken from the library, not restated here. `make demo` reads the
// delivered objects back with DuckDB through these same tables
// (`bridge_local::lake`).

/// Every Glue table: its `TableInput` by table name.
fn lake_tables() -> Vec<(&'static str, &'static Value)> {
    resources_of_type("AWS::Glue::Table")
        .into_iter()
        .map(|(_, r)| {
            let input = &r["Properties"]["TableInput"];
            (literal(&input["Name"], "TableInput.Name"), input)
        })
        .collect()
}

fn lake_table(name: &str) -> &'static Value {
    lake_tables()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("no Glue table {name}"))
}

fn columns(table: &'static Value, key: &str) -> Vec<(&'static str, &'static str)> {
    listed(&table[key])
        .into_iter()
        .map(|c| (literal(&c["Name"], "column Name"), literal(&c["Type"], "column Type")))
        .collect()
}

/// The bucket the delivery streams write to (one, checked above).
fn lake_bucket() -> &'static str {
    let stream = delivery_streams().into_iter().next().expect("a delivery stream");
    arn_of(&s3_destination(stream)["BucketARN"]).expect("BucketARN is a !GetAtt Arn")
}

/// The Prefix the delivery streams writing under `folder/` share.
fn written_prefix(folder: &str) -> &'static str {
    let prefixes: BTreeSet<&str> = delivery_streams()
        .into_iter()
        .map(|s| literal(&s3_destination(s)["Prefix"], "Prefix"))
        .filter(|p| p.starts_with(&format!("{folder}/")))
        .collect();
    assert_eq!(prefixes.len(), 1, "streams writing under {folder}/: {prefixes:?}");
    prefixes.first().unwrap()
}

/// The Firehose `!{timestamp:...}` format whose text an integer partition
/// projection produces, if any: the full year, or a two-digit month, day
/// or hour.
fn firehose_format(projection: &Map<String, Value>, column: &str) -> Option<&'static str> {
    let get = |what: &str| {
        projection
            .get(&format!("projection.{column}.{what}"))
            .and_then(Value::as_str)
    };
    if get("type")? != "integer" {
        return None;
    }
    let (low, high) = get("range")?.split_once(',')?;
    let (low, high): (u32, u32) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
    match (get("digits")?, low, high) {
        ("4", low, high) if (2000..=high).contains(&low) && high <= 9999 => Some("yyyy"),
        ("2", 1, 12) => Some("MM"),
        ("2", 1, 31) => Some("dd"),
        ("2", 0, 23) => Some("HH"),
        _ => None,
    }
}

#[test]
fn lake_tables_project_exactly_the_partitions_the_delivery_streams_write() {
    let bucket = lake_bucket();
    let tables = lake_tables();
    assert_eq!(
        tables.iter().map(|(n, _)| *n).collect::<BTreeSet<_>>(),
        BTreeSet::from(["events", "events_raw", "rejects"])
    );
    let databases = resources_of_type("AWS::Glue::Database");
    assert_eq!(databases.len(), 1, "one database");
    for (_, table) in resources_of_type("AWS::Glue::Table") {
        assert_eq!(ref_target(&table["Properties"]["DatabaseName"]), Some(databases[0].0));
    }
    for (name, table) in tables {
        let folder = if name == "rejects" { "rejects" } else { "events" };
        let prefix = written_prefix(folder);
        assert_eq!(table["TableType"], "EXTERNAL_TABLE", "{name}");
        let parameters = table["Parameters"].as_object().expect("table Parameters");
        assert_eq!(parameters["projection.enabled"], "true", "{name}: no crawler needed");
        assert_eq!(
            table["StorageDescriptor"]["Location"]["Fn::Sub"],
            format!("s3://${{{bucket}}}/{folder}/"),
            "{name}: Location"
        );
        let location = parameters["storage.location.template"]["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: storage.location.template is not a !Sub"));
        let mut path = location
            .strip_prefix(&format!("s3://${{{bucket}}}/"))
            .unwrap_or_else(|| panic!("{name}: {location} is not in the streams' bucket"))
            .to_owned();
        // `${!column}` is the literal `${column}` Athena fills in.
        let keys = columns(table, "PartitionKeys");
        for (column, ty) in &keys {
            assert_eq!(*ty, "string", "{name}: partition {column}");
            let format = firehose_format(parameters, column)
                .unwrap_or_else(|| panic!("{name}: partition {column} projects no Firehose timestamp field"));
            let placeholder = format!("${{!{column}}}");
            assert!(path.contains(&placeholder), "{name}: {location} lacks {placeholder}");
            path = path.replace(&placeholder, &format!("!{{timestamp:{format}}}"));
        }
        assert_eq!(
            path, prefix,
            "{name}: the projected partitions are the prefixes the delivery streams write"
        );
        // The partition keys come in the order of the path.
        let order: Vec<usize> = keys
            .iter()
            .filter_map(|(c, _)| location.find(&format!("${{!{c}}}")))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{name}: {keys:?}");
        assert_eq!(
            table["StorageDescriptor"]["InputFormat"], "org.apache.hadoop.mapred.TextInputFormat",
            "{name}: text lines (gzip by the .gz name)"
        );
    }
}

#[test]
fn events_table_has_the_contract_s_fields_and_events_raw_each_event_whole() {
    let events = lake_table("events");
    let expected: Vec<(&str, &str)> = event::CONTRACT_FIELDS.iter().map(|f| (*f, "string")).collect();
    assert_eq!(columns(&events["StorageDescriptor"], "Columns"), expected);
    let serde = &events["StorageDescriptor"]["SerdeInfo"];
    assert_eq!(serde["SerializationLibrary"], "org.openx.data.jsonserde.JsonSerDe");
    assert_eq!(
        serde["Parameters"]["case.insensitive"], "false",
        "the contract's names are case-sensitive"
    );

    let raw = lake_table("events_raw");
    assert_eq!(columns(&raw["StorageDescriptor"], "Columns"), vec![("event", "string")]);
    let serde = &raw["StorageDescriptor"]["SerdeInfo"];
    assert_eq!(
        serde["SerializationLibrary"],
        "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe"
    );
    let delimiter = literal(&serde["Parameters"]["field.delim"], "field.delim");
    assert_eq!(delimiter, "\u{1}");
    // The whole line is one field because a line the bridge delivers never
    // holds the delimiter: a raw control character is not JSON, and an
    // escaped one stays escaped.
    let ts = "2026-01-01T00:00:00Z";
    let raw_control = format!("{{\"event_type\":\"a\u{1}\",\"timestamp\":\"{ts}\"}}");
    assert!(event::Contract::Default.check(raw_control.as_bytes()).is_err());
    let escaped = format!("{{\"event_type\":\"a\\u0001\",\n \"timestamp\":\"{ts}\"}}");
    let line = event::Contract::Default.check(escaped.as_bytes()).expect("valid");
    assert!(!line.contains(&1) && !line.contains(&b'\n'), "{line:?}");
}

/// The Hive type of a JSON value as a reject line writes it.
fn hive_type(value: &Value) -> String {
    match value {
        Value::String(_) => "string".to_owned(),
        Value::Number(n) if n.is_f64() => "double".to_owned(),
        Value::Number(_) => "bigint".to_owned(),
        Value::Bool(_) => "boolean".to_owned(),
        Value::Array(items) => format!("array<{}>", hive_type(&items[0])),
        Value::Object(fields) => {
            let mut fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}:{}", hive_type(v))).collect();
            fields.sort();
            format!("struct<{}>", fields.join(","))
        }
        Value::Null => panic!("a null field has no type"),
    }
}

/// `struct<b:x,a:y>` as `struct<a:y,b:x>`: field order does not matter.
fn sorted_struct(ty: &str) -> String {
    match ty.strip_prefix("struct<").and_then(|t| t.strip_suffix('>')) {
        Some(fields) => {
            let mut fields: Vec<&str> = fields.split(',').collect();
            fields.sort_unstable();
            format!("struct<{}>", fields.join(","))
        }
        None => ty.to_owned(),
    }
}

#[test]
fn rejects_table_has_every_field_of_a_reject_line_with_its_type() {
    // A line with every optional field present.
    let line = RejectLine {
        reason: "too_large".into(),
        detail: "what to fix".into(),
        sequence_number: "4965".into(),
        sub_sequence_number: Some(3),
        partition_key: "k".into(),
        partition_key_md5: Some("0cc175b9c0f1b6a831c399e269772661".into()),
        approximate_arrival_timestamp: 1_764_072_000.123,
        truncated: vec!["partition_key".into()],
        data: "eyJ9".into(),
        part: Some(Part {
            group: "g".into(),
            index: 1,
            count: 2,
        }),
    };
    let written = serde_json::to_value(&line).unwrap();
    let mut expected: Vec<(String, String)> = written
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), hive_type(v)))
        .collect();
    expected.sort();
    let rejects = lake_table("rejects");
    let mut declared: Vec<(String, String)> = columns(&rejects["StorageDescriptor"], "Columns")
        .into_iter()
        .map(|(c, t)| (c.to_owned(), sorted_struct(t)))
        .collect();
    declared.sort();
    assert_eq!(declared, expected);
    assert_eq!(
        rejects["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"],
        "org.openx.data.jsonserde.JsonSerDe"
    );
}

#[test]
fn athena_workgroup_encrypts_results_bounds_scans_and_keeps_results_a_short_time() {
    let groups = resources_of_type("AWS::Athena::WorkGroup");
    assert_eq!(groups.len(), 1);
    let config = &groups[0].1["Properties"]["WorkGroupConfiguration"];
    assert_eq!(
        config["EnforceWorkGroupConfiguration"],
        Value::Bool(true),
        "clients cannot drop the encryption or the cutoff"
    );
    let encryption = &config["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"];
    assert!(
        ["SSE_S3", "SSE_KMS", "CSE_KMS"].contains(&literal(encryption, "EncryptionOption")),
        "{encryption}"
    );
    // Athena's smallest cutoff is 10 MB.
    let cutoff = setting(&config["BytesScannedCutoffPerQuery"]);
    assert!(cutoff.lowest.is_some_and(|l| l >= 10_000_000.0), "{cutoff:?}");
    assert!(cutoff.default >= 10_000_000.0 && cutoff.highest.is_none_or(|h| h >= cutoff.default));
    let bucket = lake_bucket();
    assert_eq!(
        config["ResultConfiguration"]["OutputLocation"]["Fn::Sub"],
        format!("s3://${{{bucket}}}/athena-results/")
    );
    let rules = listed(&resource(bucket)["Properties"]["LifecycleConfiguration"]["Rules"]);
    assert!(
        rules.iter().any(|r| r["Prefix"] == "athena-results/"
            && r["Status"] == "Enabled"
            && number(&r["ExpirationInDays"]).is_some_and(|d| d <= 30.0)),
        "query results expire: {rules:?}"
    );
}

#[test]
fn lake_query_policy_reads_the_tables_and_writes_only_query_results() {
    let bucket = lake_bucket();
    let statements: Vec<&Value> = policy_statements()
        .into_iter()
        .filter(|(place, _)| place == "LakeQueryPolicy")
        .map(|(_, s)| s)
        .collect();
    assert!(!statements.is_empty());
    let readable = ["events/", "rejects/", "athena-results/"].map(|p| objects_under(bucket, p));
    for statement in statements {
        assert_eq!(statement["Effect"], "Allow");
        for r in listed(&statement["Resource"]) {
            assert_ne!(r, "*", "{statement}");
        }
        for action in actions(statement) {
            assert!(
                ["athena:", "glue:Get", "s3:"].iter().any(|p| action.starts_with(p)),
                "{action}"
            );
            let resources = listed(&statement["Resource"]);
            match action {
                "s3:PutObject" | "s3:AbortMultipartUpload" | "s3:ListMultipartUploadParts" => {
                    assert_eq!(resources, vec![&objects_under(bucket, "athena-results/")]);
                }
                "s3:GetObject" => assert!(resources.iter().all(|r| readable.contains(r)), "{resources:?}"),
                "s3:ListBucket" | "s3:GetBucketLocation" => {
                    assert!(resources.iter().all(|r| arn_of(r) == Some(bucket)));
                }
                a if a.starts_with("athena:") => {
                    let workgroup = resources_of_type("AWS::Athena::WorkGroup")[0].0;
                    assert!(
                        resources.iter().all(|r| refs_within(r).contains(workgroup)
                            || r["Fn::Sub"]
                                .as_str()
                                .is_some_and(|s| s.contains(&format!("${{{workgroup}}}")))),
                        "{action}: {resources:?}"
                    );
                }
                a if a.starts_with("glue:") => {}
                other => panic!("unexpected action {other}"),
            }
        }
    }
}

#[test]
fn a_ready_query_counts_events_per_type_per_hour() {
    let query = &template()["Outputs"]["EventsPerTypePerHourQuery"]["Value"]["Fn::Sub"];
    let query = literal(query, "the query");
    let events = resources()
        .iter()
        .find(|(_, r)| r["Type"] == "AWS::Glue::Table" && r["Properties"]["TableInput"]["Name"] == "events")
        .map(|(id, _)| id.as_str())
        .unwrap();
    let database = resources_of_type("AWS::Glue::Database")[0].0;
    assert!(
        query.contains(&format!("FROM \"${{{database}}}\".\"${{{events}}}\"")),
        "{query}"
    );
    let group_by = query.split("GROUP BY").nth(1).expect("GROUP BY");
    for column in ["year", "month", "day", "hour", event::EVENT_TYPE] {
        assert!(group_by.contains(column), "{column}: {query}");
    }
}

// ---------------------------------------------------------------- replay --

fn replay_function() -> (&'static str, &'static Value) {
    function_of("kinesis-firehose-replay")
}

fn role_statements(function: &Value) -> Vec<&'static Value> {
    let role = arn_of(&function["Properties"]["Role"]).expect("a role of this template");
    policy_statements()
        .into_iter()
        .filter(|(place, _)| place.split('/').next() == Some(role))
        .map(|(_, s)| s)
        .collect()
}

#[test]
fn the_replay_function_is_built_from_this_crate_and_has_the_bridge_s_environment() {
    let (_, replay) = replay_function();
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("name = \"kinesis-firehose-replay\""),
        "a binary of this crate"
    );
    assert_eq!(
        replay["Properties"]["Environment"],
        function().1["Properties"]["Environment"],
        "the replay must read the same settings from the same parameters as the bridge"
    );
    assert_eq!(
        replay["Properties"]["Architectures"],
        function().1["Properties"]["Architectures"]
    );
    assert!(
        replay["Properties"].get("Events").is_none(),
        "invoked by an operator only"
    );
}

#[test]
fn the_replay_role_reads_only_the_recovery_prefixes_and_deletes_only_its_markers() {
    let (_, replay) = replay_function();
    let bucket = undelivered_bucket();
    let recovery = ["dead-letters/*", "rejects-unsent/*", "aws/lambda/*", "rejects/*"];
    let mut granted: BTreeSet<(String, String)> = BTreeSet::new();
    for statement in role_statements(replay) {
        assert_eq!(statement["Effect"], "Allow");
        for action in actions(statement) {
            assert!(!action.contains('*'), "no wildcard actions: {action}");
            if !action.starts_with("s3:") {
                assert!(["firehose:PutRecordBatch", "logs:CreateLogStream", "logs:PutLogEvents"].contains(&action));
                continue;
            }
            for element in listed(&statement["Resource"]) {
                let under = recovery
                    .iter()
                    .chain(&["replay-markers/"])
                    .map(|p| p.trim_end_matches('*'))
                    .find(|p| *element == objects_under(bucket, p));
                match (action, under) {
                    ("s3:ListBucket", _) => assert_eq!(arn_of(element), Some(bucket)),
                    (_, Some(prefix)) => {
                        granted.insert((action.to_owned(), format!("{prefix}*")));
                    }
                    (_, None) => panic!("{action} on {element}: not a prefix of the stack's bucket it needs"),
                }
            }
            if action == "s3:ListBucket" {
                let prefixes: Vec<&str> = listed(&statement["Condition"]["StringLike"]["s3:prefix"])
                    .into_iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert_eq!(prefixes, recovery, "listing only the recovery prefixes");
            }
        }
    }
    let on = |action: &str| -> BTreeSet<String> {
        granted
            .iter()
            .filter(|(a, _)| a == action)
            .map(|(_, r)| r.clone())
            .collect()
    };
    assert_eq!(on("s3:GetObject"), recovery.iter().map(|p| p.to_string()).collect());
    assert_eq!(on("s3:DeleteObject"), BTreeSet::from(["replay-markers/*".to_owned()]));
    assert_eq!(
        on("s3:PutObject"),
        BTreeSet::from(["dead-letters/*", "rejects-unsent/*", "replay-markers/*"].map(str::to_owned))
    );
}

#[test]
fn a_stack_output_gives_the_one_command_that_replays_a_prefix() {
    let command = serde_json::to_string(&template()["Outputs"]["ReplayCommand"]["Value"]).unwrap();
    assert!(
        command.contains("tools/replay --function ${ReplayFunction}"),
        "{command}"
    );
    assert!(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tools/replay")
            .exists()
    );
}
