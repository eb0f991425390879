//! The settings `template.yaml` deploys for the event source mapping and
//! the function, read from the template itself, so that the local pipeline
//! runs the mapping and the function the way they are deployed: one source
//! for them.
//!
//! The YAML is read with `serde_norway`, which keeps CloudFormation's short
//! tags; a `!Ref` to a parameter takes the parameter's default.

use std::path::Path;
use std::time::Duration;

use serde_norway::Value;

use crate::Result;

/// The binary the bridge function is built from (`Cargo.toml`).
pub const BRIDGE_BINARY: &str = "kinesis-firehose-bridge";

/// What the template deploys.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployed {
    pub batch_size: usize,
    pub maximum_batching_window: Duration,
    pub parallelization_factor: u32,
    pub maximum_retry_attempts: u32,
    pub maximum_record_age: Duration,
    pub bisect_batch_on_function_error: bool,
    pub report_batch_item_failures: bool,
    pub starting_position: String,
    /// The on-failure destination's resource type, e.g. `AWS::S3::Bucket`.
    pub on_failure_destination: String,
    pub function_timeout: Duration,
    pub function_memory_mb: u32,
    /// The function's environment variables that the template sets from a
    /// parameter, with the parameter's default (e.g. `COMPRESSION=gzip`);
    /// those it sets to a resource's name (the streams, the bucket) are
    /// left to the local run.
    pub function_environment: Vec<(String, String)>,
}

impl Deployed {
    /// The repository's `template.yaml`.
    pub fn from_repo() -> Result<Self> {
        Self::read(&crate::repo_root().join("template.yaml"))
    }

    /// Reads the bridge function's settings (the one built from
    /// [`BRIDGE_BINARY`]) from the template at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let template: Value =
            serde_norway::from_str(&text).map_err(|e| format!("{} is not YAML: {e}", path.display()))?;
        let at = |what: &str| format!("{}: {what}", path.display());
        let resources = template.get("Resources").ok_or_else(|| at("no Resources"))?;
        let functions: Vec<&Value> = resources
            .as_mapping()
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|r| r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function"))
            .filter(|r| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(BRIDGE_BINARY))
            .collect();
        let [function] = functions[..] else {
            return Err(at(&format!(
                "expected one AWS::Serverless::Function built from {BRIDGE_BINARY}, found {}",
                functions.len()
            ))
            .into());
        };
        let properties = &function["Properties"];
        let event = properties["Events"]
            .as_mapping()
            .into_iter()
            .flat_map(|m| m.values())
            .find(|e| e.get("Type").and_then(Value::as_str) == Some("Kinesis"))
            .ok_or_else(|| at("the function has no Kinesis event"))?;
        let esm = &event["Properties"];
        let resolve =
            |value: &Value, name: &str| -> Result<Value> { resolve(&template, value).ok_or_else(|| at(name).into()) };
        let number = |value: &Value, name: &str| -> Result<u64> {
            let value = resolve(value, name)?;
            value
                .as_u64()
                .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| at(&format!("{name} is not a whole number: {value:?}")).into())
        };
        let flag = |value: &Value, name: &str| -> Result<bool> {
            resolve(value, name)?
                .as_bool()
                .ok_or_else(|| at(&format!("{name} is not true or false")).into())
        };
        let destination = &esm["DestinationConfig"]["OnFailure"]["Destination"];
        let destination_resource =
            get_att_resource(destination).ok_or_else(|| at("OnFailure.Destination is not a !GetAtt"))?;
        let on_failure_destination = resources[destination_resource]["Type"]
            .as_str()
            .ok_or_else(|| at(&format!("no resource {destination_resource}")))?
            .to_owned();
        Ok(Deployed {
            batch_size: number(&esm["BatchSize"], "BatchSize")? as usize,
            maximum_batching_window: Duration::from_secs(number(
                &esm["MaximumBatchingWindowInSeconds"],
                "MaximumBatchingWindowInSeconds",
            )?),
            parallelization_factor: number(&esm["ParallelizationFactor"], "ParallelizationFactor")? as u32,
            maximum_retry_attempts: number(&esm["MaximumRetryAttempts"], "MaximumRetryAttempts")? as u32,
            maximum_record_age: Duration::from_secs(number(
                &esm["MaximumRecordAgeInSeconds"],
                "MaximumRecordAgeInSeconds",
            )?),
            bisect_batch_on_function_error: flag(&esm["BisectBatchOnFunctionError"], "BisectBatchOnFunctionError")?,
            report_batch_item_failures: esm["FunctionResponseTypes"]
                .as_sequence()
                .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("ReportBatchItemFailures"))),
            starting_position: resolve(&esm["StartingPosition"], "StartingPosition")?
                .as_str()
                .ok_or_else(|| at("StartingPosition is not a string"))?
                .to_owned(),
            on_failure_destination,
            function_timeout: Duration::from_secs(number(&properties["Timeout"], "Timeout")?),
            function_memory_mb: number(&properties["MemorySize"], "MemorySize")? as u32,
            function_environment: function_environment(&template, &properties["Environment"]["Variables"]),
        })
    }
}

