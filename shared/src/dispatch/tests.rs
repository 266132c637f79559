//! Table tests of `plan()`: which attempt of a pair is delivered, skipped or re-sent.

use super::*;

fn attempt(n: u32, state: DeliveryState) -> Attempt {
    Attempt {
        event_id: "evt_1".into(),
        subscription_id: "sub_1".into(),
        attempt: n,
        url: "https://example.com".into(),
        started_at: Utc::now(),
        duration_ms: 1,
        status_code: Some(500),
        error: None,
        response_excerpt: None,
        state,
        next_attempt_at: (state == DeliveryState::Retrying)
            .then(|| Utc::now() + chrono::Duration::seconds(30)),
    }
}

fn decide(latest: Option<&Attempt>, attempt: u32, start: u32, redelivered: bool) -> &'static str {
    match plan(latest, Series::new(attempt, start), redelivered) {
        Plan::Deliver => "deliver",
        Plan::Skip => "skip",
        Plan::Resend(..) => "resend",
    }
}

#[test]
fn a_stored_plan_is_relied_on_under_its_own_layout_while_the_event_is_young() {
    let secs = chrono::TimeDelta::seconds;
    let ms = chrono::TimeDelta::milliseconds;
    // (this log's layout, the plan's, the event's age, relied on)
    let cases = [
        (Some(64), 64, ms(5), true),
        (Some(64), 64, secs(30), true),
        (Some(64), 64, secs(30) + ms(1), false),
        (Some(64), 64, secs(3600), false),
        // A dispatcher on another shard count keys attempts elsewhere.
        (Some(64), 2, ms(5), false),
        // An adapter that keeps no stored plans (SQLite).
        (None, 64, ms(5), false),
        // The dispatcher's clock behind the receiver's.
        (Some(64), 64, ms(-1), false),
    ];
    for (own, plan, age, want) in cases {
        assert_eq!(
            relies_on_stored_plan(own, plan, age),
            want,
            "{own:?} {plan} {age}"
        );
    }
}

#[test]
fn an_attempt_long_after_its_plan_is_recorded_on_its_own() {
    let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let after = |secs: i64| t + chrono::Duration::seconds(secs);
    let cases = [
        (None, after(0), None),
        (Some(t), after(0), Some(t)),
        (Some(t), after(60), Some(t)),
        (Some(t), after(61), None),
        // The wall clock stepped back between the plan and the start.
        (Some(t), after(-1), None),
    ];
    for (planned, started, want) in cases {
        assert_eq!(as_planned(planned, started), want, "{planned:?} {started}");
    }
}

#[test]
fn first_attempts_and_retries() {
    assert_eq!(decide(None, 1, 1, false), "deliver");
    let failed = attempt(1, DeliveryState::Retrying);
    assert_eq!(decide(Some(&failed), 2, 1, false), "deliver");
    // The same task again: already done.
    assert_eq!(decide(Some(&failed), 1, 1, false), "skip");
    // Redelivered after recording but maybe before scheduling: schedule again.
    assert_eq!(decide(Some(&failed), 1, 1, true), "resend");
}

#[test]
fn success_ends_a_series_but_not_a_replay() {
    let ok = attempt(2, DeliveryState::Succeeded);
    assert_eq!(decide(Some(&ok), 3, 1, false), "skip");
    assert_eq!(decide(Some(&ok), 2, 1, true), "skip");
    assert_eq!(decide(Some(&ok), 3, 3, false), "deliver");
    // A replay's own retry after a success within it is not sent.
    let replay_ok = attempt(3, DeliveryState::Succeeded);
    assert_eq!(decide(Some(&replay_ok), 4, 3, false), "skip");
}

#[test]
fn resent_retries_keep_their_series() {
    let failed = attempt(5, DeliveryState::Retrying);
    match plan(Some(&failed), Series::new(5, 5), true) {
        Plan::Resend(
            Task::Deliver {
                attempt,
                series_start,
                ..
            },
            delay,
        ) => {
            assert_eq!((attempt, series_start), (6, Some(5)));
            assert!(delay <= Duration::from_secs(30));
        }
        _ => panic!("expected a resend"),
    }
}

/// Dispatch tasks carrying their event inline, delivered without reading it back.
#[cfg(feature = "sqlite")]
mod inline;
