//! Endpoint health: the failure streak, the circuit breaker and auto-disable, as pure
//! transitions of a subscription's [`Health`]. The stores apply them atomically
//! (`SubscriptionStore::record_outcome`, `claim_probe`), so concurrent deliveries and admin
//! changes do not overwrite each other's counts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// The endpoint's circuit breaker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Circuit {
    /// Deliveries flow.
    #[default]
    Closed,
    /// Deliveries are parked until `probe_at`, when one probe may go.
    Open,
    /// One probe is in flight; the rest stay parked until it answers (or `probe_at`, when a lost
    /// probe is replaced).
    HalfOpen,
}

/// Why a subscription is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// By an operator (`PATCH {"enabled": false}`).
    Manual,
    /// The endpoint answered 410 Gone.
    Gone,
    /// The endpoint failed continuously for `disable_after`.
    Failing,
}

impl DisabledReason {
    pub fn code(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Gone => "gone",
            Self::Failing => "failing",
        }
    }
}

/// Lenient: records written before the reasons were codes hold a sentence, and the only one
/// ever written was about 410.
impl<'de> Deserialize<'de> for DisabledReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match String::deserialize(d)?.as_str() {
            "manual" => Self::Manual,
            "failing" => Self::Failing,
            _ => Self::Gone,
        })
    }
}

/// A subscription's delivery health, kept with the subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Start of the current failure streak.
    #[serde(default)]
    pub failing_since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_success_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_failure_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub circuit: Circuit,
    /// While the circuit is not closed: when the next probe may go.
    #[serde(default)]
    pub probe_at: Option<DateTime<Utc>>,
    /// Times the circuit opened since it was last closed: the probe backoff doubles with each.
    #[serde(default)]
    pub openings: u32,
}

/// Breaker and auto-disable settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Consecutive failures that open the circuit; 0 never opens it.
    pub breaker_threshold: u32,
    /// Wait before the first probe; doubles with each re-opening...
    pub probe_backoff: Duration,
    /// ...up to this.
    pub max_probe_backoff: Duration,
    /// A subscription failing continuously this long is disabled (`failing`); `None` never.
    pub disable_after: Option<Duration>,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            breaker_threshold: 10,
            probe_backoff: Duration::from_secs(30),
            max_probe_backoff: Duration::from_secs(600),
            disable_after: Some(Duration::from_secs(5 * 86_400)),
        }
    }
}

impl HealthPolicy {
    /// `HOOKHUB_DISABLE_AFTER` / `--disable-after`: a humantime duration (`5d`, `36h`); `0`
    /// never disables.
    pub fn parse_disable_after(value: &str) -> Result<Option<Duration>, String> {
        let value = value.trim();
        if value == "0" {
            return Ok(None);
        }
        match humantime::parse_duration(value) {
            Ok(d) if d.is_zero() => Ok(None),
            Ok(d) => Ok(Some(d)),
            Err(e) => Err(format!(
                "expected a duration such as 5d or 36h (0 = never), got {value:?} ({e})"
            )),
        }
    }

    /// The wait before the probe after the circuit opened for the `openings`-th time in a row.
    pub fn backoff(&self, openings: u32) -> Duration {
        let doubling = 2u32.saturating_pow(openings.saturating_sub(1).min(31));
        self.probe_backoff
            .saturating_mul(doubling)
            .min(self.max_probe_backoff.max(self.probe_backoff))
    }
}

/// What an attempt tells about the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthOutcome {
    Success,
    Failure,
}

/// What a recorded outcome changed, for logs (and operational events).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthChange {
    /// The circuit's new state, when it changed.
    pub circuit: Option<Circuit>,
    /// Set when this outcome disabled the subscription.
    pub disabled: Option<DisabledReason>,
    /// The circuit went back to open after a failed probe: the same outage, not a new one.
    pub reopened: bool,
}

/// What may go to the endpoint now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Deliver,
    /// The circuit is open and a probe is due: claim it ([`Health::claim_probe`]) first.
    Probe,
    /// Park until then.
    Park(DateTime<Utc>),
}

impl Health {
    pub fn gate(&self, now: DateTime<Utc>) -> Gate {
        match (self.circuit, self.probe_at) {
            (Circuit::Closed, _) => Gate::Deliver,
            (_, Some(at)) if at > now => Gate::Park(at),
            _ => Gate::Probe,
        }
    }

