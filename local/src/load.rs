//! The load generator: an API tier in front of Kinesis.
//!
//! It sends events at a steady target rate, 10 to 20 per `PutRecords`
//! call, with random partition keys; a share of them invalid and a share
//! packed into KPL aggregates (built with the bridge's own `kpl::aggregate`).
//! Every event Kinesis accepts is entered in the [`Ledger`] with the time it
//! was first sent.
//!
//! ## Why lanes
//!
//! Calls run in `lanes`: each lane owns a disjoint set of shards, has one
//! call in flight at a time, and draws random partition keys until one
//! hashes (MD5, as Kinesis does) into a shard it owns. So the records of a
//! shard arrive in the order they were sent, whatever the emulator does
//! with concurrent writers (moto 5.2.5 numbers a shard's records without a
//! lock and can give two of them one sequence number; kinesalite, the local
//! Kinesis now, has no such race), and several lanes keep enough calls in
//! flight for the target rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use md5::{Digest, Md5};
use rand::RngExt;
use tokio::time::Instant;

use crate::Result;
use crate::events::EventShape;
use crate::ledger::{Ledger, Sent};
use crate::setup::Shard;

#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Events per second, all lanes together.
    pub rate: f64,
    pub duration: Duration,
    /// Share of events that break the contract (0 to 1).
    pub invalid_share: f64,
    /// Share of events sent inside KPL aggregates (0 to 1).
    pub kpl_share: f64,
    /// Approximate size of a valid event in bytes.
    pub event_size: usize,
    /// Concurrent senders, each with its own shards (see the module docs).
    pub lanes: usize,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            rate: 5_000.0,
            duration: Duration::from_secs(60),
            invalid_share: 0.01,
            kpl_share: 0.1,
            event_size: 300,
            lanes: 5,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStats {
    pub events_sent: u64,
    pub records_sent: u64,
    pub calls: u64,
    /// Events that were due but not sent: the lanes fell behind the target
    /// rate, or Kinesis never accepted them.
    pub events_not_sent: u64,
    /// Entries or calls Kinesis refused and that were sent again.
    pub resends: u64,
    pub seconds: f64,
    /// Time spent waiting for `PutRecords` answers, all calls together.
    pub put_ms_total: u64,
}

impl LoadStats {
    /// Mean latency of a `PutRecords` call.
    pub fn mean_put_ms(&self) -> f64 {
        if self.calls > 0 {
            self.put_ms_total as f64 / self.calls as f64
        } else {
            0.0
        }
    }

    pub fn achieved_rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.events_sent as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Sends load until `config.duration` has passed or `stop` is set.
pub async fn run(
    kinesis: aws_sdk_kinesis::Client,
    stream: String,
    shards: Vec<Shard>,
    config: LoadConfig,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) -> Result<LoadStats> {
    if shards.is_empty() {
        return Err("the Kinesis stream has no shards".into());
    }
    let lanes = config.lanes.clamp(1, shards.len());
    let run_id = format!("{:06x}", rand::rng().random_range(0..0x100_0000u32));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let owned: Vec<Shard> = shards.iter().skip(lane).step_by(lanes).cloned().collect();
        let lane = Lane {
            kinesis: kinesis.clone(),
            stream: stream.clone(),
            owned,
            prefix: format!("{run_id}-{lane}"),
            rate: config.rate / lanes as f64,
            config: config.clone(),
            ledger: ledger.clone(),
            stop: stop.clone(),
        };
        tasks.push(tokio::spawn(lane.run(started)));
    }
    let mut stats = LoadStats::default();
    for task in tasks {
        let lane = task.await.map_err(|e| format!("a load lane panicked: {e}"))??;
        stats.events_sent += lane.events_sent;
        stats.records_sent += lane.records_sent;
        stats.calls += lane.calls;
        stats.events_not_sent += lane.events_not_sent;
        stats.resends += lane.resends;
        stats.put_ms_total += lane.put_ms_total;
    }
    stats.seconds = config.duration.as_secs_f64().min(started.elapsed().as_secs_f64());
    Ok(stats)
}

struct Lane {
    kinesis: aws_sdk_kinesis::Client,
    stream: String,
    owned: Vec<Shard>,
    prefix: String,
    rate: f64,
    config: LoadConfig,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
}

/// One event ready to go.
struct Pending {
    sent: Sent,
    data: Vec<u8>,
}

