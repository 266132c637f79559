//! Saved connections: `hookhub login` writes URL + key per profile into
//! `<config dir>/hookhub/profiles.json` (owner-only, 0600), or the file `HOOKHUB_CONFIG` names.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::client::{CliError, CliResult, Connection};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub url: String,
    pub key: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProfileFile {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// The profiles file: `HOOKHUB_CONFIG`, else in the user's config directory.
pub fn path() -> PathBuf {
    match std::env::var_os("HOOKHUB_CONFIG").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => dirs::config_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("hookhub")
            .join("profiles.json"),
    }
}

/// The saved profiles; none when the file does not exist.
pub fn load() -> CliResult<ProfileFile> {
    let path = path();
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| CliError::config(format!("{} is not valid: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProfileFile::default()),
        Err(e) => Err(CliError::config(format!("reading {}: {e}", path.display()))),
    }
}

fn save(file: &ProfileFile) -> CliResult<PathBuf> {
    let path = path();
    let fail = |e: std::io::Error| CliError::config(format!("writing {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        hookhub::private_files::private_dir(dir).map_err(fail)?;
    }
    // Written beside and renamed: a crash never leaves half a file, and the new file is
    // owner-only from its creation.
    let tmp = path.with_extension("json.tmp");
    let mut out = hookhub::private_files::private_open_options()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .map_err(fail)?;
    let text = serde_json::to_string_pretty(file).expect("profiles serialise");
    out.write_all(text.as_bytes()).map_err(fail)?;
    out.sync_all().map_err(fail)?;
    hookhub::private_files::restrict_file(&tmp).map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)?;
    Ok(path)
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  hookhub login --url https://admin.example.com --profile prod\n  \
    (the key is prompted for; or pipe it: `pass show hookhub | hookhub login --url … --profile prod`)"
)]
pub struct LoginArgs {
    /// Check the URL and key against the API before saving (default); `--no-check` skips it.
    #[arg(long)]
    pub no_check: bool,
}

/// Reads the key from the terminal (no echo) or, when stdin is not one, its first line.
fn read_key() -> CliResult<String> {
    let key = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Admin key: ")
            .map_err(|e| CliError::config(format!("reading the key: {e}")))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::config(format!("reading the key from stdin: {e}")))?;
        line
    };
    let key = key.trim().to_owned();
    if key.is_empty() {
        return Err(CliError::config("no key given"));
    }
    Ok(key)
}

pub async fn login(conn: &Connection, args: LoginArgs) -> CliResult {
    let url = conn
        .url
        .clone()
        .ok_or_else(|| CliError::usage("login needs --url (or HOOKHUB_URL)"))?;
    let url = url.trim_end_matches('/').to_owned();
    // --key / HOOKHUB_ADMIN_KEY when given, else the prompt or stdin.
    let key = match &conn.key {
        Some(key) => key.clone(),
        None => read_key()?,
    };
    if !args.no_check {
        let check = Connection {
            url: Some(url.clone()),
            key: Some(key.clone()),
            json: false,
            profile: None,
        };
        check.client()?.get("/v1/sources").await?;
    }
    let name = conn.profile.clone().unwrap_or_else(|| "default".to_owned());
    let mut file = load()?;
    file.profiles.insert(name.clone(), Profile { url, key });
    let path = save(&file)?;
    println!("saved profile {name} in {}", path.display());
    Ok(())
}
