//! Running the real `hookhub` admin verbs against a real `hookhub dev` (see `../support`), for
//! the CLI tests. Each test binary uses part of it.
#![allow(dead_code)]

pub mod scenarios;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{moto_env, start_dev, Dev};

pub const KEY: &str = "hh_cli_test_admin_key";

/// A dev server with a known admin key, and a config file of its own for the CLI.
pub struct Hub {
    pub dev: Dev,
    pub dir: tempfile::TempDir,
    pub _moto: Option<hookhub_tests::moto::MotoServer>,
}

impl Hub {
    pub fn sqlite() -> Hub {
        let dir = tempfile::tempdir().unwrap();
        let dev = start_dev("sqlite", dir.path(), &["--admin-key", KEY], &[]);
        assert!(dev.banner.contains("hookhub.db"), "{}", dev.banner);
        Hub {
            dev,
            dir,
            _moto: None,
        }
    }

    /// On DynamoDB + SQS of a fresh moto_server.
    pub fn aws() -> Hub {
        let moto = hookhub_tests::moto::MotoServer::start().expect("start moto_server");
        let dir = tempfile::tempdir().unwrap();
        let dev = start_dev("aws", dir.path(), &["--admin-key", KEY], &moto_env(&moto));
        assert!(dev.banner.contains("DynamoDB"), "{}", dev.banner);
        Hub {
            dev,
            dir,
            _moto: Some(moto),
        }
    }

    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("config").join("profiles.json")
    }

    /// `hookhub` with no `HOOKHUB_*` from the caller, its own profiles file, run in the temp
    /// dir (so no `.hookhub/admin-key` of the caller is found).
    pub fn bare(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookhub"));
        for var in [
            "HOOKHUB_URL",
            "HOOKHUB_ADMIN_KEY",
            "HOOKHUB_PROFILE",
            "HOOKHUB_CONFIG",
        ] {
            command.env_remove(var);
        }
        command
            .env("HOOKHUB_CONFIG", self.config_file())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        command
    }

    /// `hookhub --url <dev> --key <key> ARGS…`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = self.bare();
        command
            .args(["--url", &self.dev.base, "--key", KEY])
            .args(args);
        command
    }

    /// Runs the verb; panics unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run hookhub");
        assert!(out.status.success(), "hookhub {args:?}: {}", describe(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs the verb with `--json`; its parsed output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// Runs the verb with `stdin` as its standard input.
    pub fn with_stdin(&self, mut command: Command, stdin: &str) -> Output {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("run hookhub");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Sends a webhook to the dev server's ingest URL; the event id.
    pub async fn ingest(&self, source: &str, body: &Value) -> String {
        let response = hookhub_tests::http_client()
            .post(format!("{}/webhooks/{source}", self.dev.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("ingest");
        assert!(response.status().is_success(), "{}", response.status());
        let answer: Value = response.json().await.unwrap();
        answer["id"].as_str().unwrap().to_owned()
    }

    /// An admin API call made directly (not through the CLI).
    pub async fn api(&self, path_and_query: &str) -> (u16, Value) {
        let response = hookhub_tests::http_client()
            .get(format!("{}{path_and_query}", self.dev.base))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("admin call");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A long-running verb (`tail`, `listen`) whose stdout lines are read as they come; killed
/// when dropped.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    pub fn start(mut command: Command) -> Running {
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = command.spawn().expect("start hookhub");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if line.map(|l| tx.send(l)).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from the start of the output) that satisfies `check`, waiting up to
    /// `timeout` for it.
    pub fn line(&mut self, timeout: Duration, check: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|l| check(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if check(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no such line within {timeout:?} ({e}); got {:#?}",
                    self.seen
                ),
            }
        }
    }
}

pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}
