//! Retry schedule for failed deliveries.

use std::time::Duration;

use rand::Rng;

/// Delays between attempts: the n-th entry is the wait after the n-th failed attempt, so a
/// schedule of 7 delays allows 8 attempts in all.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub delays: Vec<Duration>,
    /// Relative jitter applied to each delay (0.2 = ±20%), so a failing endpoint that comes
    /// back is not hit by every retry at the same instant.
    pub jitter: f64,
    /// Upper bound on a `Retry-After` the subscriber asks for.
    pub max_retry_after: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry schedule {0:?}: expected comma-separated durations such as 5s,5m,2h")]
pub struct ScheduleError(pub String);

impl Default for RetryPolicy {
    fn default() -> Self {
        let m = 60;
        let h = 3600;
        Self {
            delays: [5, 5 * m, 30 * m, 2 * h, 5 * h, 10 * h, 10 * h]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.2,
            max_retry_after: Duration::from_secs(24 * h),
        }
    }
}

impl RetryPolicy {
    /// Parses `5s,5m,30m,2h` (humantime units); an empty string means no retries.
    pub fn parse_schedule(spec: &str) -> Result<Vec<Duration>, ScheduleError> {
        if spec.trim().is_empty() {
            return Ok(Vec::new());
        }
        spec.split(',')
            .map(|part| humantime::parse_duration(part.trim()))
            .collect::<Result<_, _>>()
            .map_err(|_| ScheduleError(spec.to_string()))
    }

    pub fn with_schedule(delays: Vec<Duration>) -> Self {
        Self {
            delays,
            ..Self::default()
        }
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The wait before the next attempt after attempt `failed_attempt` (1-based) failed, or
    /// `None` when it was the last. A `Retry-After` from the subscriber is honoured: the wait is
    /// never shorter than what it asked for (capped at `max_retry_after`).
    pub fn next_delay(
        &self,
        failed_attempt: u32,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let base = *self.delays.get(failed_attempt.checked_sub(1)? as usize)?;
        let jittered = self.jittered(base);
        Some(match retry_after {
            Some(asked) => jittered.max(asked.min(self.max_retry_after)),
            None => jittered,
        })
    }

    fn jittered(&self, base: Duration) -> Duration {
        if self.jitter <= 0.0 || base.is_zero() {
            return base;
        }
        let factor = rand::rng().random_range((1.0 - self.jitter)..=(1.0 + self.jitter));
        base.mul_f64(factor)
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts(), 8);
        assert_eq!(p.delays[0], Duration::from_secs(5));
        assert_eq!(p.delays[6], Duration::from_secs(36_000));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = RetryPolicy::default();
        for _ in 0..1000 {
            let d = p.next_delay(2, None).unwrap().as_secs_f64();
            assert!((240.0..=360.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn last_attempt_has_no_next() {
        let p = RetryPolicy::default();
        assert!(p.next_delay(7, None).is_some());
        assert!(p.next_delay(8, None).is_none());
        assert!(p.next_delay(0, None).is_none());
        assert!(RetryPolicy::with_schedule(vec![])
            .next_delay(1, None)
            .is_none());
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let mut p = RetryPolicy::with_schedule(vec![Duration::from_secs(5)]);
        p.jitter = 0.0;
        assert_eq!(
            p.next_delay(1, Some(Duration::from_secs(120))),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            p.next_delay(1, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            p.next_delay(1, Some(Duration::from_secs(10 * 86_400))),
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn parses_schedules() {
        assert_eq!(
            RetryPolicy::parse_schedule("5s, 5m,2h").unwrap(),
            vec![
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(7200)
            ]
        );
        assert!(RetryPolicy::parse_schedule("").unwrap().is_empty());
        assert!(RetryPolicy::parse_schedule("5s,soon").is_err());
        assert_eq!(
            RetryPolicy::parse_schedule("200ms").unwrap(),
            vec![Duration::from_millis(200)]
        );
    }

    #[test]
    fn parses_retry_after() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