impl Lane {
    async fn run(self, started: Instant) -> Result<LoadStats> {
        let mut stats = LoadStats::default();
        let shape = EventShape {
            size: self.config.event_size,
        };
        let target = (self.rate * self.config.duration.as_secs_f64()).round() as u64;
        let end = started + self.config.duration;
        let mut due: u64 = 0;
        // Not `rand::rng()`: the lane's future crosses threads.
        let mut rng: rand::rngs::StdRng = rand::make_rng();
        while due < target && !self.stop.load(Ordering::Relaxed) {
            let n = rng.random_range(10..=20u64).min(target - due);
            let due_at = started + Duration::from_secs_f64((due + n) as f64 / self.rate);
            tokio::time::sleep_until(due_at).await;
            // Fallen behind: what was not sent by the end is not sent at all,
            // so the achieved rate shows what the pipeline took.
            if Instant::now() > end + Duration::from_millis(500) {
                break;
            }
            let first_ms = crate::now_ms();
            let events: Vec<Pending> = (due..due + n)
                .map(|k| {
                    let id = format!("{}-{k}", self.prefix);
                    let valid = !rng.random_bool(self.config.invalid_share.clamp(0.0, 1.0));
                    let data = if valid {
                        shape.valid(&id, &mut rng)
                    } else {
                        shape.invalid(&id, k as usize)
                    };
                    Pending {
                        sent: Sent {
                            id,
                            at_ms: first_ms,
                            valid,
                        },
                        data,
                    }
                })
                .collect();
            due += n;
            let (records, carried): (Vec<_>, Vec<_>) = self.records(events, &mut rng)?.into_iter().unzip();
            let accepted = self.put(records, &mut stats).await;
            let mut entered = Vec::new();
            let mut records_entered = 0;
            for (members, ok) in carried.into_iter().zip(accepted) {
                if ok {
                    records_entered += 1;
                    entered.extend(members);
                } else {
                    stats.events_not_sent += members.len() as u64;
                }
            }
            stats.events_sent += entered.len() as u64;
            stats.records_sent += records_entered;
            self.ledger.enter(entered, records_entered);
        }
        stats.events_not_sent += target - due;
        Ok(stats)
    }

    /// Turns the events of one call into Kinesis entries: a share of them
    /// packed into one KPL aggregate, the rest one per record. Each entry
    /// comes with the events it carries.
    fn records(
        &self,
        events: Vec<Pending>,
        rng: &mut impl rand::Rng,
    ) -> Result<Vec<(PutRecordsRequestEntry, Vec<Sent>)>> {
        let share = self.config.kpl_share.clamp(0.0, 1.0) * events.len() as f64;
        // Round at random so that the share holds on average.
        let aggregated = share.floor() as usize + usize::from(rng.random_bool(share.fract()));
        let mut records = Vec::new();
        let mut events = events.into_iter();
        if aggregated > 0 {
            let inside: Vec<Pending> = events.by_ref().take(aggregated).collect();
            let keys: Vec<String> = inside.iter().map(|_| random_key(rng)).collect();
            let data = kinesis_firehose_bridge::kpl::aggregate(
                inside.iter().zip(&keys).map(|(p, k)| (k.as_str(), &p.data[..])),
            );
            records.push((self.entry(data, rng)?, inside.into_iter().map(|p| p.sent).collect()));
        }
        for p in events {
            records.push((self.entry(p.data, rng)?, vec![p.sent]));
        }
        Ok(records)
    }

    fn entry(&self, data: Vec<u8>, rng: &mut impl rand::Rng) -> Result<PutRecordsRequestEntry> {
        Ok(PutRecordsRequestEntry::builder()
            .data(Blob::new(data))
            .partition_key(self.owned_key(rng))
            .build()?)
    }

    /// A random partition key that lands in one of this lane's shards.
    fn owned_key(&self, rng: &mut impl rand::Rng) -> String {
        loop {
            let key = random_key(rng);
            if self.owned.iter().any(|s| s.owns(hash_key(&key))) {
                return key;
            }
        }
    }

    /// Puts `entries`, sending refused entries and failed calls again a few
    /// times. Returns, per entry, whether Kinesis accepted it.
    async fn put(&self, entries: Vec<PutRecordsRequestEntry>, stats: &mut LoadStats) -> Vec<bool> {
        let mut accepted = vec![false; entries.len()];
        let mut pending: Vec<usize> = (0..entries.len()).collect();
        for attempt in 0..8u32 {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                stats.resends += 1;
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
            }
            stats.calls += 1;
            let batch: Vec<PutRecordsRequestEntry> = pending.iter().map(|&i| entries[i].clone()).collect();
            let call_started = Instant::now();
            let answer = self
                .kinesis
                .put_records()
                .stream_name(&self.stream)
                .set_records(Some(batch))
                .send()
                .await;
            stats.put_ms_total += call_started.elapsed().as_millis() as u64;
            let Ok(output) = answer else { continue };
            let results = output.records();
            pending = pending
                .iter()
                .enumerate()
                .filter_map(|(k, &i)| match results.get(k) {
                    Some(r) if r.error_code().is_none() && r.sequence_number().is_some() => {
                        accepted[i] = true;
                        None
                    }
                    _ => Some(i),
                })
                .collect();
        }
        accepted
    }
}

fn random_key(rng: &mut impl rand::Rng) -> String {
    format!("user-{:016x}", rng.random::<u64>())
}

/// The 128-bit hash key Kinesis derives from a partition key.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_key_is_the_md5_of_the_key_read_big_endian() {
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
    }
}
