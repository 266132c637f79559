//! Per-subscription rate limits: the GCRA (generic cell rate algorithm) arithmetic the stores
//! apply atomically in `reserve_slot`.
//!
//! The state is one time per limited subscription, the theoretical arrival time (TAT): when the
//! next delivery may go. A delivery books the slot `max(TAT, now)` and moves the TAT one
//! emission interval (`1 / rate`) past it. No burst allowance: a burst is spread evenly from its
//! first delivery on, which is what "at most `rate` per second" promises the subscriber.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// Bounds of `rate_limit` (deliveries per second): from one per 1000 s to 1000 per second.
pub const MIN_RATE: f64 = 0.001;
pub const MAX_RATE: f64 = 1000.0;

/// What [`reserve`] (and the stores' `reserve_slot`) answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A slot is booked: deliver after waiting this long (zero: at once).
    Now { wait: Duration },
    /// The next free slot is more than `max_wait` away: nothing is booked; try again at
    /// `retry_at`, when a slot will be within reach.
    Later { retry_at: DateTime<Utc> },
}

/// The decision for one delivery and the TAT to store (`None`: store nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub slot: Slot,
    pub tat: Option<DateTime<Utc>>,
}

/// The time between two deliveries at `rate` per second (rounded to whole nanoseconds, at
/// least one). `rate` is expected within [`MIN_RATE`, `MAX_RATE`] (see [`validate`]).
pub fn interval(rate: f64) -> Duration {
    let rate = rate.clamp(MIN_RATE, MAX_RATE);
    Duration::from_nanos(((1e9 / rate).round() as u64).max(1))
}

/// GCRA: books the slot `max(tat, now)` when it is at most `max_wait` away, moving the TAT one
/// `interval` past it; otherwise books nothing and names a time half a `max_wait` before that
/// slot, so the retry finds it within reach (queues that round delays up still land inside the
/// window) while deliveries booked meanwhile push the slot further only by their own share.
pub fn reserve(
    tat: Option<DateTime<Utc>>,
    interval: Duration,
    now: DateTime<Utc>,
    max_wait: Duration,
) -> Reservation {
    let slot = tat.map_or(now, |tat| tat.max(now));
    let wait = (slot - now).to_std().unwrap_or(Duration::ZERO);
    if wait <= max_wait {
        Reservation {
            slot: Slot::Now { wait },
            tat: Some(slot + delta(interval)),
        }
    } else {
        Reservation {
            slot: Slot::Later {
                retry_at: slot - delta(max_wait / 2),
            },
            tat: None,
        }
    }
}

/// Checks an admin-supplied `rate_limit`; the message is the 422's.
pub fn validate(rate: f64) -> Result<f64, String> {
    if rate.is_finite() && (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "rate_limit must be a number of deliveries per second from {MIN_RATE} to {MAX_RATE}"
        ))
    }
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::milliseconds(ms)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn gcra_table() {
        let t = ms(100); // 10 per second
        let max_wait = ms(250);
        let now = |wait| Slot::Now { wait };
        // (name, stored TAT, now, slot, TAT stored after), times in ms.
        type Case = (&'static str, Option<i64>, i64, Slot, Option<i64>);
        let cases: Vec<Case> = vec![
            ("first delivery ever", None, 0, now(ms(0)), Some(100)),
            ("TAT in the past", Some(-5_000), 0, now(ms(0)), Some(100)),
            ("TAT exactly now", Some(0), 0, now(ms(0)), Some(100)),
            (
                "one ahead: wait for it",
                Some(100),
                0,
                now(ms(100)),
                Some(200),
            ),
            (
                "at the edge of max_wait",
                Some(250),
                0,
                now(ms(250)),
                Some(350),
            ),
            (
                "past max_wait: nothing booked",
                Some(251),
                0,
                Slot::Later {
                    retry_at: at(251 - 125),
                },
                None,
            ),
            (
                "far ahead",
                Some(10_000),
                0,
                Slot::Later {
                    retry_at: at(10_000 - 125),
                },
                None,
            ),
            (
                "later, within reach",
                Some(10_000),
                9_800,
                now(ms(200)),
                Some(10_100),
            ),
        ];
        for (name, tat, now_ms, slot, new_tat) in cases {
            let got = reserve(tat.map(at), t, at(now_ms), max_wait);
            assert_eq!(got.slot, slot, "{name}");
            assert_eq!(got.tat, new_tat.map(at), "{name}");
        }
    }

    #[test]
    fn a_burst_is_spaced_one_interval_apart() {
        let t = interval(20.0);
        assert_eq!(t, ms(50));
        let mut tat = None;
        let mut waits = Vec::new();
        for _ in 0..5 {
            let r = reserve(tat, t, at(0), Duration::from_secs(1));
            tat = r.tat;
            waits.push(r.slot);
        }
        let expected: Vec<Slot> = (0..5).map(|i| Slot::Now { wait: ms(50 * i) }).collect();
        assert_eq!(waits, expected);
    }

    #[test]
    fn intervals_and_bounds() {
        assert_eq!(interval(1.0), Duration::from_secs(1));
        assert_eq!(interval(3.0), Duration::from_nanos(333_333_333));
        assert_eq!(interval(1000.0), ms(1));
        assert_eq!(interval(0.001), Duration::from_secs(1000));
        for ok in [0.001, 0.5, 1.0, 25.0, 1000.0] {
            assert_eq!(validate(ok), Ok(ok));
        }
        for bad in [0.0, -1.0, 0.0009, 1000.5, f64::NAN, f64::INFINITY] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
