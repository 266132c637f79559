//! The real `hookhub dev` binary on a temp data dir: the data dir and every file in it are
//! owner-only (also when an earlier run left them loose), the banner shows a generated admin key
//! once and afterwards only where it is, a key given by the environment is never shown, and the
//! SSRF guard follows `--allow-private-targets` / `HOOKHUB_ALLOW_PRIVATE_TARGETS`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long the binary may take to print its banner (a cold start on a busy CI machine).
const STARTUP: Duration = Duration::from_secs(60);
const FILES: [&str; 5] = [
    "hookhub.db",
    "hookhub.db-wal",
    "hookhub.db-shm",
    "admin-key",
    "lock",
];

/// A running `hookhub dev`; killed when dropped.
struct Dev {
    child: Child,
    base: String,
    banner: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on `data_dir`, on a free port, and waits for its whole banner (its last
/// line is the `targets:` one).
fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Dev {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookhub"));
    command
        .args(["dev", "--backend", "sqlite", "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // Only what the test sets: nothing inherited from the caller's environment.
    for var in [
        "HOOKHUB_ADMIN_KEY",
        "HOOKHUB_ALLOW_PRIVATE_TARGETS",
        "HOOKHUB_BACKEND",
        "HOOKHUB_DATA_DIR",
        "HOOKHUB_LISTEN",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let mut child = command.spawn().expect("start hookhub dev");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if line.map(|l| tx.send(l)).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + STARTUP;
    let mut lines: Vec<String> = Vec::new();
    while !lines
        .last()
        .is_some_and(|l| l.trim_start().starts_with("targets:"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(e) => panic!("no whole banner within {STARTUP:?} ({e}); got {lines:#?}"),
        }
    }
    let base = lines
        .iter()
        .find_map(|l| l.strip_prefix("Hookhub dev server listening on "))
        .expect("the banner names the address")
        .to_string();
    Dev {
        child,
        base,
        banner: lines.join("\n"),
    }
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
