//! The AWS clients both functions build at cold start, from the
//! environment (region, credentials, `AWS_ENDPOINT_URL`).

use aws_config::SdkConfig;

use crate::firehose::SdkFirehose;

/// The SDK's shared configuration.
pub async fn sdk_config() -> SdkConfig {
    aws_config::load_from_env().await
}

pub fn firehose(sdk: &SdkConfig) -> SdkFirehose {
    SdkFirehose::new(aws_sdk_firehose::Client::new(sdk))
}

/// An S3 client; path-style addressing only against a local endpoint, where
/// a bucket cannot be a subdomain of 127.0.0.1.
pub fn s3(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let local_endpoint = sdk.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(local_endpoint)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
