//! When to resend: exponential backoff with full jitter, inside the time
//! the invocation has left.
//!
//! Full jitter (a uniform draw between zero and the exponential cap) spreads
//! the resends of many concurrent invocations, which is what relieves a
//! throttled stream (AWS Architecture Blog, "Exponential Backoff And
//! Jitter").

use std::time::Duration;

use tokio::time::Instant;

use crate::limits::MIN_CALL_TIME;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The longest wait before resend number `resend` (1 for the first).
    pub fn cap(&self, resend: u32) -> Duration {
        let factor = 1u32.checked_shl(resend.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// A wait drawn uniformly from zero to [`Backoff::cap`].
    pub fn delay(&self, resend: u32) -> Duration {
        use rand::RngExt;
        let cap = self.cap(resend).as_micros() as u64;
        Duration::from_micros(rand::rng().random_range(0..=cap))
    }
}

/// The point no call or wait may pass: the invocation deadline less the
/// safety margin kept for reporting. `None` when the deadline is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub until: Option<Instant>,
}

impl Budget {
    pub fn new(deadline: Option<Instant>, margin: Duration) -> Self {
        Budget {
            until: deadline.map(|d| d.checked_sub(margin).unwrap_or_else(Instant::now)),
        }
    }

    pub fn unbounded() -> Self {
        Budget { until: None }
    }

    /// Time left at `now`; `None` when unbounded.
    pub fn left(&self, now: Instant) -> Option<Duration> {
        self.until.map(|until| until.saturating_duration_since(now))
    }

    /// Whether a call may start after waiting `delay` from `now`: it must
    /// still have [`MIN_CALL_TIME`] before the limit.
    pub fn allows(&self, now: Instant, delay: Duration) -> bool {
        match self.left(now) {
            None => true,
            Some(left) => delay.saturating_add(MIN_CALL_TIME) <= left,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_millis(1_000),
    };

    #[test]
    fn cap_doubles_per_resend_up_to_the_maximum() {
        let caps: Vec<_> = (1..=7).map(|n| BACKOFF.cap(n).as_millis()).collect();
        assert_eq!(caps, vec![50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(BACKOFF.cap(200), Duration::from_millis(1_000));
    }

    #[test]
    fn delay_stays_within_zero_and_cap() {
        for resend in 1..=6 {
            for _ in 0..200 {
                assert!(BACKOFF.delay(resend) <= BACKOFF.cap(resend));
            }
        }
    }

    #[test]
    fn jitter_varies_the_delay() {
        let draws: std::collections::HashSet<_> = (0..50).map(|_| BACKOFF.delay(4)).collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn budget_keeps_a_whole_call_time_before_the_margin() {
        let now = Instant::now();
        let margin = Duration::from_millis(1_000);
        let budget = Budget::new(Some(now + margin + MIN_CALL_TIME + Duration::from_millis(500)), margin);
        assert_eq!(budget.left(now), Some(MIN_CALL_TIME + Duration::from_millis(500)));
        assert!(budget.allows(now, Duration::from_millis(500)));
        assert!(!budget.allows(now, Duration::from_millis(501)));
        assert!(budget.allows(now + Duration::from_millis(500), Duration::ZERO));
        assert!(!budget.allows(now + Duration::from_millis(501), Duration::ZERO));
    }

    #[test]
    fn a_deadline_inside_the_margin_leaves_nothing() {
        let now = Instant::now();
        let budget = Budget::new(Some(now + Duration::from_millis(200)), Duration::from_millis(1_000));
        assert_eq!(budget.left(now), Some(Duration::ZERO));
        assert!(!budget.allows(now, Duration::ZERO));
    }

    #[test]
    fn unbounded_budget_allows_any_wait() {
        assert!(Budget::unbounded().allows(Instant::now(), Duration::from_secs(3600)));
    }
}
