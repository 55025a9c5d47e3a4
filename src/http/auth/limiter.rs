//! The failure limiter: failed authentications counted per client address in fixed windows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counts failed authentications per client address in fixed windows; past the limit, the address
/// is refused (429) until its window ends, whatever it sends.
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// The table size at which ended windows are next swept (changed under the `windows` lock).
    sweep_at: AtomicUsize,
}

/// Addresses tracked before old windows are first swept, so a flood of addresses cannot grow the map
/// forever.
const LIMITER_SWEEP_AT: usize = 10_000;

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self { max_failures, window, windows: Mutex::new(HashMap::new()), sweep_at: AtomicUsize::new(LIMITER_SWEEP_AT) }
    }

    /// `Err(seconds)` when `ip` must wait before trying again.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get(&ip) {
            Some((start, failures)) if *failures >= self.max_failures => {
                let left = self.window.saturating_sub(start.elapsed());
                if left.is_zero() { Ok(()) } else { Err(left.as_secs().max(1)) }
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        // A sweep runs when the table has doubled since the last one left it (and holds at least
        // LIMITER_SWEEP_AT), so each sweep's cost is paid by the inserts before it: O(1) amortised
        // per failure, however many addresses are live.
        if windows.len() >= self.sweep_at.load(Ordering::Relaxed) {
            let window = self.window;
            windows.retain(|_, (start, _)| start.elapsed() < window);
            self.sweep_at.store((windows.len() * 2).max(LIMITER_SWEEP_AT), Ordering::Relaxed);
        }
        let entry = windows.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_blocks_an_address_after_too_many_failures() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(ip).is_ok());
            limiter.record_failure(ip);
        }
        let wait = limiter.check(ip).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(limiter.check("10.0.0.2".parse().unwrap()).is_ok(), "other addresses are not affected");
    }

    #[test]
    fn the_limiter_sweeps_ended_windows_and_keeps_live_ones_without_a_sweep_per_failure() {
        let ended = FailureLimiter::new(3, Duration::ZERO);
        for i in 0..25_000u32 {
            ended.record_failure(IpAddr::from(i.to_be_bytes()));
        }
        assert!(ended.windows.lock().unwrap().len() <= LIMITER_SWEEP_AT, "ended windows are swept");
        let live = FailureLimiter::new(1, Duration::from_secs(60));
        for i in 0..25_000u32 {
            live.record_failure(IpAddr::from(i.to_be_bytes()));
        }
        assert_eq!(live.windows.lock().unwrap().len(), 25_000, "live windows are kept");
        // Swept at 10,000 and 20,000 entries: the next sweep waits for the table to double.
        assert_eq!(live.sweep_at.load(Ordering::Relaxed), 40_000);
        assert!(live.check(IpAddr::from(7u32.to_be_bytes())).is_err());
    }
}
