//! The pages bulk recovery and replay read: a subscription's attempts by start time, and events
//! by id range, both ascending and resumable.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};

use super::{sample_attempt, sample_event};
use crate::domain::{new_id, Attempt};
use crate::ports::{Backend, EventRange, PlannedAttempt, PLANNED_START_MAX_LAG};

/// Every page of a subscription's attempts within `[since, until]`, `limit` at a time.
async fn all_attempt_pages(
    b: &Backend,
    sub: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: usize,
) -> Vec<Attempt> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let page = b
            .attempts
            .attempts_for_subscription_page(sub, since, until, cursor.as_deref(), limit)
            .await
            .expect("attempts_for_subscription_page");
        assert!(page.attempts.len() <= limit, "a page holds at most `limit`");
        all.extend(page.attempts);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("attempt paging never ended");
}

pub async fn attempts_paged_by_subscription(b: &Backend) {
    let sub = new_id("sub");
    let other_sub = new_id("sub");
    let base = Utc::now() - TimeDelta::hours(2);
    let at = |event: &str, sub: &str, n: u32, minute: i64| {
        let mut a = sample_attempt(event, sub, n);
        a.started_at = base + TimeDelta::minutes(minute);
        a
    };
    let (e1, e2, e3) = (new_id("evt"), new_id("evt"), new_id("evt"));
    // Two attempts at the same instant, and the range's two bounds, are all in.
    let inside = vec![
        at(&e1, &sub, 1, 10),
        at(&e2, &sub, 1, 20),
        at(&e3, &sub, 1, 20),
        at(&e1, &sub, 2, 30),
        at(&e2, &sub, 2, 40),
    ];
    let outside = vec![
        at(&e3, &sub, 2, 9),
        at(&e3, &sub, 3, 41),
        at(&e1, &other_sub, 1, 20),
    ];
    for a in inside.iter().chain(&outside) {
        b.attempts.record_attempt(a).await.expect("record_attempt");
    }
    // Fan-out attempts, recorded under a plan made before they started: one planned before the
    // range and started in it (in), one planned in it and started after it (out).
    let (e4, e5) = (new_id("evt"), new_id("evt"));
    let mut inside = inside;
    let mut outside = outside;
    for (event, planned, started, is_in) in [
        (&e4, 9 * 60 + 30, 10 * 60 + 10, true),
        (&e5, 39 * 60 + 50, 40 * 60 + 20, false),
    ] {
        let planned_at = base + TimeDelta::seconds(planned);
        b.attempts
            .plan_attempts(
                event,
                planned_at,
                &[PlannedAttempt {
                    subscription_id: sub.clone(),
                    attempt: 1,
                }],
            )
            .await
            .expect("plan_attempts");
        let mut a = sample_attempt(event, &sub, 1);
        a.started_at = base + TimeDelta::seconds(started);
        b.attempts
            .record_planned_attempt(&a, planned_at)
            .await
            .expect("record_planned_attempt");
        if is_in {
            inside.push(a)
        } else {
            outside.push(a)
        }
    }
    let (since, until) = (base + TimeDelta::minutes(10), base + TimeDelta::minutes(40));
    for limit in [1, 2, 10] {
        let got = all_attempt_pages(b, &sub, since, until, limit).await;
        // By start, but attempts that started within the planning lag of each other may come
        // in the order they were planned.
        let lag = TimeDelta::from_std(PLANNED_START_MAX_LAG).unwrap();
        assert!(
            got.windows(2)
                .all(|w| w[0].started_at <= w[1].started_at + lag),
            "attempt pages ascend by start time (limit {limit})"
        );
        let key = |a: &Attempt| (a.event_id.clone(), a.attempt);
        let got_keys: Vec<_> = got.iter().map(key).collect();
        let unique: BTreeSet<_> = got_keys.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            got_keys.len(),
            "no attempt on two pages (limit {limit})"
        );
        let want: BTreeSet<_> = inside.iter().map(key).collect();
        assert_eq!(
            unique, want,
            "exactly the attempts in range (limit {limit})"
        );
        for a in &inside {
            assert!(got.contains(a), "attempts round-trip whole: {a:?}");
        }
    }
    let none = all_attempt_pages(b, &new_id("sub"), since, until, 10).await;
    assert!(none.is_empty(), "no attempts for an unknown subscription");
}

/// Every page of events in `(after, through]`, `limit` at a time; returns the ids.
async fn all_event_pages(
    b: &Backend,
    source: Option<&str>,
    after: &str,
    through: &str,
    limit: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut range = EventRange {
        source_id: source.map(str::to_owned),
        after: after.to_owned(),
        through: through.to_owned(),
    };
    for _ in 0..100 {
        let page = b
            .events
            .events_page(&range, limit)
            .await
            .expect("events_page");
        assert!(page.len() <= limit, "a page holds at most `limit`");
        let full = page.len() == limit;
        ids.extend(page.iter().map(|e| e.id.clone()));
        match page.last() {
            Some(last) if full => range.after = last.id.clone(),
            _ => return ids,
        }
    }
    panic!("event paging never ended");
}

pub async fn events_paged_by_id_range(b: &Backend) {
    // Ids made from chosen times, as `new_id` makes them from the receive time.
    let base_ms = (Utc::now() - TimeDelta::hours(1)).timestamp_millis() as u64;
    let id = |minute: u64, random: u128| {
        format!(
            "evt_{}",
            ulid::Ulid::from_parts(base_ms + minute * 60_000, random)
        )
    };
    let mut stored = Vec::new();
    for (minute, source) in [
        (0, "pa"),
        (1, "pa"),
        (1, "pb"),
        (2, "pb"),
        (3, "pa"),
        (4, "pa"),
    ] {
        let mut event = sample_event(source, &format!("once:{minute}{source}"));
        event.id = id(minute, stored.len() as u128 + 1);
        event.dedup_key = format!("once:{}", event.id);
        b.events
            .insert_event(&event, std::time::Duration::ZERO)
            .await
            .expect("insert_event");
        stored.push((event.id, source));
    }
    // (after, through]: minute 1 (its first id excluded, as the previous page's last) to 3.
    let after = stored[1].0.clone();
    let through = id(3, u128::MAX);
    let want_all: Vec<String> = vec![
        stored[2].0.clone(),
        stored[3].0.clone(),
        stored[4].0.clone(),
    ];
    let want_pa: Vec<String> = vec![stored[4].0.clone()];
    for limit in [1, 2, 10] {
        assert_eq!(
            all_event_pages(b, None, &after, &through, limit).await,
            want_all,
            "events of all sources in the id range, ascending (limit {limit})"
        );
        assert_eq!(
            all_event_pages(b, Some("pa"), &after, &through, limit).await,
            want_pa,
            "one source's events in the id range (limit {limit})"
        );
    }
    let page = b
        .events
        .events_page(
            &EventRange {
                source_id: None,
                after: "evt_".to_owned(),
                through: id(0, u128::MAX),
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1, "summaries of the first minute");
    assert_eq!(page[0].id, stored[0].0);
    assert_eq!(page[0].source_id, "pa");
    assert_eq!(page[0].event_type, "order.created");
    assert!(page[0].size > 0, "summaries carry the body size");
}
