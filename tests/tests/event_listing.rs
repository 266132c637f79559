//! `GET /v1/events` reads event summaries, never bodies, on both backends: the bytes a listing
//! of large events reads from storage are bounded far below the bodies' total.
//!
//! SQLite: the process's `rchar` (`/proc/self/io`) around the call. SQLite reads its file with
//! read syscalls (no mmap unless configured), which `rchar` counts whether or not the kernel's
//! page cache holds the data, and the bodies far exceed SQLite's own page cache; a control
//! reading whole events shows the measure does see SQLite's reads. DynamoDB: the bytes moto
//! sends back through a counting proxy in front of the events table's client.
//!
//! The two tests run one at a time: `rchar` counts the whole process, the other test included.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hookhub::aws::Aws;
use hookhub::contract::sample_event;
use hookhub::domain::Event;
use hookhub::ports::{Backend, EventStore};
use hookhub::sqlite::SqliteBackend;
use hookhub_tests::moto::{fresh_aws, sdk_config, sdk_config_for, shared_moto};
use hookhub_tests::proxy::TcpProxy;
use hookhub_tests::{temp_dir, DevOptions, DevServer};
use serde_json::Value;

const BODY_BYTES: usize = 250 * 1024;
const HOUR: Duration = Duration::from_secs(3600);

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A large event already enqueued, so no worker or sweep of the server reads it meanwhile.
fn large_event(i: usize) -> Event {
    let mut event = sample_event("bulk", &format!("delivery-{i}"));
    // Pseudo-random bytes (xorshift): the DynamoDB adapter compresses bodies, and a body that
    // compressed away would make the listing's byte count prove nothing.
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ i as u64;
    event.body = (0..BODY_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    event.enqueued = true;
    event
}

async fn insert_large_events(events: &dyn EventStore, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let event = large_event(i);
        events.insert_event(&event, HOUR).await.expect("insert");
        ids.push(event.id);
    }
    ids.reverse();
    ids
}

/// Checks the page lists `ids` (newest first) as summaries, in the admin API's JSON shape.
fn assert_summaries(page: &Value, ids: &[String]) {
    let data = page["data"].as_array().expect("data");
    let listed: Vec<&str> = data.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ids, "every event, newest first");
    for summary in data {
        let mut fields: Vec<&str> = summary
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "content_type",
                "event_type",
                "id",
                "received_at",
                "size",
                "source_id"
            ],
            "a summary has exactly these fields"
        );
        assert_eq!(summary["size"], BODY_BYTES, "size is the body length");
        assert_eq!(summary["source_id"], "bulk");
        assert_eq!(summary["content_type"], "application/json");
    }
}

/// Bytes this process has read through read syscalls (files, sockets), from `/proc/self/io`.
fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|line| line.strip_prefix("rchar:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("rchar in /proc/self/io")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_listing_reads_no_bodies() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = temp_dir();
    let db = dir.path().join("hookhub.db");
    let count = 400;
    let ids = {
        let sqlite = SqliteBackend::open(&db).expect("open sqlite");
        insert_large_events(&sqlite, count).await
    };
    let bodies = (count * BODY_BYTES) as u64;

    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    let before = bytes_read();
    let page = server.admin().get("/v1/events?limit=1000").await;
    let read = bytes_read() - before;
    assert_summaries(&page, &ids);
    assert!(
        read < bodies / 20,
        "listing {count} events read {read} bytes; their bodies total {bodies}"
    );

    // Control: the same measure around reading a few whole events sees their bodies, so the
    // bound above is not met merely because SQLite's reads went unseen.
    let sqlite = SqliteBackend::open(&db).expect("open sqlite again");
    let before = bytes_read();
    for id in &ids[..8] {
        let event = sqlite.get_event(id).await.unwrap().expect("event");
        assert_eq!(event.body.len(), BODY_BYTES);
    }
    let read = bytes_read() - before;
    assert!(
        read >= (8 * BODY_BYTES) as u64,
        "reading 8 whole events read only {read} bytes: the measure misses SQLite's reads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_listing_reads_no_bodies() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let aws = fresh_aws().await;
    let count = 40;
    let ids = insert_large_events(&aws.store(), count).await;
    let bodies = (count * BODY_BYTES) as u64;

    let moto: SocketAddr = shared_moto()
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("moto address");
    let proxy = TcpProxy::start(moto).await.expect("proxy");
    let (settings, proxied) = (aws.settings().clone(), proxy.endpoint());
    let server = DevServer::start_on(DevOptions::default(), async move {
        // Only the events table goes through the proxy: the queue polling stays out of the count.
        let direct = Aws::new(&sdk_config().await, settings.clone());
        let events = Arc::new(Aws::new(&sdk_config_for(&proxied).await, settings).store());
        let store = Arc::new(direct.store());
        let queue = Arc::new(direct.queue().await.expect("queue"));
        let backend = Backend::from_parts(store.clone(), store.clone(), events, store, queue);
        (backend, None)
    })
    .await;

    let before = proxy.traffic();
    let page = server.admin().get("/v1/events?limit=1000").await;
    let moved = proxy.traffic().since(before);
    assert_summaries(&page, &ids);
    assert!(moved.to_upstream > 0, "the listing went through the proxy");
    assert!(
        moved.from_upstream < bodies / 20,
        "listing {count} events read {} bytes from DynamoDB; their bodies total {bodies}",
        moved.from_upstream
    );

    // Control: a whole event through the same path does bring its body.
    let before = proxy.traffic();
    server.admin().get(&format!("/v1/events/{}", ids[0])).await;
    let moved = proxy.traffic().since(before);
    assert!(
        moved.from_upstream >= BODY_BYTES as u64,
        "a whole event read only {} bytes: the proxy is not in the path",
        moved.from_upstream
    );
}
