//! scripts/verify-deployment.sh against the real `hookhub dev`, on SQLite and on DynamoDB + SQS
//! (moto): every step passes with the admin key (including the signature check at its own local
//! sink), nothing it created is left behind, and a wrong key fails it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod support;
use support::{moto_env, start_dev, Dev};

/// The step lines a passing run prints, in order.
const STEPS: [&str; 10] = [
    "admin API answers the key",
    "start a local sink",
    "create a source (generic HMAC-SHA256)",
    "create a subscription to the sink",
    "send a signed webhook",
    "the sink receives the signed delivery",
    "the attempt log records the delivery",
    "a wrong signature gets 401",
    "an unknown source gets 404",
    "delete the subscription and the source",
];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/verify-deployment.sh")
}

fn verify(dev: &Dev, key_file: &Path) -> Output {
    Command::new("bash")
        .arg(script())
        .args(["--url", &dev.base, "--key-file"])
        .arg(key_file)
        .output()
        .expect("run verify-deployment.sh")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A GET on the admin API with the key, through curl (the script's own HTTP client).
fn admin_get(dev: &Dev, key: &str, path: &str) -> Value {
    let output = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "15", "-H"])
        .arg(format!("authorization: Bearer {key}"))
        .arg(format!("{}{path}", dev.base))
        .output()
        .expect("run curl");
    assert!(output.status.success(), "{path}: {}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("a JSON answer")
}

fn passes_then_fails_with_a_wrong_key(dev: &Dev, data_dir: &Path) {
    let key_file = data_dir.join("admin-key");
    let run = verify(dev, &key_file);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(run.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let oks: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("verify: ok   "))
        .collect();
    assert_eq!(oks.len(), STEPS.len(), "{stdout}");
    for (line, step) in oks.iter().zip(STEPS) {
        assert!(line.starts_with(step), "expected {step:?}, got {line:?}");
        // Each step with its time.
        assert!(line.contains(" ms)"), "{line}");
    }
    assert!(stdout.contains("signature verified"), "{stdout}");
    assert!(
        stdout
            .lines()
            .last()
            .unwrap_or("")
            .starts_with("verify: PASS in "),
        "{stdout}"
    );

    // It deleted what it created.
    let key = std::fs::read_to_string(&key_file).unwrap();
    let key = key.trim();
    assert_eq!(
        admin_get(dev, key, "/v1/sources")["data"],
        Value::Array(vec![])
    );
    assert_eq!(
        admin_get(dev, key, "/v1/subscriptions")["data"],
        Value::Array(vec![])
    );

    let wrong = data_dir.join("wrong-key");
    std::fs::write(&wrong, "hh_not_the_admin_key\n").unwrap();
    let run = verify(dev, &wrong);
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert!(
        !run.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("verify: FAIL admin API answers the key") && stderr.contains("401"),
        "{stderr}"
    );
    assert!(!stdout.contains("verify: ok"), "{stdout}");
}

#[test]
fn verify_deployment_passes_against_hookhub_dev_on_sqlite() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = start_dev("sqlite", tmp.path(), &[], &[]);
    passes_then_fails_with_a_wrong_key(&dev, tmp.path());
}

#[test]
fn verify_deployment_passes_against_hookhub_dev_on_moto() {
    let moto = hookhub_tests::moto::MotoServer::start().expect("start moto_server");
    let tmp = tempfile::tempdir().unwrap();
    // A fresh moto: the default `hookhub-…` tables and queues, created by the dev server.
    let dev = start_dev("aws", tmp.path(), &[], &moto_env(&moto));
    assert!(dev.banner.contains("data:"), "{}", dev.banner);
    passes_then_fails_with_a_wrong_key(&dev, tmp.path());
}
