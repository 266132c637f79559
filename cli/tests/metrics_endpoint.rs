//! The real `hookhub dev` binary's `GET /metrics`: behind the admin key by default, public with
//! `--metrics-public` / `HOOKHUB_METRICS_PUBLIC`, with the SQLite queue's gauges.

mod support;
use support::start_dev;

async fn scrape(base: &str, key: Option<&str>) -> (u16, String) {
    let mut request = hookhub_tests::http_client().get(format!("{base}/metrics"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_follow_the_flag_and_show_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let key = "hh_metrics_test_key";
    let dev = start_dev("sqlite", dir.path(), &[], &[("HOOKHUB_ADMIN_KEY", key)]);
    assert!(
        dev.banner.contains("/metrics   (admin key)"),
        "{}",
        dev.banner
    );
    assert_eq!(scrape(&dev.base, None).await.0, 401);
    let (status, text) = scrape(&dev.base, Some(key)).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.lines().any(|l| l == "queue_depth 0"), "{text}");
    assert!(text.lines().any(|l| l == "oldest_task_age 0"), "{text}");
    drop(dev);

    for (args, env) in [
        (&["--metrics-public"][..], &[][..]),
        (&[][..], &[("HOOKHUB_METRICS_PUBLIC", "true")][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dev = start_dev("sqlite", dir.path(), args, env);
        assert!(dev.banner.contains("/metrics   (public)"), "{}", dev.banner);
        let (status, text) = scrape(&dev.base, None).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("# TYPE queue_depth gauge"), "{text}");
    }
}
