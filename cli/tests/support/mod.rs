//! The real `hookhub dev` binary as a child process, for the tests in this directory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the binary may take to print its banner (a cold start on a busy CI machine, or
/// creating tables and queues on moto).
const STARTUP: Duration = Duration::from_secs(60);

/// A running `hookhub dev`; killed when dropped.
pub struct Dev {
    child: Child,
    pub base: String,
    pub banner: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `--backend <backend>` on `data_dir`, on a free port, and waits for
/// its whole banner (its last line is the `targets:` one). The child's environment is the
/// caller's less every `HOOKHUB_*` setting, plus `env`.
pub fn start_dev(backend: &str, data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Dev {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookhub"));
    command
        .args(["dev", "--backend", backend, "--listen", "127.0.0.1:0"])
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
        "HOOKHUB_METRICS_PUBLIC",
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

/// The environment of a `hookhub dev --backend aws` on `moto`: its endpoint, test credentials,
/// and none of the machine user's AWS configuration.
#[allow(dead_code)] // Only the moto tests use it.
pub fn moto_env(moto: &hookhub_tests::moto::MotoServer) -> Vec<(&'static str, &str)> {
    vec![
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", hookhub_tests::moto::REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ]
}
