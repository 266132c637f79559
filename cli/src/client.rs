//! The admin API client of the CLI verbs: where to connect (flags, environment, profile), the
//! HTTP calls, and the errors with their exit codes.

use std::path::PathBuf;

use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::profiles::{self, Profile};

/// The URL a local `hookhub dev` listens on by default.
pub const LOCAL_URL: &str = "http://127.0.0.1:8080";

/// Where the local dev server keeps its generated key (its default `--data-dir`).
const LOCAL_KEY_FILE: &str = ".hookhub/admin-key";

/// Options every admin verb takes (global: also accepted after the verb).
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Base URL of the Hookhub admin API [default: http://127.0.0.1:8080, or the profile's].
    #[arg(long, global = true, env = "HOOKHUB_URL")]
    pub url: Option<String>,
    /// Admin API key [default: the profile's, or .hookhub/admin-key for the local URL].
    #[arg(long, global = true, env = "HOOKHUB_ADMIN_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Machine output: the API's JSON instead of aligned tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// A profile saved by `hookhub login --profile NAME` [default: `default`, when saved].
    #[arg(long, global = true, env = "HOOKHUB_PROFILE")]
    pub profile: Option<String>,
}

/// Why a command failed, and the process exit status for it (see the README's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Anything not listed below.
    Failure,
    /// The command line is wrong (clap's own usage errors use 2 as well).
    Usage,
    /// No admin key, an unreadable profile or input file.
    Config,
    /// The server could not be reached, or answered something that is not the admin API.
    Unreachable,
    /// The server refused the admin key (401).
    Unauthorized,
    /// The named object does not exist (404).
    NotFound,
    /// The server refused the request's values (other 4xx).
    Rejected,
    /// The server failed (5xx).
    Server,
}

impl Exit {
    #[cfg(test)]
    pub const ALL: [Exit; 8] = [
        Exit::Failure,
        Exit::Usage,
        Exit::Config,
        Exit::Unreachable,
        Exit::Unauthorized,
        Exit::NotFound,
        Exit::Rejected,
        Exit::Server,
    ];

    pub fn code(self) -> u8 {
        match self {
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Config => 3,
            Exit::Unreachable => 4,
            Exit::Unauthorized => 5,
            Exit::NotFound => 6,
            Exit::Rejected => 7,
            Exit::Server => 8,
        }
    }

    /// The exit status an API error answer maps to.
    pub fn for_status(status: StatusCode) -> Exit {
        match status.as_u16() {
            401 | 403 => Exit::Unauthorized,
            404 => Exit::NotFound,
            400..=499 => Exit::Rejected,
            500..=599 => Exit::Server,
            _ => Exit::Failure,
        }
    }
}

/// A failed command: printed as `error: <code>: <message>`.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CliError {
    pub exit: Exit,
    pub code: String,
    pub message: String,
}

impl CliError {
    pub fn new(exit: Exit, code: &str, message: impl Into<String>) -> Self {
        Self {
            exit,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(Exit::Config, "config", message)
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, "usage", message)
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// An admin API client with its base URL and key resolved.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    pub base: String,
    key: String,
    pub json: bool,
}

/// The HTTP client of every verb (and of `listen`'s forwards): rustls on ring, as the product.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .expect("a TLS client with the ring provider")
}

impl Connection {
    /// The profile in force: the named one (which must exist), else `default` when saved and
    /// no `--url` was given.
    fn profile(&self) -> CliResult<Option<Profile>> {
        let file = profiles::load()?;
        match &self.profile {
            Some(name) => file.profiles.get(name).cloned().map(Some).ok_or_else(|| {
                CliError::config(format!(
                    "no profile {name:?} in {}; run `hookhub login --profile {name} --url …`",
                    profiles::path().display()
                ))
            }),
            None if self.url.is_none() => Ok(file.profiles.get("default").cloned()),
            None => Ok(None),
        }
    }

    /// Base URL and key: flags and environment first, then the profile, then the local
    /// defaults.
    pub fn client(&self) -> CliResult<Client> {
        let profile = self.profile()?;
        let base = self
            .url
            .clone()
            .or_else(|| profile.as_ref().map(|p| p.url.clone()))
            .unwrap_or_else(|| LOCAL_URL.to_owned());
        let base = base.trim_end_matches('/').to_owned();
        let key = match (&self.key, &profile) {
            (Some(key), _) => key.clone(),
            (None, Some(p)) => p.key.clone(),
            (None, None) if base == LOCAL_URL => local_key()?,
            (None, None) => {
                return Err(CliError::config(format!(
                    "no admin key for {base}: pass --key, set HOOKHUB_ADMIN_KEY or run `hookhub login --url {base}`"
                )))
            }
        };
        Ok(Client {
            http: http_client(),
            base,
            key,
            json: self.json,
        })
    }
}

fn local_key() -> CliResult<String> {
    let path = PathBuf::from(LOCAL_KEY_FILE);
    let key = std::fs::read_to_string(&path).map_err(|e| {
        CliError::config(format!(
            "no admin key: {} is not readable ({e}); pass --key or set HOOKHUB_ADMIN_KEY",
            path.display()
        ))
    })?;
    Ok(key.trim().to_owned())
}

/// Percent-encodes one path segment or query value.
pub fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl Client {
    /// One admin call; the JSON answer (`null` for 204), or the API's error as a [`CliError`].
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> CliResult<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.key);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| {
            CliError::new(
                Exit::Unreachable,
                "unreachable",
                format!("cannot reach {}: {}", self.base, error_chain(&e)),
            )
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| {
            CliError::new(
                Exit::Unreachable,
                "unreachable",
                format!("reading the answer of {url}: {e}"),
            )
        })?;
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let value: Value = serde_json::from_str(&text).map_err(|_| {
            CliError::new(
                Exit::Unreachable,
                "not_hookhub",
                format!("{url} answered {status} with a body that is not JSON; is this a Hookhub admin API?"),
            )
        })?;
        if status.is_success() {
            return Ok(value);
        }
        let code = value["error"]["code"].as_str().unwrap_or("http_error");
        let message = value["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{status}"));
        Err(CliError::new(Exit::for_status(status), code, message))
    }

    pub async fn get(&self, path: &str) -> CliResult<Value> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> CliResult<Value> {
        self.call(Method::DELETE, path, None).await
    }
}

/// reqwest's error with its causes (its own message alone is "error sending request").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's exit code table and [`Exit::code`] say the same.
    #[test]
    fn exit_codes_match_the_readme_table() {
        let readme = include_str!("../../README.md");
        let table: Vec<(u8, String)> = readme
            .lines()
            .skip_while(|l| !l.contains("<!-- cli-exit-codes -->"))
            .skip(3)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].parse().expect("a code"), cells[2].to_owned())
            })
            .collect();
        let expected: Vec<(u8, String)> = std::iter::once((0, "success".to_owned()))
            .chain(Exit::ALL.iter().map(|e| (e.code(), format!("{e:?}"))))
            .collect();
        let got: Vec<(u8, String)> = table
            .iter()
            .map(|(code, name)| (*code, name.trim_matches('`').to_owned()))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn api_statuses_map_to_exit_codes() {
        let cases = [
            (400, Exit::Rejected),
            (401, Exit::Unauthorized),
            (404, Exit::NotFound),
            (409, Exit::Rejected),
            (413, Exit::Rejected),
            (500, Exit::Server),
            (503, Exit::Server),
            (302, Exit::Failure),
        ];
        for (status, exit) in cases {
            assert_eq!(
                Exit::for_status(StatusCode::from_u16(status).unwrap()),
                exit,
                "{status}"
            );
        }
    }
}