    /// The health after an attempt's outcome, and what changed. `enabled` is whether the
    /// subscription is enabled now (a disabled one is not disabled again).
    pub fn after(
        &self,
        outcome: HealthOutcome,
        enabled: bool,
        at: DateTime<Utc>,
        policy: &HealthPolicy,
    ) -> (Health, HealthChange) {
        let mut change = HealthChange::default();
        let next = match outcome {
            HealthOutcome::Success => {
                if self.circuit != Circuit::Closed {
                    change.circuit = Some(Circuit::Closed);
                }
                Health {
                    last_success_at: Some(at),
                    last_failure_at: self.last_failure_at,
                    ..Health::default()
                }
            }
            HealthOutcome::Failure => {
                let failures = self.consecutive_failures.saturating_add(1);
                let failing_since = self.failing_since.unwrap_or(at).min(at);
                let reopen = |openings: u32| {
                    (
                        Circuit::Open,
                        Some(at + to_delta(policy.backoff(openings))),
                        openings,
                    )
                };
                let (circuit, probe_at, openings) = match self.circuit {
                    Circuit::Closed
                        if policy.breaker_threshold > 0 && failures >= policy.breaker_threshold =>
                    {
                        reopen(1)
                    }
                    // The probe failed.
                    Circuit::HalfOpen => reopen(self.openings.saturating_add(1)),
                    // Closed below the threshold, or an attempt that started before the circuit
                    // opened: nothing changes but the counts.
                    _ => (self.circuit, self.probe_at, self.openings),
                };
                if circuit != self.circuit {
                    change.circuit = Some(circuit);
                    change.reopened = self.circuit == Circuit::HalfOpen;
                }
                if let Some(limit) = policy.disable_after {
                    if enabled && at - failing_since >= to_delta(limit) {
                        change.disabled = Some(DisabledReason::Failing);
                    }
                }
                Health {
                    consecutive_failures: failures,
                    failing_since: Some(failing_since),
                    last_success_at: self.last_success_at,
                    last_failure_at: Some(at),
                    circuit,
                    probe_at,
                    openings,
                }
            }
        };
        (next, change)
    }

    /// The health with the probe claimed, when one is due at `now`: the circuit goes half-open
    /// and `probe_at` moves on by the backoff (after which a lost probe is replaced).
    pub fn claim_probe(&self, now: DateTime<Utc>, policy: &HealthPolicy) -> Option<Health> {
        (self.gate(now) == Gate::Probe).then(|| Health {
            circuit: Circuit::HalfOpen,
            probe_at: Some(now + to_delta(policy.backoff(self.openings.max(1)))),
            ..self.clone()
        })
    }

    /// After an operator re-enables the subscription: a fresh start (the last success and
    /// failure times stay, for the record).
    pub fn reset(&self) -> Health {
        Health {
            last_success_at: self.last_success_at,
            last_failure_at: self.last_failure_at,
            ..Health::default()
        }
    }
}

/// The changes the stores apply atomically, on the subscription as stored.
impl crate::domain::Subscription {
    /// [`Health::after`], disabling the subscription (`failing`) when it says so.
    pub fn apply_outcome(
        &mut self,
        outcome: HealthOutcome,
        at: DateTime<Utc>,
        policy: &HealthPolicy,
    ) -> HealthChange {
        let (health, change) = self.health.after(outcome, self.enabled, at, policy);
        self.health = health;
        if let Some(reason) = change.disabled {
            self.enabled = false;
            self.disabled_reason = Some(reason);
            self.updated_at = at;
        }
        change
    }

    /// [`Health::claim_probe`].
    pub fn apply_probe_claim(&mut self, now: DateTime<Utc>, policy: &HealthPolicy) -> ProbeClaim {
        let claimed = match self.health.claim_probe(now, policy) {
            Some(health) => {
                self.health = health;
                true
            }
            None => false,
        };
        ProbeClaim {
            claimed,
            health: self.health.clone(),
        }
    }
}

/// Result of [`crate::ports::SubscriptionStore::claim_probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeClaim {
    /// Whether this caller won the probe.
    pub claimed: bool,
    /// The health as stored after the call.
    pub health: Health,
}

/// How stale a healthy subscription's stored `last_success_at` may get: a success is not written
/// while the subscription is known healthy and a success was recorded less than this ago. Writing
/// every success cost a read and a write per delivery (2 of the webhook's ~3 billed units) and
/// made a busy subscriber's item a hot key; the stored health only needs the streaks.
pub const SUCCESS_RESOLUTION: Duration = Duration::from_secs(60);

