//! The 2,000-pair recovery on moto from a planted outage: the failed deliveries are stored
//! through the store ports, then recovered through the real path (see `outage` in the parent).

use futures::stream::{self, StreamExt};

use super::*;

/// The whole test costs moto about 150 s of CPU; on a 2-core machine loaded by parallel builds
/// (load average 15 to 26) the recovery took 10 minutes.
const PLANTED_WAIT: Duration = Duration::from_secs(1200);

/// Stores `n` events of `source` as an outage would have left them: enqueued, with one failed
/// attempt to `sub_id` each. Returns their ids.
async fn plant_failed_deliveries(
    store: &hookhub::ports::Backend,
    source: &str,
    sub_id: &str,
    url: &str,
    n: usize,
) -> BTreeSet<String> {
    let planted = stream::iter(0..n)
        .map(|i| async move {
            let id = hookhub::domain::new_id("evt");
            let at = Utc::now();
            let event = hookhub::domain::Event {
                id: id.clone(),
                source_id: source.to_owned(),
                event_type: "order.created".into(),
                received_at: at,
                content_type: Some("application/json".into()),
                dedup_key: format!("once:{id}"),
                headers: Default::default(),
                body: json!({"type": "order.created", "n": i}).to_string().into(),
                enqueued: true,
            };
            store
                .events
                .insert_event(&event, Duration::ZERO)
                .await
                .expect("insert");
            let failed = hookhub::domain::Attempt {
                event_id: id.clone(),
                subscription_id: sub_id.to_owned(),
                attempt: 1,
                url: url.to_owned(),
                started_at: Utc::now(),
                duration_ms: 1,
                status_code: None,
                error: Some("connect".into()),
                response_excerpt: None,
                state: DeliveryState::Failed,
                next_attempt_at: None,
            };
            store
                .attempts
                .record_attempt(&failed)
                .await
                .expect("attempt");
            id
        })
        .buffer_unordered(SENDERS)
        .collect::<Vec<_>>()
        .await;
    planted.into_iter().collect()
}

pub(super) async fn recover_a_planted_outage_delivers_every_pair_once(kind: BackendKind) {
    const N: usize = 2000;
    // Deliveries wait their turn in a long queue; a 2-minute visibility (extended every 40 s
    // rather than every 10 s) keeps the worker's keep-alive calls from loading the emulator.
    let options = DevOptions {
        visibility_timeout: Duration::from_secs(120),
        ..one_attempt()
    };
    let (server, _dir, store) = start_dev_with_store(kind, options).await;
    open_source(&server, "src").await;
    let sink = Sink::start().await;
    let sub_id = subscribe(&server, &sink, Value::Null).await;
    let since = past_now().await;
    let clock = std::time::Instant::now();
    let sent = plant_failed_deliveries(&store, "src", &sub_id, &sink.url, N).await;
    println!(
        "recover ({kind:?}): {N} failed deliveries planted after {:?}",
        clock.elapsed()
    );

    let path = format!("/v1/subscriptions/{sub_id}/recover");
    let (status, answer) = bulk(&server, &path, json!({"since": rfc3339(since)})).await;
    assert_eq!(status, 202, "{answer}");
    let matched = answer["matched"].as_u64().unwrap();
    if answer["matched_exact"] == true {
        assert_eq!(matched, N as u64, "{answer}");
    }
    wait_until(PLANTED_WAIT, || per_event(&sink, 0).len() >= N)
        .await
        .unwrap_or_else(|_| panic!("{} of {N} recovered", per_event(&sink, 0).len()));
    println!(
        "recover ({kind:?}): {N} recovered after {:?}",
        clock.elapsed()
    );
    let done = sink.count();
    sink.assert_no_more_than(done, Duration::from_secs(2)).await;
    let t = tally(&sink, 0, &sent);
    println!(
        "recover ({kind:?}): planted {N}, matched {matched}, delivered {}, duplicated {}, lost {}",
        t.delivered, t.duplicated, t.lost
    );
    assert_eq!((t.lost, t.duplicated, t.unexpected), (0, 0, 0));
    assert_eq!(t.delivered, N);
}
