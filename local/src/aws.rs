//! SDK clients for the local endpoints: region us-east-1, dummy
//! credentials, and an explicit endpoint on 127.0.0.1, so that nothing here
//! can reach real AWS by accident.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_firehose::config::Credentials;

pub const REGION: &str = "us-east-1";
/// moto's default account, used in the ARNs the event source mapping writes.
pub const ACCOUNT: &str = "123456789012";

/// Shared SDK configuration for `endpoint` (e.g. `http://127.0.0.1:5000`).
pub async fn config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "bridge-local"))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// The Kinesis, Firehose and S3 clients of one local endpoint.
#[derive(Debug, Clone)]
pub struct Clients {
    pub kinesis: aws_sdk_kinesis::Client,
    pub firehose: aws_sdk_firehose::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    pub async fn new(endpoint: &str) -> Self {
        Self::split(endpoint, endpoint).await
    }

    /// Kinesis at one endpoint, Firehose and S3 (which Firehose writes to)
    /// at another.
    pub async fn split(kinesis_endpoint: &str, firehose_endpoint: &str) -> Self {
        let firehose_config = config(firehose_endpoint).await;
        Clients {
            kinesis: aws_sdk_kinesis::Client::new(&config(kinesis_endpoint).await),
            firehose: aws_sdk_firehose::Client::new(&firehose_config),
            s3: s3(&firehose_config),
        }
    }
}

/// S3 with path-style addressing: a bucket name cannot be a subdomain of
/// 127.0.0.1.
pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(true).build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// A Firehose client for `endpoint` (moto, or the fault proxy in front of it).
pub async fn firehose(endpoint: &str) -> aws_sdk_firehose::Client {
    aws_sdk_firehose::Client::new(&config(endpoint).await)
}
