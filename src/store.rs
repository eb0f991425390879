//! The port to S3, where what could not be delivered is kept.
//!
//! A dead letter, or a rejection the rejects stream did not take, is the
//! only copy of an event. The log keeps it for `LogRetentionDays`; an S3
//! object under a prefix of the stack's bucket keeps it as long as the
//! data. [`Store::put`] writes one object; [`S3Store`] is the adapter over
//! the AWS SDK, and `Option<S3Store>` is how the function holds it, `None`
//! when no bucket is configured. S3 is a different service from Firehose,
//! so an outage of one is not an outage of the other.

use std::future::Future;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("no bucket is configured (UNDELIVERED_BUCKET)")]
    NotConfigured,
    #[error("S3 refused s3://{bucket}/{key}: {code}: {message}")]
    Refused {
        bucket: String,
        key: String,
        code: String,
        message: String,
    },
    #[error("S3 could not be reached for s3://{bucket}/{key}: {reason}")]
    Unreachable {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("no answer from S3 before the invocation deadline")]
    DeadlineExceeded,
}

/// Where undelivered events are kept.
pub trait Store: Send + Sync {
    /// Writes `body` as the object `key`; returns its `s3://` address.
    fn put(&self, key: &str, body: Bytes) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// One page of a listing: keys in order, and the token of the next page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub keys: Vec<String>,
    pub next: Option<String>,
}

/// What replay needs of a bucket besides writing: listing, reading, and
/// claiming an object with a write that fails when the key exists.
pub trait Bucket: Store {
    /// The keys under `prefix`, a page at a time (`page` is the token the
    /// previous page gave, `None` for the first).
    fn list(&self, prefix: &str, page: Option<String>) -> impl Future<Output = Result<Listing, StoreError>> + Send;
    /// The whole object.
    fn get(&self, key: &str) -> impl Future<Output = Result<Bytes, StoreError>> + Send;
    /// Writes `body` at `key` only if nothing is there (`If-None-Match:
    /// *`); `Ok(false)` when something is, or another such write is under
    /// way.
    fn put_new(&self, key: &str, body: Bytes) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A bucket, through the AWS SDK.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
        }
    }
}

impl Store for S3Store {
    async fn put(&self, key: &str, body: Bytes) -> Result<String, StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/x-ndjson")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| store_error(&self.bucket, key, e))?;
        Ok(format!("s3://{}/{key}", self.bucket))
    }
}

impl Bucket for S3Store {
    async fn list(&self, prefix: &str, page: Option<String>) -> Result<Listing, StoreError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_continuation_token(page)
            .send()
            .await
            .map_err(|e| store_error(&self.bucket, prefix, e))?;
        Ok(Listing {
            keys: out
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned))
                .collect(),
            next: out.next_continuation_token().map(str::to_owned),
        })
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| store_error(&self.bucket, key, e))?;
        let body = out.body.collect().await.map_err(|e| StoreError::Unreachable {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(body.into_bytes())
    }

    async fn put_new(&self, key: &str, body: Bytes) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .body(ByteStream::from(body))
            .send()
            .await;
        match put.map_err(|e| store_error(&self.bucket, key, e)) {
            Ok(_) => Ok(true),
            // 412: the key exists; 409: another conditional write to it is under way.
            Err(StoreError::Refused { code, .. })
                if code == "PreconditionFailed" || code == "ConditionalRequestConflict" =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| store_error(&self.bucket, key, e))?;
        Ok(())
    }
}

impl<S: Store> Store for Option<S> {
    async fn put(&self, key: &str, body: Bytes) -> Result<String, StoreError> {
        match self {
            Some(store) => store.put(key, body).await,
            None => Err(StoreError::NotConfigured),
        }
    }
}

/// No store: every write is [`StoreError::NotConfigured`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStore;

impl Store for NoStore {
    async fn put(&self, _key: &str, _body: Bytes) -> Result<String, StoreError> {
        Err(StoreError::NotConfigured)
    }
}

fn store_error<E, R>(bucket: &str, key: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            StoreError::Refused {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                code: e.code().unwrap_or("Unknown").to_owned(),
                message: e.message().unwrap_or_default().to_owned(),
            }
        }
        other => StoreError::Unreachable {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason: DisplayErrorContext(&other).to_string(),
        },
    }
}
