use super::*;

fn policy() -> RetryPolicy {
    let mut p = RetryPolicy::with_schedule(vec![Duration::from_secs(5), Duration::from_secs(300)]);
    p.jitter = 0.0;
    p
}

fn status(code: u16) -> Outcome {
    Outcome::Status {
        code,
        retry_after: None,
    }
}

fn status_retry_after(code: u16, value: &str) -> Outcome {
    Outcome::Status {
        code,
        retry_after: Some(value.to_owned()),
    }
}

#[test]
fn judge_table() {
    let now = DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let later = now + chrono::Duration::seconds(30);
    let secs = |s| Verdict::Retry {
        after: Duration::from_secs(s),
    };
    let first = Series::FIRST;
    let second = Series::new(2, 1);
    let last = Series::new(3, 1);
    let replay = Series::new(9, 9);
    let replay_last = Series::new(11, 9);
    let cases: Vec<(&str, Outcome, Series, Verdict)> = vec![
        ("200", status(200), first, Verdict::Succeeded),
        ("204 on a retry", status(204), second, Verdict::Succeeded),
        ("410 gone", status(410), first, Verdict::Gone),
        (
            "410 even on the last attempt",
            status(410),
            last,
            Verdict::Gone,
        ),
        ("500 first", status(500), first, secs(5)),
        ("502 second", status(502), second, secs(300)),
        ("5xx exhausted", status(500), last, Verdict::Exhausted),
        ("4xx retried", status(400), first, secs(5)),
        (
            "transform failed: not retried",
            Outcome::Failed(DeliveryError::TransformFailed),
            first,
            Verdict::Rejected,
        ),
        (
            "429 Retry-After longer",
            status_retry_after(429, "120"),
            first,
            secs(120),
        ),
        (
            "503 Retry-After shorter",
            status_retry_after(503, "1"),
            first,
            secs(5),
        ),
        (
            "503 Retry-After date",
            status_retry_after(503, "Wed, 01 May 2024 12:10:00 GMT"),
            first,
            secs(600),
        ),
        (
            "500 Retry-After ignored",
            status_retry_after(500, "120"),
            first,
            secs(5),
        ),
        (
            "429 exhausted",
            status_retry_after(429, "5"),
            last,
            Verdict::Exhausted,
        ),
        (
            "timeout",
            Outcome::Failed(DeliveryError::Timeout),
            first,
            secs(5),
        ),
        (
            "connect",
            Outcome::Failed(DeliveryError::Connect),
            second,
            secs(300),
        ),
        (
            "timeout exhausted",
            Outcome::Failed(DeliveryError::Timeout),
            last,
            Verdict::Exhausted,
        ),
        ("replay restarts the schedule", status(500), replay, secs(5)),
        (
            "replay exhausted",
            status(500),
            replay_last,
            Verdict::Exhausted,
        ),
        ("replay succeeds", status(200), replay, Verdict::Succeeded),
        (
            "breaker open",
            Outcome::CircuitOpen { until: later },
            second,
            Verdict::Parked { until: later },
        ),
        (
            "rate limited: parked like an open circuit",
            Outcome::RateLimited { until: later },
            first,
            Verdict::Parked { until: later },
        ),
        (
            "disabled",
            Outcome::Disabled,
            first,
            Verdict::Skipped {
                reason: SkipReason::SubscriptionDisabled,
            },
        ),
    ];
    for (name, outcome, series, expected) in cases {
        assert_eq!(judge(&outcome, series, &policy(), now), expected, "{name}");
    }
}

#[test]
fn verdicts_map_to_states_and_health() {
    let parked = Verdict::Parked { until: Utc::now() };
    assert_eq!(parked.state(), None, "parking logs nothing");
    assert_eq!(parked.health(), None);
    let skipped = Verdict::Skipped {
        reason: SkipReason::SubscriptionDisabled,
    };
    assert_eq!(skipped.state(), Some(DeliveryState::Skipped));
    assert_eq!(skipped.health(), None);
    assert_eq!(Verdict::Gone.state(), Some(DeliveryState::Failed));
    assert_eq!(Verdict::Gone.health(), Some(HealthOutcome::Failure));
    assert_eq!(Verdict::Exhausted.state(), Some(DeliveryState::Failed));
    assert_eq!(Verdict::Succeeded.health(), Some(HealthOutcome::Success));
    let retry = Verdict::Retry {
        after: Duration::from_secs(5),
    };
    assert_eq!(retry.state(), Some(DeliveryState::Retrying));
    assert_eq!(retry.retry_after(), Some(Duration::from_secs(5)));
}

fn logged(n: u32, state: DeliveryState) -> Attempt {
    Attempt {
        event_id: "evt_1".into(),
        subscription_id: "sub_1".into(),
        attempt: n,
        url: "https://example.com".into(),
        started_at: Utc::now(),
        duration_ms: 1,
        status_code: None,
        error: None,
        response_excerpt: None,
        state,
        next_attempt_at: None,
    }
}

#[test]
fn series_numbering() {
    assert_eq!(Series::new(1, 1).position(), 1);
    assert_eq!(Series::new(3, 1).position(), 3);
    assert_eq!(Series::new(9, 9).position(), 1);
    assert_eq!(Series::new(10, 9).position(), 2);
    assert_eq!(Series::new(9, 9).next(), Series::new(10, 9));
    assert_eq!(Series::from_task(2, None), Some(Series::new(2, 1)));
    assert_eq!(Series::from_task(5, Some(4)), Some(Series::new(5, 4)));
    assert_eq!(Series::from_task(0, None), None);
    assert_eq!(Series::from_task(3, Some(4)), None);
    assert_eq!(Series::FIRST.task_start(), None);
    assert_eq!(Series::new(5, 4).task_start(), Some(4));
    // Replay starts.
    assert_eq!(Series::after(None), Series::new(1, 1));
    let done = logged(3, DeliveryState::Failed);
    assert_eq!(Series::after(Some(&done)), Series::new(4, 4));
    let skipped = logged(1, DeliveryState::Skipped);
    assert_eq!(Series::after(Some(&skipped)), Series::new(2, 2));
    let pending = logged(2, DeliveryState::Retrying);
    assert_eq!(
        Series::after(Some(&pending)),
        Series::new(4, 4),
        "a pending retry keeps number 3"
    );
}

#[test]
fn error_codes_are_stable_and_unique() {
    let codes: Vec<&str> = DeliveryError::ALL.iter().map(|e| e.code()).collect();
    assert_eq!(
        codes,
        [
            "timeout",
            "connect",
            "dns",
            "tls",
            "blocked",
            "request",
            "signing",
            "transform_failed"
        ]
    );
    for e in DeliveryError::ALL {
        assert_eq!(DeliveryError::from_code(e.code()), Some(e));
        assert_eq!(serde_json::to_value(e).unwrap(), e.code());
    }
    assert_eq!(DeliveryError::from_code("nope"), None);
}

#[test]
fn readme_error_table_is_generated_from_the_enum() {
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains(&DeliveryError::markdown_table()),
        "README.md must contain the error code table exactly as DeliveryError::markdown_table() \
         prints it:\n{}",
        DeliveryError::markdown_table()
    );
}