/// Whether `outcome` must be written to the stored health, given what this process knows of it:
/// `known` (the subscription as last read, at most the config cache's period old) and `last_written`
/// (this process's own latest write for it, which the cached copy may not show yet). Failures are
/// always written; a success only when it changes something: a failure streak or an open circuit
/// to clear (as far as known), or a `last_success_at` older than `resolution`.
pub fn needs_write(
    known: &Health,
    last_written: Option<(HealthOutcome, DateTime<Utc>)>,
    outcome: HealthOutcome,
    at: DateTime<Utc>,
    resolution: Duration,
) -> bool {
    if outcome == HealthOutcome::Failure {
        return true;
    }
    let clean = known.circuit == Circuit::Closed
        && known.consecutive_failures == 0
        && known.failing_since.is_none();
    let (own_failure, own_success) = match last_written {
        Some((HealthOutcome::Failure, _)) => (true, None),
        Some((HealthOutcome::Success, t)) => (false, Some(t)),
        None => (false, None),
    };
    let last_success = known.last_success_at.max(own_success);
    let recent = last_success.is_some_and(|t| at.signed_duration_since(t) < to_delta(resolution));
    own_failure || !clean || !recent
}

fn to_delta(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            breaker_threshold: 3,
            probe_backoff: Duration::from_secs(30),
            max_probe_backoff: Duration::from_secs(100),
            disable_after: Some(Duration::from_secs(3600)),
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn disable_after_parses_durations_and_zero() {
        let day = Duration::from_secs(86_400);
        assert_eq!(HealthPolicy::parse_disable_after("5d"), Ok(Some(5 * day)));
        assert_eq!(
            HealthPolicy::parse_disable_after(" 2s "),
            Ok(Some(Duration::from_secs(2)))
        );
        assert_eq!(HealthPolicy::parse_disable_after("0"), Ok(None));
        assert_eq!(HealthPolicy::parse_disable_after("0s"), Ok(None));
        assert!(HealthPolicy::parse_disable_after("soon").is_err());
        assert_eq!(HealthPolicy::default().disable_after, Some(5 * day));
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let p = policy();
        let secs: Vec<u64> = (1..=5).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 100, 100, 100]);
        assert_eq!(p.backoff(0).as_secs(), 30);
        assert_eq!(p.backoff(u32::MAX).as_secs(), 100);
    }

    #[test]
    fn failures_open_the_circuit_at_the_threshold() {
        let p = policy();
        let mut h = Health::default();
        for i in 0..2 {
            let (next, change) = h.after(HealthOutcome::Failure, true, t(i), &p);
            assert_eq!(change, HealthChange::default());
            assert_eq!(next.circuit, Circuit::Closed);
            h = next;
        }
        assert_eq!(h.consecutive_failures, 2);
        assert_eq!(h.failing_since, Some(t(0)));
        let (h, change) = h.after(HealthOutcome::Failure, true, t(2), &p);
        assert_eq!(change.circuit, Some(Circuit::Open));
        assert!(!change.reopened, "a new outage");
        assert_eq!(
            (h.circuit, h.probe_at, h.openings),
            (Circuit::Open, Some(t(32)), 1)
        );
        assert_eq!(h.gate(t(10)), Gate::Park(t(32)));
        assert_eq!(h.gate(t(32)), Gate::Probe);
        // A late failure of an attempt that started before the circuit opened.
        let (late, change) = h.after(HealthOutcome::Failure, true, t(3), &p);
        assert_eq!(change, HealthChange::default());
        assert_eq!((late.circuit, late.probe_at), (Circuit::Open, Some(t(32))));
    }

    #[test]
    fn probes_close_or_reopen_with_doubling_backoff() {
        let p = policy();
        let open = Health {
            consecutive_failures: 3,
            failing_since: Some(t(0)),
            circuit: Circuit::Open,
            probe_at: Some(t(32)),
            openings: 1,
            ..Health::default()
        };
        assert_eq!(open.claim_probe(t(31), &p), None, "not due yet");
        let probing = open.claim_probe(t(40), &p).unwrap();
        assert_eq!(
            (probing.circuit, probing.probe_at),
            (Circuit::HalfOpen, Some(t(70)))
        );
        assert_eq!(
            probing.gate(t(41)),
            Gate::Park(t(70)),
            "others wait for the probe"
        );
        assert_eq!(probing.claim_probe(t(41), &p), None, "one probe at a time");
        assert!(
            probing.claim_probe(t(70), &p).is_some(),
            "a lost probe is replaced"
        );

        let (reopened, change) = probing.after(HealthOutcome::Failure, true, t(45), &p);
        assert_eq!(change.circuit, Some(Circuit::Open));
        assert!(change.reopened, "the same outage");
        assert_eq!((reopened.openings, reopened.probe_at), (2, Some(t(105))));

        let (closed, change) = probing.after(HealthOutcome::Success, true, t(45), &p);
        assert_eq!(change.circuit, Some(Circuit::Closed));
        assert_eq!(
            closed,
            Health {
                last_success_at: Some(t(45)),
                ..Health::default()
            }
        );
        assert_eq!(closed.gate(t(46)), Gate::Deliver);
    }

    #[test]
    fn failing_for_disable_after_disables_once() {
        let p = policy();
        let (h, _) = Health::default().after(HealthOutcome::Failure, true, t(0), &p);
        let (h, change) = h.after(HealthOutcome::Failure, true, t(3599), &p);
        assert_eq!(change.disabled, None);
        let (h, change) = h.after(HealthOutcome::Failure, true, t(3600), &p);
        assert_eq!(change.disabled, Some(DisabledReason::Failing));
        let (_, change) = h.after(HealthOutcome::Failure, false, t(3700), &p);
        assert_eq!(change.disabled, None, "already disabled");
        let never = HealthPolicy {
            disable_after: None,
            ..p
        };
        let (_, change) = h.after(HealthOutcome::Failure, true, t(999_999), &never);
        assert_eq!(change.disabled, None);
    }

    #[test]
    fn a_success_resets_the_streak() {
        let p = policy();
        let (h, _) = Health::default().after(HealthOutcome::Failure, true, t(0), &p);
        let (h, _) = h.after(HealthOutcome::Success, true, t(10), &p);
        assert_eq!(h.consecutive_failures, 0);
        assert_eq!(h.failing_since, None);
        assert_eq!(h.last_failure_at, Some(t(0)));
        let (h, change) = h.after(HealthOutcome::Failure, true, t(3605), &p);
        assert_eq!(change.disabled, None, "the streak restarted at 3605");
        assert_eq!(h.failing_since, Some(t(3605)));
    }

    #[test]
    fn breaker_threshold_zero_never_opens() {
        let p = HealthPolicy {
            breaker_threshold: 0,
            ..policy()
        };
        let mut h = Health::default();
        for i in 0..50 {
            h = h.after(HealthOutcome::Failure, true, t(i), &p).0;
        }
        assert_eq!(h.circuit, Circuit::Closed);
    }

    #[test]
    fn legacy_disabled_reasons_read_as_gone() {
        let r: DisabledReason = serde_json::from_str("\"the endpoint answered 410 Gone\"").unwrap();
        assert_eq!(r, DisabledReason::Gone);
        for r in [
            DisabledReason::Manual,
            DisabledReason::Gone,
            DisabledReason::Failing,
        ] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.code()));
            assert_eq!(serde_json::from_str::<DisabledReason>(&json).unwrap(), r);
        }
    }

    #[test]
    fn needs_write_table() {
        use HealthOutcome::{Failure, Success};
        let now = Utc::now();
        let secs = |n: i64| now - chrono::Duration::seconds(n);
        let res = SUCCESS_RESOLUTION;
        let healthy = |last: Option<DateTime<Utc>>| Health {
            last_success_at: last,
            ..Health::default()
        };
        let failing = Health {
            consecutive_failures: 2,
            failing_since: Some(secs(30)),
            last_failure_at: Some(secs(5)),
            ..Health::default()
        };
        let open = Health {
            circuit: Circuit::Open,
            probe_at: Some(secs(-30)),
            ..healthy(Some(secs(10)))
        };
        let half_open = Health {
            circuit: Circuit::HalfOpen,
            ..healthy(Some(secs(10)))
        };
        type Own = Option<(HealthOutcome, DateTime<Utc>)>;
        #[rustfmt::skip]
        let cases: Vec<(&str, Health, Own, HealthOutcome, bool)> = vec![
            ("a failure is always written", healthy(Some(secs(1))), None, Failure, true),
            ("a failure while failing too", failing.clone(), None, Failure, true),
            ("first success ever", healthy(None), None, Success, true),
            ("healthy, success 10 s ago", healthy(Some(secs(10))), None, Success, false),
            ("healthy, success 59 s ago", healthy(Some(secs(59))), None, Success, false),
            ("healthy, success 60 s ago", healthy(Some(secs(60))), None, Success, true),
            ("healthy, stale copy but own success 5 s ago", healthy(Some(secs(300))), Some((Success, secs(5))), Success, false),
            ("own success long ago", healthy(Some(secs(300))), Some((Success, secs(120))), Success, true),
            ("own failure since the copy: the streak must be cleared", healthy(Some(secs(10))), Some((Failure, secs(2))), Success, true),
            ("a failure streak to clear", failing, None, Success, true),
            ("an open circuit", open, None, Success, true),
            ("a half-open probe's success closes it", half_open, None, Success, true),
            ("a clock behind the stored success", healthy(Some(secs(-5))), None, Success, false),
        ];
        for (name, known, own, outcome, want) in cases {
            assert_eq!(needs_write(&known, own, outcome, now, res), want, "{name}");
        }
    }
}
