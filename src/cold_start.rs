//! What both functions do at cold start: logging, then the configuration
//! and the contract from the process environment (a bad one stops the
//! function at init, the variable or file named), then the AWS clients.

use crate::event::Contract;
use crate::firehose::SdkFirehose;
use crate::store::S3Store;
use crate::{Config, clients, telemetry};

/// A function's parts, loaded once.
pub struct ColdStart {
    pub config: Config,
    pub contract: Contract,
    pub firehose: SdkFirehose,
    pub s3: aws_sdk_s3::Client,
}

impl ColdStart {
    /// Logging, configuration, contract, clients. A bucket that is missing
    /// or not writable is not an init error: S3 may come back, and until
    /// then what it cannot take is handed back.
    pub async fn from_env() -> Result<Self, lambda_runtime::Error> {
        telemetry::init(|name| std::env::var(name).ok());
        let config = Config::from_env().inspect_err(|e| tracing::error!(kind = "init_error", "{e}"))?;
        let contract = Contract::load(config.event_schema_file.as_deref(), config.event_schema_formats)
            .inspect_err(|e| tracing::error!(kind = "init_error", "{e}"))?;
        let sdk = clients::sdk_config().await;
        Ok(ColdStart {
            firehose: clients::firehose(&sdk),
            s3: clients::s3(&sdk),
            config,
            contract,
        })
    }

    /// The store for the configured bucket, if any.
    pub fn store(&self) -> Option<S3Store> {
        self.config
            .undelivered_bucket
            .as_ref()
            .map(|bucket| S3Store::new(self.s3.clone(), bucket))
    }
}
