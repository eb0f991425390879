//! The capacity plan (`make plan`): for a rate of events and their size,
//! the Kinesis shards, Firehose delivery streams and Lambda concurrency a
//! deployment needs, what it costs a month at list prices ([`crate::prices`]),
//! and when asking AWS for a quota increase beats adding streams.
//!
//! What Firehose receives per event comes from a sample run through the
//! bridge itself ([`crate::wire`]); the event source mapping's settings
//! from `template.yaml` ([`crate::template`]); the quotas from
//! `kinesis_firehose_bridge::limits` through [`Quota`].
//!
//! ## The rule
//!
//! Every quota a deployment meets is sized with [`HEADROOM`]: a delivery
//! stream takes at most 1/1.25 of its quota, a shard likewise. The figure
//! is measured, not assumed: in `make scale`'s streams sweep, delivered
//! reached 97% of the offered load from the first stream count whose total
//! quota is 1.25 times the load (`docs/scale.md`), and that sweep checks
//! its own result against [`delivery_streams`].

use std::fmt::Write as _;

use kinesis_firehose_bridge::limits::{SHARD_WRITE_BYTES_PER_SECOND, SHARD_WRITE_RECORDS_PER_SECOND};

use crate::Result;
use crate::prices;
use crate::quota::Quota;
use crate::wire::WireSize;

/// A quota's share kept free: load ≤ quota / HEADROOM.
pub const HEADROOM: f64 = 1.25;

/// Per-stream alarms the template makes (freshness, S3 success, throttled
/// records).
pub const ALARMS_PER_STREAM: usize = 3;

/// What the delivery streams must take, per second, all of them together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    pub bytes_per_s: f64,
    pub records_per_s: f64,
    pub invocations_per_s: f64,
    /// Firehose records one invocation sends (spread over the streams).
    pub records_per_invocation: f64,
}

impl Traffic {
    /// The traffic of `rate` events/s whose bridge output per event is
    /// `wire`, read by `concurrency` pollers in batches of `batch_size`
    /// that close full or when `window_s` has passed.
    pub fn new(rate: f64, wire: &WireSize, batch_size: usize, window_s: f64, concurrency: f64) -> Traffic {
        let invocations_per_s = (rate / batch_size.max(1) as f64).max(concurrency / window_s.max(1.0));
        let records_per_s = rate * wire.records_per_event();
        Traffic {
            bytes_per_s: rate * wire.bytes_per_event(),
            records_per_s,
            invocations_per_s,
            records_per_invocation: (records_per_s / invocations_per_s).max(1.0),
        }
    }
}

/// Which quota sets the stream count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Bytes,
    Records,
    Requests,
}

impl Binding {
    pub fn name(self) -> &'static str {
        match self {
            Binding::Bytes => "bytes/s",
            Binding::Records => "records/s",
            Binding::Requests => "requests/s",
        }
    }
}

/// The fewest delivery streams that keep each within its quota over
/// [`HEADROOM`], and the quota that decides it. Requests: an invocation
/// sends its records round the streams, one call per stream it reaches, so
/// a stream takes `invocations × min(records, streams) / streams` calls a
/// second; the fewest streams for that is `HEADROOM × invocations ×
/// records / quota` whether or not it exceeds the records per invocation.
pub fn delivery_streams(traffic: &Traffic, quota: &Quota) -> (usize, Binding) {
    let need = |load: f64, per_stream: f64| (HEADROOM * load / per_stream - 1e-9).ceil().max(1.0);
    let candidates = [
        (need(traffic.bytes_per_s, quota.bytes_per_s), Binding::Bytes),
        (need(traffic.records_per_s, quota.records_per_s), Binding::Records),
        (
            need(
                traffic.invocations_per_s * traffic.records_per_invocation.max(1.0),
                quota.requests_per_s,
            ),
            Binding::Requests,
        ),
    ];
    let (streams, binding) = candidates
        .into_iter()
        .fold((1.0, Binding::Bytes), |best, c| if c.0 > best.0 { c } else { best });
    (streams as usize, binding)
}

