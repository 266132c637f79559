//! Check of `reserve_slot`: GCRA bookings kept per subscription, nothing booked when the slot is
//! too far. Times are passed in, so nothing here depends on the clock; the calls are made one
//! after another (moto does not serialise conditional writes, see `health.rs`).

use std::time::Duration;

use chrono::{TimeDelta, Utc};

use crate::decision::rate::Slot;
use crate::ports::{Backend, EventQuery};

pub async fn rate_limit_reserves_slots(b: &Backend) {
    let s = &b.subscriptions;
    let (sub, other) = (crate::domain::new_id("sub"), crate::domain::new_id("sub"));
    // Nanoseconds on purpose: the stored time must round-trip exactly.
    let t0 = Utc::now() + TimeDelta::nanoseconds(123);
    let ms = |n: i64| t0 + TimeDelta::milliseconds(n);
    let wait = |n: u64| Slot::Now {
        wait: Duration::from_millis(n),
    };
    let max_wait = Duration::from_millis(250);
    let rate = 10.0; // one per 100 ms
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(s.reserve_slot(&sub, rate, t0, max_wait).await.unwrap());
    }
    assert_eq!(
        got,
        [
            wait(0),
            wait(100),
            wait(200),
            Slot::Later {
                retry_at: ms(300 - 125)
            }
        ],
        "a burst gets consecutive slots one interval apart, then none past max_wait"
    );
    assert_eq!(
        s.reserve_slot(&sub, rate, t0, max_wait).await.unwrap(),
        Slot::Later { retry_at: ms(175) },
        "`Later` booked nothing"
    );
    assert_eq!(
        s.reserve_slot(&other, rate, t0, max_wait).await.unwrap(),
        wait(0),
        "each subscription has its own limit"
    );
    assert_eq!(
        s.reserve_slot(&sub, rate, ms(150), max_wait).await.unwrap(),
        wait(150),
        "later on, the next slot is the one after the last booked"
    );
    assert_eq!(
        s.reserve_slot(&sub, rate, ms(10_000), max_wait)
            .await
            .unwrap(),
        wait(0),
        "an idle limit books at once"
    );
    let slower = [
        s.reserve_slot(&sub, 1.0, ms(10_000), max_wait)
            .await
            .unwrap(),
        s.reserve_slot(&sub, 1.0, ms(10_000), max_wait)
            .await
            .unwrap(),
    ];
    assert_eq!(
        slower,
        [
            wait(100),
            Slot::Later {
                retry_at: ms(11_100 - 125)
            }
        ],
        "a changed rate applies from the stored time on"
    );
    assert!(
        s.list_subscriptions().await.unwrap().is_empty(),
        "the state is not a subscription"
    );
    let events = b
        .events
        .list_events(&EventQuery {
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert!(events.is_empty(), "nor an event: {events:?}");
    assert!(
        b.events
            .list_unenqueued(ms(20_000), 10)
            .await
            .unwrap()
            .is_empty(),
        "nor work for the unenqueued sweep"
    );
}
