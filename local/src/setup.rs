//! The resources of one local run: a Kinesis stream, a bucket, the N
//! delivery streams writing to it under `events/`, and the rejects stream
//! writing under `rejects/`. All Direct PUT, as the bridge writes to them.

use std::time::Duration;

use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, DeliveryStreamType, ExtendedS3DestinationConfiguration,
};
use aws_sdk_kinesis::types::StreamStatus;

use crate::Result;
use crate::aws::{ACCOUNT, Clients, REGION};

pub const EVENTS_PREFIX: &str = "events/";
pub const REJECTS_PREFIX: &str = "rejects/";

/// Names and sizes of what [`create`] makes.
#[derive(Debug, Clone)]
pub struct Resources {
    pub stream: String,
    pub shards: u32,
    pub bucket: String,
    pub delivery_streams: Vec<String>,
    pub rejects_stream: String,
}

impl Resources {
    pub fn new(delivery_streams: usize, shards: u32) -> Self {
        Resources {
            stream: "analytics-events".to_owned(),
            shards,
            bucket: "analytics-events-archive".to_owned(),
            delivery_streams: (0..delivery_streams).map(|i| format!("analytics-events-{i}")).collect(),
            rejects_stream: "analytics-events-rejects".to_owned(),
        }
    }

    pub fn stream_arn(&self) -> String {
        format!("arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{}", self.stream)
    }
}

/// A shard and the range of hash keys it owns (inclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    pub starting_hash_key: u128,
    pub ending_hash_key: u128,
}

impl Shard {
    pub fn owns(&self, hash_key: u128) -> bool {
        (self.starting_hash_key..=self.ending_hash_key).contains(&hash_key)
    }
}

/// The bucket and the delivery streams writing to it, without a Kinesis
/// stream: what invoking the function by hand needs.
pub async fn create_delivery(clients: &Clients, resources: &Resources) -> Result<()> {
    clients
        .s3
        .create_bucket()
        .bucket(&resources.bucket)
        .send()
        .await
        .map_err(|e| format!("creating bucket {}: {e:?}", resources.bucket))?;
    for name in &resources.delivery_streams {
        delivery_stream(clients, resources, name, EVENTS_PREFIX).await?;
    }
    delivery_stream(clients, resources, &resources.rejects_stream, REJECTS_PREFIX).await
}

/// Creates everything and returns the stream's shards.
pub async fn create(clients: &Clients, resources: &Resources) -> Result<Vec<Shard>> {
    clients
        .kinesis
        .create_stream()
        .stream_name(&resources.stream)
        .shard_count(resources.shards as i32)
        .send()
        .await
        .map_err(|e| format!("creating Kinesis stream {}: {e:?}", resources.stream))?;
    wait_until_active(clients, &resources.stream).await?;
    create_delivery(clients, resources).await?;
    shards(clients, &resources.stream).await
}

async fn wait_until_active(clients: &Clients, stream: &str) -> Result<()> {
    for _ in 0..100 {
        let summary = clients
            .kinesis
            .describe_stream_summary()
            .stream_name(stream)
            .send()
            .await
            .map_err(|e| format!("describing Kinesis stream {stream}: {e:?}"))?;
        if summary
            .stream_description_summary()
            .is_some_and(|s| s.stream_status() == &StreamStatus::Active)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("Kinesis stream {stream} did not become ACTIVE").into())
}

async fn delivery_stream(clients: &Clients, resources: &Resources, name: &str, prefix: &str) -> Result<()> {
    let destination = ExtendedS3DestinationConfiguration::builder()
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/firehose-delivery"))
        .bucket_arn(format!("arn:aws:s3:::{}", resources.bucket))
        .prefix(prefix)
        .compression_format(CompressionFormat::Uncompressed)
        .buffering_hints(
            BufferingHints::builder()
                .size_in_mbs(64)
                .interval_in_seconds(60)
                .build(),
        )
        .build()?;
    clients
        .firehose
        .create_delivery_stream()
        .delivery_stream_name(name)
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(destination)
        .send()
        .await
        .map_err(|e| format!("creating delivery stream {name}: {e:?}"))?;
    Ok(())
}

/// The stream's shards with their hash key ranges.
pub async fn shards(clients: &Clients, stream: &str) -> Result<Vec<Shard>> {
    let listed = clients
        .kinesis
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| format!("listing shards of {stream}: {e:?}"))?;
    listed
        .shards()
        .iter()
        .map(|s| {
            let range = s
                .hash_key_range()
                .ok_or_else(|| format!("shard {} has no hash key range", s.shard_id()))?;
            let parse = |v: &str| {
                v.parse::<u128>()
                    .map_err(|e| format!("shard {} hash key {v:?}: {e}", s.shard_id()))
            };
            Ok(Shard {
                id: s.shard_id().to_owned(),
                starting_hash_key: parse(range.starting_hash_key())?,
                ending_hash_key: parse(range.ending_hash_key())?,
            })
        })
        .collect()
}