/// What the plan is asked.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Events per second.
    pub rate: f64,
    /// Mean size of an event as producers send it (one event per Kinesis record).
    pub event_bytes: f64,
    pub region: String,
    pub quota: Quota,
    /// What the bridge sends Firehose per event, measured on the sample.
    pub wire: WireSize,
    /// Where the sample came from, for the output.
    pub sample: String,
    pub template: TemplateSettings,
    /// Billed duration of one invocation: an estimate, not a measurement.
    pub invocation_seconds: f64,
}

/// The template's settings the plan reads.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSettings {
    pub batch_size: usize,
    pub batching_window_s: f64,
    pub parallelization_factor: u32,
    pub memory_mb: u32,
    pub compression: String,
    pub max_delivery_streams: usize,
    pub max_shards: usize,
    pub buffer_interval_s: f64,
    pub buffer_mib: f64,
}

/// One line of the monthly cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    pub service: &'static str,
    pub usd: f64,
    pub how: String,
}

/// The plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub shards: usize,
    pub delivery_streams: usize,
    pub binding: Binding,
    pub lambda_concurrency: usize,
    pub traffic: Traffic,
    /// When the streams needed pass the template's maximum: the factor to
    /// ask for on every stream, with the template's maximum deployed.
    pub quota_increase: Option<f64>,
    pub costs: Vec<Cost>,
}

impl Plan {
    pub fn new(inputs: &Inputs) -> Result<Plan> {
        check(inputs.rate, inputs.event_bytes)?;
        let t = &inputs.template;
        let shard_load = (inputs.rate / SHARD_WRITE_RECORDS_PER_SECOND as f64)
            .max(inputs.rate * inputs.event_bytes / SHARD_WRITE_BYTES_PER_SECOND as f64);
        let shards = (HEADROOM * shard_load - 1e-9).ceil().max(1.0) as usize;
        if shards > t.max_shards {
            return Err(format!(
                "RATE={} of {}-byte events needs {shards} Kinesis shards, more than the template's ShardCount \
                 allows ({}): split the stream",
                inputs.rate, inputs.event_bytes, t.max_shards
            )
            .into());
        }
        let lambda_concurrency = shards * t.parallelization_factor as usize;
        let traffic = Traffic::new(
            inputs.rate,
            &inputs.wire,
            t.batch_size,
            t.batching_window_s,
            lambda_concurrency as f64,
        );
        let (needed, binding) = delivery_streams(&traffic, &inputs.quota);
        let (delivery_streams, quota_increase) = if needed > t.max_delivery_streams {
            let streams = t.max_delivery_streams;
            (streams, Some(needed as f64 / streams as f64))
        } else {
            (needed, None)
        };
        let mut plan = Plan {
            shards,
            delivery_streams,
            binding,
            lambda_concurrency,
            traffic,
            quota_increase,
            costs: Vec::new(),
        };
        plan.costs = costs(inputs, &plan);
        Ok(plan)
    }

    pub fn total_usd(&self) -> f64 {
        self.costs.iter().map(|c| c.usd).sum()
    }

    /// The plan as `sam deploy --parameter-overrides` takes it.
    pub fn parameter_overrides(&self) -> String {
        format!(
            "ShardCount={} DeliveryStreamCount={}",
            self.shards, self.delivery_streams
        )
    }
}

/// Impossible inputs: each error names what is wrong.
pub fn check(rate: f64, event_bytes: f64) -> Result<()> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("RATE={rate}: expected events per second above zero").into());
    }
    if !(event_bytes.is_finite() && event_bytes >= 1.0) {
        return Err(format!("EVENT_BYTES={event_bytes}: expected an event size of at least one byte").into());
    }
    // A line and its newline must fit one record.
    let largest = kinesis_firehose_bridge::limits::MAX_RECORD_SIZE as f64 - 1.0;
    if event_bytes > largest {
        return Err(format!(
            "EVENT_BYTES={event_bytes}: larger than a Firehose record holds ({largest} bytes and a newline); the \
             bridge would reject every such event as too_large"
        )
        .into());
    }
    Ok(())
}

