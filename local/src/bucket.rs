//! What the pipeline's bucket holds, read back: every object under each
//! prefix a record can end in.
//!
//! - `events/`: what the delivery streams wrote (moto writes one object per
//!   `PutRecordBatch` call under `<prefix>YYYY/MM/DD/HH/`);
//! - `rejects/`: what the rejects stream wrote;
//! - `dead-letters/` and `rejects-unsent/`: the undelivered records the
//!   function kept, one object per invocation;
//! - `aws/lambda/`: the batches the event source mapping gave up on.

use futures_util::StreamExt;
use kinesis_firehose_bridge::undelivered::{DEAD_LETTERS_PREFIX, REJECTS_UNSENT_PREFIX};

use crate::Result;
use crate::on_failure;
use crate::setup::{EVENTS_PREFIX, REJECTS_PREFIX};

/// One object read back from S3.
#[derive(Debug, Clone)]
pub struct Object {
    pub key: String,
    pub etag: String,
    pub last_modified_ms: u64,
    pub body: Vec<u8>,
}

/// Every object of every prefix.
#[derive(Debug, Clone, Default)]
pub struct Contents {
    pub delivered: Vec<Object>,
    pub rejected: Vec<Object>,
    /// `dead-letters/` and `rejects-unsent/`.
    pub kept: Vec<Object>,
    pub given_up: Vec<Object>,
}

impl Contents {
    pub async fn read(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Self> {
        let mut kept = read_prefix(s3, bucket, DEAD_LETTERS_PREFIX).await?;
        kept.extend(read_prefix(s3, bucket, REJECTS_UNSENT_PREFIX).await?);
        Ok(Contents {
            delivered: read_prefix(s3, bucket, EVENTS_PREFIX).await?,
            rejected: read_prefix(s3, bucket, REJECTS_PREFIX).await?,
            kept,
            given_up: read_prefix(s3, bucket, on_failure::PREFIX).await?,
        })
    }

    pub fn objects(&self) -> usize {
        self.delivered.len() + self.rejected.len() + self.kept.len() + self.given_up.len()
    }
}

/// Reads every object under `prefix`.
pub async fn read_prefix(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<Object>> {
    let mut listed = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("listing s3://{bucket}/{prefix}: {e:?}"))?;
        for object in page.contents() {
            if let Some(key) = object.key() {
                let last_modified_ms = object.last_modified().map_or(0, |t| {
                    (t.secs() * 1000 + i64::from(t.subsec_nanos() / 1_000_000)) as u64
                });
                listed.push((
                    key.to_owned(),
                    object.e_tag().unwrap_or_default().to_owned(),
                    last_modified_ms,
                ));
            }
        }
    }
    let reads = futures_util::stream::iter(listed.into_iter().map(|(key, etag, last_modified_ms)| async move {
        let object = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| format!("reading s3://{bucket}/{key}: {e:?}"))?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| format!("reading s3://{bucket}/{key}: {e}"))?
            .into_bytes()
            .to_vec();
        Ok::<_, crate::Error>(Object {
            key,
            etag,
            last_modified_ms,
            body,
        })
    }))
    .buffer_unordered(16);
    reads.collect::<Vec<_>>().await.into_iter().collect()
}