/// A value, or the default of the parameter a `!Ref` names.
fn resolve(template: &Value, value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Tagged(tagged) if tagged.tag == "Ref" => {
            let name = tagged.value.as_str()?;
            template.get("Parameters")?.get(name)?.get("Default").cloned()
        }
        Value::Tagged(_) => None,
        other => Some(other.clone()),
    }
}

/// The variables set from a parameter, with its default, in the template's
/// order.
fn function_environment(template: &Value, variables: &Value) -> Vec<(String, String)> {
    variables
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            let text = match resolve(template, value)? {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((name.as_str()?.to_owned(), text))
        })
        .collect()
}

/// The resource of `!GetAtt Resource.Attribute`.
fn get_att_resource(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => tagged.value.as_str()?.split('.').next(),
        _ => None,
    }
}

/// A parameter of the template: its default, its `AllowedValues`, and its
/// `MinValue` and `MaxValue`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parameter {
    pub default: Option<String>,
    pub allowed: Vec<String>,
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl Parameter {
    /// The largest value it takes: its `MaxValue`, or its largest allowed
    /// number.
    pub fn largest(&self) -> Option<u64> {
        self.max
            .or_else(|| self.allowed.iter().filter_map(|v| v.parse().ok()).max())
    }
}

/// The parameters of the template at `path`, by name.
pub fn parameters(path: &Path) -> Result<std::collections::BTreeMap<String, Parameter>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let template: Value = serde_norway::from_str(&text).map_err(|e| format!("{} is not YAML: {e}", path.display()))?;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut found = std::collections::BTreeMap::new();
    for (name, p) in template
        .get("Parameters")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
    {
        let Some(name) = name.as_str() else { continue };
        let parameter = Parameter {
            default: p.get("Default").and_then(scalar),
            allowed: p
                .get("AllowedValues")
                .and_then(Value::as_sequence)
                .map(|values| values.iter().filter_map(scalar).collect())
                .unwrap_or_default(),
            min: p.get("MinValue").and_then(Value::as_u64),
            max: p.get("MaxValue").and_then(Value::as_u64),
        };
        found.insert(name.to_owned(), parameter);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_s_template() {
        let deployed = Deployed::from_repo().unwrap();
        assert_eq!(deployed.batch_size, 500);
        assert_eq!(deployed.parallelization_factor, 1);
        assert!(deployed.bisect_batch_on_function_error);
        assert!(deployed.report_batch_item_failures);
        assert_eq!(deployed.starting_position, "TRIM_HORIZON");
        assert_eq!(deployed.on_failure_destination, "AWS::S3::Bucket");
        assert!(deployed.maximum_retry_attempts > 0);
        assert!(deployed.function_timeout >= Duration::from_secs(10));
        // The bridge's settings, from the parameters' defaults; the names
        // of this stack's resources are not among them.
        let env: std::collections::HashMap<&str, &str> = deployed
            .function_environment
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env.get("COMPRESSION"), Some(&"gzip"));
        assert_eq!(env.get("PACK_EVENTS"), Some(&"true"));
        assert_eq!(env.get("ON_PARTIAL_FAILURE"), Some(&"log"));
        assert_eq!(env.get("MAX_PUT_ATTEMPTS"), Some(&"5"));
        assert!(!env.contains_key("DELIVERY_STREAMS") && !env.contains_key("UNDELIVERED_BUCKET"));
    }

    #[test]
    fn reads_the_parameters_defaults_and_allowed_values() {
        let parameters = parameters(&crate::repo_root().join("template.yaml")).unwrap();
        let compression = &parameters["Compression"];
        assert_eq!(compression.default.as_deref(), Some("gzip"));
        assert_eq!(compression.allowed, ["gzip", "none"]);
        let streams = &parameters["DeliveryStreamCount"];
        assert_eq!(streams.allowed.first().map(String::as_str), Some("1"));
        assert!(streams.largest().is_some_and(|n| n >= 4));
        let shards = &parameters["ShardCount"];
        assert_eq!(shards.default.as_deref(), Some("10"));
        assert_eq!((shards.min, shards.largest()), (Some(1), Some(10_000)));
    }

    #[test]
    fn a_missing_setting_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("bridge-local-template-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("template.yaml");
        std::fs::write(
            &path,
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: kinesis-firehose-bridge\n    Properties:\n      Events:\n        S:\n          Type: Kinesis\n          Properties: {}\n",
        )
        .unwrap();
        let error = Deployed::read(&path).unwrap_err().to_string();
        assert!(
            error.contains("OnFailure.Destination") || error.contains("BatchSize"),
            "{error}"
        );
    }
}