fn costs(inputs: &Inputs, plan: &Plan) -> Vec<Cost> {
    use prices::*;
    let t = &inputs.template;
    let month_events = inputs.rate * MONTH_SECONDS;
    let invocations = plan.traffic.invocations_per_s * MONTH_SECONDS;
    let billed = month_events * inputs.wire.billed_per_event();
    let stored = month_events * inputs.wire.bytes_per_event();
    let put_units = (inputs.event_bytes / KINESIS_PUT_UNIT_BYTES).ceil().max(1.0);
    let flushes_per_stream = (MONTH_SECONDS / t.buffer_interval_s.max(1.0))
        .max(stored / plan.delivery_streams as f64 / (t.buffer_mib * 1048576.0));
    let mut costs = vec![
        Cost {
            service: "Kinesis shards",
            usd: plan.shards as f64 * 720.0 * KINESIS_SHARD_HOUR,
            how: format!("{} shards x 720 h x ${KINESIS_SHARD_HOUR}/shard-hour", plan.shards),
        },
        Cost {
            service: "Kinesis PUT payload units",
            usd: month_events * put_units / 1e6 * KINESIS_PUT_UNITS_PER_MILLION,
            how: format!("one event per record, {put_units} unit(s) each, ${KINESIS_PUT_UNITS_PER_MILLION}/million"),
        },
        Cost {
            service: "Firehose ingestion",
            usd: billed / GIB * FIREHOSE_PER_GB,
            how: format!(
                "{:.1} TiB billed ({:.1} bytes per event, records rounded up to 5 KiB) x ${FIREHOSE_PER_GB}/GB{}",
                billed / GIB / 1024.0,
                inputs.wire.billed_per_event(),
                if billed > FIREHOSE_FIRST_TIER_BYTES {
                    "; past 500 TB a month the next tier is cheaper: an overestimate"
                } else {
                    ""
                }
            ),
        },
        Cost {
            service: "Lambda requests",
            usd: invocations / 1e6 * LAMBDA_REQUESTS_PER_MILLION,
            how: format!(
                "{:.1} invocations/s x ${LAMBDA_REQUESTS_PER_MILLION}/million",
                plan.traffic.invocations_per_s
            ),
        },
        Cost {
            service: "Lambda duration",
            usd: invocations * inputs.invocation_seconds * t.memory_mb as f64 / 1024.0 * LAMBDA_ARM_GB_SECOND,
            how: format!(
                "an estimate: {:.0} ms billed per invocation (not measured on Lambda), {} MB, arm64",
                inputs.invocation_seconds * 1000.0,
                t.memory_mb
            ),
        },
    ];
    costs.extend(storage_costs(inputs, plan, stored, flushes_per_stream));
    costs
}

fn storage_costs(inputs: &Inputs, plan: &Plan, stored: f64, flushes_per_stream: f64) -> Vec<Cost> {
    use prices::*;
    vec![
        Cost {
            service: "S3 storage, a month of data",
            usd: stored / GIB * S3_GB_MONTH,
            how: format!(
                "{:.1} TiB a month as the bridge sends it ({}){}",
                stored / GIB / 1024.0,
                inputs.template.compression,
                if inputs.template.compression == "gzip" {
                    ""
                } else {
                    "; the streams gzip it, so less: an upper bound"
                }
            ),
        },
        Cost {
            service: "S3 PUTs by Firehose",
            usd: flushes_per_stream * plan.delivery_streams as f64 / 1000.0 * S3_PUTS_PER_THOUSAND,
            how: format!(
                "{} streams, an object every {:.0} s or {:.0} MiB each",
                plan.delivery_streams, inputs.template.buffer_interval_s, inputs.template.buffer_mib
            ),
        },
        Cost {
            service: "CloudWatch alarms on the streams",
            usd: (ALARMS_PER_STREAM * plan.delivery_streams) as f64 * ALARM_MONTH,
            how: format!("{ALARMS_PER_STREAM} per stream x ${ALARM_MONTH}/alarm-month"),
        },
    ]
}

