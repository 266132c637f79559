//! What verbs read besides their flags: a secret from stdin, a JSON body from a file.

use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use crate::client::{CliError, CliResult};

/// The first line of stdin, trimmed (secrets never go on the command line, where `ps` and shell
/// history would keep them).
pub fn stdin_secret() -> CliResult<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::config(format!("reading the secret from stdin: {e}")))?;
    let secret = line.trim().to_owned();
    if secret.is_empty() {
        return Err(CliError::config("no secret on stdin"));
    }
    Ok(secret)
}

/// A JSON object from a file (`-` for stdin).
pub fn json_file(path: &Path) -> CliResult<Value> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| CliError::config(format!("reading {}: {e}", path.display())))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| CliError::config(format!("{} is not valid JSON: {e}", path.display())))?;
    if !value.is_object() {
        return Err(CliError::config(format!(
            "{} must hold a JSON object",
            path.display()
        )));
    }
    Ok(value)
}
