//! The CPU time a future uses: the thread's CPU clock read around each of
//! its polls. The in-process bridge's invocations are timed so, apart from
//! the load generator, the event source mapping and the proxy that share
//! the process. What the future hands to other tasks is not counted: for
//! the SDK, the hyper connection tasks that write and read the sockets.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::emulator::Emulator;
use std::sync::atomic::{AtomicU64, Ordering};

/// Runs `future`, adding the CPU time of its polls to `total_ns`.
pub async fn timed<F: Future>(future: F, total_ns: &AtomicU64) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        let before = thread_cpu_ns();
        let poll = future.as_mut().poll(cx);
        total_ns.fetch_add(thread_cpu_ns().saturating_sub(before), Ordering::Relaxed);
        poll
    })
    .await
}

/// CPU time of the calling thread, in nanoseconds; 0 where there is no
/// such clock.
pub fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to
    // a local and has no other preconditions.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if status != 0 {
        return 0;
    }
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// CPU seconds each part used during a run, to see where the time goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    pub seconds: f64,
    /// The cores this process may use (`available_parallelism`).
    #[serde(default)]
    pub cores: usize,
    pub kinesalite: Option<f64>,
    pub moto_firehose_s3: Option<f64>,
    /// This process: load generator, event source mapping, the in-process
    /// bridge, the fault proxy, the verifier.
    pub pipeline: Option<f64>,
}

/// The CPU the emulators (kinesalite, moto) and this process have used
/// since it started.
pub struct CpuMeter {
    started: std::time::Instant,
    at_start: [Option<f64>; 3],
}

impl CpuMeter {
    pub fn start([kinesis, aws]: &[&Emulator; 2]) -> Self {
        CpuMeter {
            started: std::time::Instant::now(),
            at_start: [
                kinesis.cpu_seconds(),
                aws.cpu_seconds(),
                crate::child::cpu_seconds(std::process::id()),
            ],
        }
    }

    pub fn read(&self, [kinesis, aws]: &[&Emulator; 2]) -> CpuUse {
        let since = |now: Option<f64>, then: Option<f64>| now.zip(then).map(|(a, b)| a - b);
        CpuUse {
            seconds: self.started.elapsed().as_secs_f64(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kinesalite: since(kinesis.cpu_seconds(), self.at_start[0]),
            moto_firehose_s3: since(aws.cpu_seconds(), self.at_start[1]),
            pipeline: since(crate::child::cpu_seconds(std::process::id()), self.at_start[2]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_the_work_of_the_polls_and_not_the_waits() {
        let total = AtomicU64::new(0);
        let answer = timed(
            async {
                // About 20 ms of work, then a 100 ms sleep, which costs none.
                let until = thread_cpu_ns() + 20_000_000;
                let mut spins = 0u64;
                while thread_cpu_ns() < until {
                    spins = std::hint::black_box(spins + 1);
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                spins > 0
            },
            &total,
        )
        .await;
        assert!(answer);
        let ms = total.load(Ordering::Relaxed) as f64 / 1e6;
        assert!((20.0..60.0).contains(&ms), "{ms} ms of CPU");
    }
}
