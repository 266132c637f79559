//! The real `hookhub dev` binary on a temp data dir: the data dir and every file in it are
//! owner-only (also when an earlier run left them loose), the banner shows a generated admin key
//! once and afterwards only where it is, a key given by the environment is never shown, and the
//! SSRF guard follows `--allow-private-targets` / `HOOKHUB_ALLOW_PRIVATE_TARGETS`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{json, Value};

mod support;
use support::{start_dev, Dev};

const FILES: [&str; 5] = [
    "hookhub.db",
    "hookhub.db-wal",
    "hookhub.db-shm",
    "admin-key",
    "lock",
];

/// Starts the binary on SQLite in `data_dir` (see `support::start_dev`).
fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Dev {
    start_dev("sqlite", data_dir, args, env)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for file in FILES {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
}

async fn post(dev: &Dev, key: &str, path: &str, body: Value) -> (u16, Value) {
    let response = hookhub_tests::http_client()
        .post(format!("{}{path}", dev.base))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A source and one stored webhook, so the database has its WAL and -shm files.
async fn store_a_webhook(dev: &Dev, key: &str, source: &str) {
    let (status, answer) = post(
        dev,
        key,
        "/v1/sources",
        json!({"id": source, "verify": {"scheme": "none"}}),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = post(dev, "", &format!("/webhooks/{source}"), json!({})).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn data_dir_is_owner_only_and_the_key_is_shown_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(".hookhub");
    let key_file = dir.join("admin-key");

    // First start: everything created owner-only; the new key is printed with its file.
    let dev = start(&dir, &[], &[]);
    let key = fs::read_to_string(&key_file).unwrap().trim().to_string();
    assert!(key.starts_with("hh_"), "{key}");
    let key_line = dev
        .banner
        .lines()
        .find(|l| l.contains("admin key:"))
        .expect("a line about the key");
    assert!(
        key_line.contains(&key) && key_line.contains(&key_file.display().to_string()),
        "{}",
        dev.banner
    );
    assert!(
        dev.banner.contains("loopback and private included"),
        "{}",
        dev.banner
    );
    store_a_webhook(&dev, &key, "first").await;
    assert_private(&dir);
    drop(dev);

    // Loosen everything, as an older version or a hand-made dir would have it.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    for file in FILES {
        fs::set_permissions(dir.join(file), fs::Permissions::from_mode(0o644)).unwrap();
    }

    // Second start: tightened again; the banner names the key file, never the key.
    let dev = start(&dir, &[], &[]);
    assert!(!dev.banner.contains(&key), "{}", dev.banner);
    assert!(
        dev.banner
            .contains(&format!("admin key: in {}", key_file.display())),
        "{}",
        dev.banner
    );
    store_a_webhook(&dev, &key, "second").await;
    assert_private(&dir);
    drop(dev);

    // A key from the environment is said to be so, and not shown; the guard is on by env.
    let env_key = "hh_key_from_the_environment";
    let dev = start(
        &dir,
        &[],
        &[
            ("HOOKHUB_ADMIN_KEY", env_key),
            ("HOOKHUB_ALLOW_PRIVATE_TARGETS", "false"),
        ],
    );
    assert!(
        !dev.banner.contains(env_key) && !dev.banner.contains(&key),
        "{}",
        dev.banner
    );
    assert!(dev.banner.contains("HOOKHUB_ADMIN_KEY"), "{}", dev.banner);
    assert!(dev.banner.contains("SSRF guard on"), "{}", dev.banner);
    let (status, answer) = post(
        &dev,
        env_key,
        "/v1/subscriptions",
        json!({"url": "http://127.0.0.1:9/hook"}),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("url_not_allowed")),
        "{answer}"
    );
}

#[tokio::test]
async fn the_guard_flag_refuses_private_subscription_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let key = "hh_flag_key";
    let urls = ["http://10.1.2.3/hook", "http://[fd00:ec2::254]/"];
    let guarded = start(
        tmp.path(),
        &["--admin-key", key, "--allow-private-targets", "false"],
        &[],
    );
    assert!(
        guarded.banner.contains("SSRF guard on"),
        "{}",
        guarded.banner
    );
    for url in urls {
        let (status, answer) = post(&guarded, key, "/v1/subscriptions", json!({"url": url})).await;
        assert_eq!(status, 422, "{url}: {answer}");
    }
    drop(guarded);

    let open = start(
        tmp.path(),
        &["--admin-key", key, "--allow-private-targets", "true"],
        &[],
    );
    for url in urls {
        let (status, answer) = post(&open, key, "/v1/subscriptions", json!({"url": url})).await;
        assert_eq!(status, 201, "{url}: {answer}");
    }
}
