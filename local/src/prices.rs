//! List prices the capacity plan costs a deployment at: us-east-1, on
//! demand, as AWS published them when they were read. They change; the
//! plan prints the date and the Region beside every figure.
//!
//! Sources: aws.amazon.com/kinesis/data-streams/pricing (provisioned
//! mode), /firehose/pricing (Direct PUT ingestion, first 500 TB a month),
//! /lambda/pricing (arm64), /s3/pricing (S3 Standard, first 50 TB a
//! month), /cloudwatch/pricing (standard-resolution alarms). The first
//! five are the figures of docs/cost.md, read on
//! [`READ_ON`]; the alarm's price was read on 2026-12-01.

/// When the prices below were read.
pub const READ_ON: &str = "2026-11-26";

/// The Region whose list prices these are.
pub const REGION: &str = "us-east-1";

/// Kinesis Data Streams, provisioned: per shard-hour.
pub const KINESIS_SHARD_HOUR: f64 = 0.015;
/// Per million PUT payload units (25 KB each, a record at least one).
pub const KINESIS_PUT_UNITS_PER_MILLION: f64 = 0.014;
/// Bytes of one PUT payload unit.
pub const KINESIS_PUT_UNIT_BYTES: f64 = 25.0 * 1024.0;
/// Firehose Direct PUT ingestion, per GB billed (records rounded up to
/// 5 KiB), first 500 TB a month.
pub const FIREHOSE_PER_GB: f64 = 0.029;
/// Billed bytes a month beyond which the next, lower, tier applies.
pub const FIREHOSE_FIRST_TIER_BYTES: f64 = 500.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0;
/// Lambda: per million requests, and per GB-second on arm64.
pub const LAMBDA_REQUESTS_PER_MILLION: f64 = 0.20;
pub const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
/// S3 Standard storage per GB-month (first 50 TB), and per 1,000 PUTs.
pub const S3_GB_MONTH: f64 = 0.023;
pub const S3_PUTS_PER_THOUSAND: f64 = 0.005;
/// A standard-resolution CloudWatch alarm, per month.
pub const ALARM_MONTH: f64 = 0.10;

/// A 30-day month, in seconds.
pub const MONTH_SECONDS: f64 = 30.0 * 86_400.0;
/// A GB as the price lists count it (2^30 bytes).
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