/// The plan as text; its last line is the parameter overrides.
pub fn render(inputs: &Inputs, plan: &Plan) -> String {
    let mut out = String::new();
    let q = &inputs.quota;
    let t = &inputs.traffic_view(plan);
    let _ = writeln!(
        out,
        "plan for {:.0} events/s of {:.0} bytes in {} (Direct PUT quota per stream: {:.0} records/s, {:.0} \
         requests/s, {:.2} MiB/s)",
        inputs.rate,
        inputs.event_bytes,
        inputs.region,
        q.records_per_s,
        q.requests_per_s,
        q.bytes_per_s / 1048576.0
    );
    let _ = writeln!(
        out,
        "sample: {}: {} events; the bridge (Compression={}) sends {:.1} bytes per event ({:.3} of the event \
         bytes) in {:.4} records per event",
        inputs.sample,
        inputs.wire.events,
        inputs.template.compression,
        inputs.wire.bytes_per_event(),
        inputs.wire.ratio(),
        inputs.wire.records_per_event()
    );
    out.push_str(t);
    let _ = writeln!(
        out,
        "Lambda concurrency: {} ({} shards x ParallelizationFactor {})",
        plan.lambda_concurrency, plan.shards, inputs.template.parallelization_factor
    );
    out.push_str(&advice(inputs, plan));
    let _ = writeln!(
        out,
        "monthly cost (30 days), {} list prices read {} ({} named: {}):",
        prices::REGION,
        prices::READ_ON,
        inputs.region,
        if inputs.region == prices::REGION {
            "the same Region".to_owned()
        } else {
            format!("check its own prices; these are {}'s", prices::REGION)
        }
    );
    for c in &plan.costs {
        let _ = writeln!(out, "  {:<34} ${:>12.2}  {}", c.service, c.usd, c.how);
    }
    let _ = writeln!(out, "  {:<34} ${:>12.2}", "total", plan.total_usd());
    let _ = writeln!(out, "--parameter-overrides {}", plan.parameter_overrides());
    out
}

impl Inputs {
    /// The sizing lines: shards and streams, with the load on each.
    fn traffic_view(&self, plan: &Plan) -> String {
        let tr = &plan.traffic;
        let n = plan.delivery_streams as f64;
        format!(
            "Kinesis shards: {} (each takes {:.0} records/s and {:.0} KiB/s of the {} records/s and 1024 KiB/s \
             it allows)\nFirehose delivery streams: {} (set by {}); each takes {:.1} KiB/s, {:.1} records/s, \
             {:.1} requests/s\n",
            plan.shards,
            self.rate / plan.shards as f64,
            self.rate * self.event_bytes / plan.shards as f64 / 1024.0,
            SHARD_WRITE_RECORDS_PER_SECOND,
            plan.delivery_streams,
            plan.binding.name(),
            tr.bytes_per_s / n / 1024.0,
            tr.records_per_s / n,
            tr.invocations_per_s * tr.records_per_invocation.min(n) / n
        )
    }
}

fn advice(inputs: &Inputs, plan: &Plan) -> String {
    let max = inputs.template.max_delivery_streams;
    match plan.quota_increase {
        Some(factor) => {
            let q = inputs.quota.scaled(factor.ceil());
            format!(
                "a quota increase beats adding streams: {:.0} streams would be needed, more than the template \
                 deploys ({max}). Deploy {max} and ask AWS to raise each stream's Direct PUT quota {:.0}-fold (the \
                 three rise together: {:.2} MiB/s, {:.0} requests/s, {:.0} records/s)\n",
                factor * max as f64,
                factor.ceil(),
                q.bytes_per_s / 1048576.0,
                q.requests_per_s,
                q.records_per_s
            )
        }
        None => format!(
            "adding streams beats a quota increase up to the template's {max}: Firehose bills bytes, not streams, \
             so each stream costs only its alarms (${:.2} a month) and its S3 objects, and needs no request to \
             AWS; past {max} streams, ask for a quota increase instead\n",
            ALARMS_PER_STREAM as f64 * prices::ALARM_MONTH
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(bytes_per_s: f64) -> Traffic {
        Traffic {
            bytes_per_s,
            records_per_s: 10.0,
            invocations_per_s: 10.0,
            records_per_invocation: 1.0,
        }
    }

    #[test]
    fn streams_keep_a_quarter_of_each_quota_free() {
        let quota = Quota::parse("bytes:1000").unwrap();
        assert_eq!(delivery_streams(&traffic(800.0), &quota), (1, Binding::Bytes));
        assert_eq!(delivery_streams(&traffic(801.0), &quota), (2, Binding::Bytes));
        assert_eq!(delivery_streams(&traffic(2_400.0), &quota), (3, Binding::Bytes));
    }

    #[test]
    fn requests_can_decide_too() {
        let quota = Quota::parse("requests:4").unwrap();
        // 10 invocations/s of one record each: 12.5 calls/s with the margin.
        assert_eq!(delivery_streams(&traffic(1.0), &quota), (4, Binding::Requests));
    }
}
