//! The `hookhub` admin verbs, `tail`, `listen` and the long poll against a real `hookhub dev`
//! on SQLite; exit codes, `login` profiles and every verb's help.

mod cli_support;
mod support;

use std::process::Command;

use cli_support::{describe, mode, scenarios, Hub, KEY};
use hookhub_tests::Sink;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_verbs_on_sqlite() {
    scenarios::main_verbs(&Hub::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_and_listen_on_sqlite() {
    scenarios::tail_and_listen(&Hub::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_on_sqlite() {
    scenarios::long_poll(&Hub::sqlite()).await;
}

/// The verbs `main_verbs` leaves out: secret handling, updates, deletes, bulk operations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_other_verb_on_sqlite() {
    let hub = Hub::sqlite();
    let sink = Sink::start().await;

    // A source whose secret comes from stdin, then one from a file, then updated from a file.
    let mut create = hub.command(&[
        "sources",
        "create",
        "gh",
        "--scheme",
        "standard-webhooks",
        "--secret-stdin",
    ]);
    create.arg("--json");
    let out = hub.with_stdin(create, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n");
    assert!(out.status.success(), "{}", describe(&out));
    let source: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(source["verify"]["secret"], "***", "{source}");
    let file = hub.dir.path().join("source.json");
    std::fs::write(&file, json!({"verify": {"scheme": "none"}}).to_string()).unwrap();
    hub.ok(&[
        "sources",
        "create",
        "plain",
        "--from-file",
        file.to_str().unwrap(),
    ]);
    std::fs::write(
        &file,
        json!({"dedup": {"key": "body", "window": "1h"}}).to_string(),
    )
    .unwrap();
    hub.ok(&[
        "sources",
        "update",
        "plain",
        "--from-file",
        file.to_str().unwrap(),
    ]);
    let shown = hub.json(&["sources", "show", "plain"]);
    assert_eq!(shown["dedup"]["key"], "body", "{shown}");

    // Subscriptions: update, secret, rotate-secret.
    let sub = scenarios::source_and_subscription(&hub, "shop", &sink);
    let id = sub["id"].as_str().unwrap();
    hub.ok(&[
        "subscriptions",
        "update",
        id,
        "--type",
        "order.*",
        "--label",
        "orders",
    ]);
    let shown = hub.json(&["subscriptions", "show", id]);
    assert_eq!(shown["event_types"], json!(["order.*"]), "{shown}");
    assert_eq!(shown["label"], "orders", "{shown}");
    let secret = hub.json(&["subscriptions", "secret", id]);
    assert_eq!(secret["secret"], sub["secret"], "{secret}");
    let rotated = hub.json(&["subscriptions", "rotate-secret", id, "--grace", "1h"]);
    assert_ne!(rotated["secret"], sub["secret"], "{rotated}");
    assert!(
        rotated["previous_secret_expires_at"].is_string(),
        "{rotated}"
    );

    // Bulk operations (dry runs count, enqueue nothing).
    hub.ingest("shop", &json!({"type": "order.created"})).await;
    sink.wait_for(1, scenarios::SOON).await;
    let replay = hub.json(&[
        "events",
        "replay",
        "--since",
        "1h",
        "--source",
        "shop",
        "--dry-run",
    ]);
    assert_eq!(replay["matched"], 1, "{replay}");
    assert_eq!(replay["dry_run"], true, "{replay}");
    let recover = hub.json(&[
        "recover",
        id,
        "--since",
        "1h",
        "--state",
        "succeeded",
        "--dry-run",
    ]);
    assert_eq!(recover["matched"], 1, "{recover}");

    // Deletes.
    assert!(hub.ok(&["subscriptions", "delete", id]).contains("deleted"));
    assert!(hub.ok(&["sources", "delete", "plain"]).contains("deleted"));
    let left = hub.json(&["sources", "list"]);
    assert_eq!(left["data"].as_array().unwrap().len(), 2, "{left}");
}

/// `error: <code>: <message>` on stderr and the README's exit code for each kind of failure.
#[test]
fn errors_print_a_code_and_exit_with_the_documented_status() {
    let hub = Hub::sqlite();
    let mut wrong_key = hub.bare();
    wrong_key.args([
        "--url",
        &hub.dev.base,
        "--key",
        "hh_wrong",
        "sources",
        "list",
    ]);
    let mut unreachable = hub.bare();
    unreachable.args([
        "--url",
        "http://127.0.0.1:9",
        "--key",
        KEY,
        "sources",
        "list",
    ]);
    let mut no_key = hub.bare();
    no_key.args(["--url", &hub.dev.base, "sources", "list"]);
    let mut no_profile = hub.bare();
    no_profile.args(["--profile", "nope", "sources", "list"]);
    let cases: Vec<(Command, u8, &str)> = vec![
        (
            hub.command(&["sources", "show", "nope"]),
            6,
            "error: not_found: ",
        ),
        (
            hub.command(&["events", "show", "evt_01KAAAAAAAAAAAAAAAAAAAAAAA"]),
            6,
            "error: not_found: ",
        ),
        (wrong_key, 5, "error: unauthorized: "),
        (unreachable, 4, "error: unreachable: "),
        (no_key, 3, "error: config: "),
        (no_profile, 3, "error: config: "),
        (
            hub.command(&["subscriptions", "create", "--endpoint", "ftp://x"]),
            7,
            "error: invalid_url: ",
        ),
        (
            hub.command(&["events", "list", "--since", "yesterday"]),
            7,
            "error: invalid_since: ",
        ),
        (
            hub.command(&["sources", "create", "x"]),
            2,
            "error: usage: ",
        ),
        (hub.command(&["sources", "frobnicate"]), 2, "error:"),
    ];
    for (mut command, code, prefix) in cases {
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(i32::from(code)),
            "{command:?}: {}",
            describe(&out)
        );
        assert!(stderr.starts_with(prefix), "{command:?}: {stderr}");
    }
}

/// `login` reads the key from stdin, checks it, and writes an owner-only profile that later
/// verbs use with `--profile` alone.
#[test]
fn login_writes_an_owner_only_profile() {
    let hub = Hub::sqlite();
    let mut login = hub.bare();
    login.args(["login", "--url", &hub.dev.base, "--profile", "local"]);
    let out = hub.with_stdin(login, &format!("{KEY}\n"));
    assert!(out.status.success(), "{}", describe(&out));
    let file = hub.config_file();
    assert_eq!(mode(&file), 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&hub.dev.base), "{text}");

    let mut list = hub.bare();
    list.args(["--profile", "local", "sources", "list"]);
    let out = list.output().unwrap();
    assert!(out.status.success(), "{}", describe(&out));

    // A wrong key is refused at login, and nothing is saved for it.
    let mut login = hub.bare();
    login.args(["login", "--url", &hub.dev.base, "--profile", "bad"]);
    let out = hub.with_stdin(login, "hh_wrong\n");
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    assert!(!std::fs::read_to_string(&file).unwrap().contains("\"bad\""));
}

/// `--help` of every verb ends with an example.
#[test]
fn every_verb_has_an_example_in_its_help() {
    let verbs: &[&[&str]] = &[
        &[],
        &["dev"],
        &["login"],
        &["sources"],
        &["sources", "list"],
        &["sources", "show"],
        &["sources", "create"],
        &["sources", "update"],
        &["sources", "delete"],
        &["subscriptions"],
        &["subscriptions", "list"],
        &["subscriptions", "show"],
        &["subscriptions", "create"],
        &["subscriptions", "update"],
        &["subscriptions", "delete"],
        &["subscriptions", "enable"],
        &["subscriptions", "disable"],
        &["subscriptions", "secret"],
        &["subscriptions", "rotate-secret"],
        &["events"],
        &["events", "list"],
        &["events", "show"],
        &["events", "replay"],
        &["attempts"],
        &["replay"],
        &["recover"],
        &["tail"],
        &["listen"],
    ];
    for verb in verbs {
        let out = Command::new(env!("CARGO_BIN_EXE_hookhub"))
            .args(*verb)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{verb:?}");
        assert!(
            help.contains("Example") && help.contains("  hookhub "),
            "{verb:?}: {help}"
        );
    }
}

/// `hookhub dev`'s flags and variables go through the settings' parsers: a value the Lambdas
/// would refuse is refused here too, naming the variable.
#[test]
fn dev_refuses_what_the_settings_parsers_refuse() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (
            &["--allow-private-targets", "maybe"],
            &[],
            "HOOKHUB_ALLOW_PRIVATE_TARGETS",
        ),
        (
            &[],
            &[("HOOKHUB_METRICS_PUBLIC", "maybe")],
            "HOOKHUB_METRICS_PUBLIC",
        ),
        (&["--idle-timeout", "0s"], &[], "HOOKHUB_IDLE_TIMEOUT"),
        (&["--max-body-bytes", "0"], &[], "HOOKHUB_MAX_BODY_BYTES"),
    ];
    for (args, env, var) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_hookhub"))
            .arg("dev")
            .arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env_remove("HOOKHUB_METRICS_PUBLIC")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(var), "{args:?} {env:?}: {stderr}");
    }
}
