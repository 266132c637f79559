use chrono::TimeDelta;

use super::*;
use crate::domain::{DeliveryState, Secret};

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::minutes(minute)
}

fn attempt(n: u32, state: DeliveryState, minute: i64) -> Attempt {
    Attempt {
        event_id: "evt_1".into(),
        subscription_id: "sub_1".into(),
        attempt: n,
        url: "https://example.com".into(),
        started_at: at(minute),
        duration_ms: 1,
        status_code: Some(503),
        error: None,
        response_excerpt: None,
        state,
        next_attempt_at: None,
    }
}

/// Since minute 10, until minute 50, started at minute 60.
fn recover_job(states: &[DeliveryState]) -> RecoverJob {
    RecoverJob {
        job_id: "job_1".into(),
        subscription_id: "sub_1".into(),
        since: at(10),
        until: at(50),
        states: states.to_vec(),
        started_at: at(60),
        cursor: None,
        enqueued: 0,
    }
}

use DeliveryState::{Failed, Retrying, Skipped, Succeeded};

/// (case, the pair's attempts, index of the row looked at, states, expected (attempt, start)).
type RecoverCase = (
    &'static str,
    Vec<Attempt>,
    usize,
    &'static [DeliveryState],
    Option<(u32, u32)>,
);
/// (case, the pair's attempts, expected (attempt, start)).
type ReplayCase = (&'static str, Vec<Attempt>, Option<(u32, u32)>);

#[test]
fn recover_decisions() {
    const DEFAULT: &[DeliveryState] = &[Failed, Skipped];
    let cases: Vec<RecoverCase> = vec![
        (
            "failed once: a new series after it",
            vec![attempt(1, Failed, 20)],
            0,
            DEFAULT,
            Some((2, 2)),
        ),
        (
            "skipped (disabled): recovered",
            vec![attempt(1, Skipped, 20)],
            0,
            DEFAULT,
            Some((2, 2)),
        ),
        (
            "exhausted after retries: numbered after the last",
            vec![attempt(1, Retrying, 15), attempt(2, Failed, 20)],
            1,
            DEFAULT,
            Some((3, 3)),
        ),
        (
            "an earlier row of the pair does not act",
            vec![attempt(1, Failed, 15), attempt(2, Failed, 20)],
            0,
            DEFAULT,
            None,
        ),
        (
            "succeeded: not in the default states",
            vec![attempt(1, Succeeded, 20)],
            0,
            DEFAULT,
            None,
        ),
        (
            "succeeded, asked for",
            vec![attempt(1, Succeeded, 20)],
            0,
            &[Succeeded],
            Some((2, 2)),
        ),
        (
            "failed, then replayed and succeeded later (outside the range)",
            vec![attempt(1, Failed, 20), attempt(2, Succeeded, 55)],
            0,
            DEFAULT,
            None,
        ),
        (
            "latest attempt before the range",
            vec![attempt(1, Failed, 5)],
            0,
            DEFAULT,
            None,
        ),
        (
            "latest attempt after the range (but before the job)",
            vec![attempt(1, Failed, 55)],
            0,
            DEFAULT,
            None,
        ),
        (
            "range bounds are inclusive",
            vec![attempt(1, Failed, 50)],
            0,
            DEFAULT,
            Some((2, 2)),
        ),
        (
            "an attempt since the job started (its own, before a crash): left alone",
            vec![attempt(1, Failed, 20), attempt(2, Retrying, 61)],
            0,
            DEFAULT,
            None,
        ),
        (
            "its own attempt failed for good meanwhile: not recovered twice",
            vec![attempt(1, Failed, 20), attempt(2, Failed, 61)],
            0,
            DEFAULT,
            None,
        ),
    ];
    for (case, pair, row, states, expected) in cases {
        let got = recover_series(&pair[row], &pair, &recover_job(states));
        assert_eq!(
            got.map(|s| (s.attempt, s.start)),
            expected,
            "{case}: {pair:?}"
        );
    }
}

#[test]
fn two_records_of_one_number_are_recovered_once() {
    // A task run twice at once records its delivery twice under one number; the store gives
    // the pair with the later one, and a subscription's page lists both rows.
    let job = recover_job(&[Failed]);
    let (older, later) = (attempt(1, Failed, 20), attempt(1, Failed, 25));
    let pair = vec![later.clone()];
    assert_eq!(recover_series(&older, &pair, &job), None);
    assert_eq!(
        recover_series(&later, &pair, &job).map(|s| s.attempt),
        Some(2)
    );
}

#[test]
fn a_redone_page_decides_the_same() {
    // Before the job's own attempt exists (crash before it ran) the page yields the same task
    // as the first time; once it exists, none.
    let job = recover_job(&[Failed]);
    let before = vec![attempt(3, Failed, 20)];
    let first = recover_series(&before[0], &before, &job).unwrap();
    let again = recover_series(&before[0], &before, &job).unwrap();
    assert_eq!(first, again);
    assert_eq!(
        deliver_task("evt_1", "sub_1", first),
        deliver_task("evt_1", "sub_1", again)
    );
    let mut after = before.clone();
    after.push(attempt(first.attempt, Succeeded, 61));
    assert_eq!(recover_series(&after[0], &after, &job), None);
}

#[test]
fn replay_decisions() {
    let started = at(60);
    let cases: Vec<ReplayCase> = vec![
        ("never attempted: attempt 1", vec![], Some((1, 1))),
        (
            "delivered: a new series",
            vec![attempt(1, Succeeded, 20)],
            Some((2, 2)),
        ),
        (
            "retry pending: after the pending one",
            vec![attempt(1, Retrying, 20)],
            Some((3, 3)),
        ),
        (
            "attempted since the job started",
            vec![attempt(1, Succeeded, 20), attempt(2, Succeeded, 61)],
            None,
        ),
    ];
    for (case, pair, expected) in cases {
        let got = replay_series(&pair, started).map(|s| (s.attempt, s.start));
        assert_eq!(got, expected, "{case}");
    }
}

fn summary(id: &str, source: &str, event_type: &str) -> EventSummary {
    EventSummary {
        id: id.into(),
        source_id: source.into(),
        event_type: event_type.into(),
        received_at: at(20),
        content_type: None,
        size: 0,
    }
}

fn replay_job(event_type: Option<&str>, subscription_id: Option<&str>) -> ReplayJob {
    ReplayJob {
        job_id: "job_1".into(),
        source_id: None,
        event_type: event_type.map(str::to_owned),
        subscription_id: subscription_id.map(str::to_owned),
        since: at(10),
        until: at(50),
        started_at: at(60),
        after: None,
        enqueued: 0,
    }
}

#[test]
fn replay_selection_and_targets() {
    let order = summary("evt_1", "shop", "order.created");
    let user = summary("evt_2", "shop", "user.created");
    assert!(replay_selects(&replay_job(None, None), &order));
    assert!(replay_selects(&replay_job(Some("order.*"), None), &order));
    assert!(!replay_selects(&replay_job(Some("order.*"), None), &user));
    assert!(replay_selects(
        &replay_job(Some("user.created"), None),
        &user
    ));

    let sub = |id: &str, types: &[&str], enabled: bool| Subscription {
        event_types: types.iter().map(|t| t.to_string()).collect(),
        enabled,
        ..Subscription::new(id, "https://example.com", Secret::new("whsec_x"), at(0))
    };
    let subs = vec![
        sub("sub_all", &[], true),
        sub("sub_orders", &["order.*"], true),
        sub("sub_off", &[], false),
    ];
    let ids = |job: &ReplayJob, event: &EventSummary| -> Vec<String> {
        replay_targets(job, &subs, event)
            .into_iter()
            .map(|s| s.id.clone())
            .collect()
    };
    assert_eq!(
        ids(&replay_job(None, None), &order),
        ["sub_all", "sub_orders"]
    );
    assert_eq!(ids(&replay_job(None, None), &user), ["sub_all"]);
    assert_eq!(
        ids(&replay_job(None, Some("sub_orders")), &order),
        ["sub_orders"]
    );
    // A named subscription still gets only what its filters select.
    assert!(ids(&replay_job(None, Some("sub_orders")), &user).is_empty());
}

#[test]
fn id_bounds_bracket_the_receive_times() {
    let t = at(30);
    let ms = t.timestamp_millis() as u64;
    let id_at = |ms: u64, random: u128| format!("evt_{}", ulid::Ulid::from_parts(ms, random));
    let floor = id_floor(t);
    let ceiling = id_ceiling(t);
    // Ids from `t` (any random part) are in (floor, ceiling]; the millisecond before and after
    // are not.
    for random in [0, 1, u128::MAX] {
        assert!(id_at(ms, random) > floor && id_at(ms, random) <= ceiling);
    }
    assert!(id_at(ms - 1, u128::MAX) <= floor);
    assert!(id_at(ms + 1, 0) > ceiling);
    assert_eq!(id_floor(DateTime::UNIX_EPOCH), "evt_");
    assert!(crate::domain::new_id("evt") > id_floor(t));
}
