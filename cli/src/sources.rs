//! `hookhub sources …`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client::{enc, CliError, CliResult, Client};
use crate::input::{json_file, stdin_secret};
use crate::output::{col, print_list, print_object, text, Column};

#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    /// List sources.
    #[command(after_help = "Example:\n  hookhub sources list")]
    List,
    /// Show one source (secrets redacted).
    #[command(after_help = "Example:\n  hookhub sources show github")]
    Show { id: String },
    /// Create a source: a scheme and its secret, or a whole JSON body from a file.
    #[command(after_help = "Examples:\n  \
        printf '%s' \"$GITHUB_WEBHOOK_SECRET\" | hookhub sources create github --scheme github --secret-stdin\n  \
        hookhub sources create billing --from-file source.json")]
    Create(CreateSource),
    /// Change a source's verification or dedup settings.
    #[command(after_help = "Examples:\n  \
        hookhub sources update github --from-file update.json   # {\"verify\": {…}, \"dedup\": {…}}\n  \
        printf '%s' \"$NEW_SECRET\" | hookhub sources update github --scheme github --secret-stdin")]
    Update(UpdateSource),
    /// Delete a source.
    #[command(after_help = "Example:\n  hookhub sources delete github")]
    Delete { id: String },
}

#[derive(Debug, Args)]
pub struct CreateSource {
    /// Source id: it names the ingest URL `/webhooks/{id}`.
    id: String,
    #[command(flatten)]
    verify: VerifyFlags,
}

#[derive(Debug, Args)]
pub struct UpdateSource {
    id: String,
    #[command(flatten)]
    verify: VerifyFlags,
}

#[derive(Debug, Args)]
struct VerifyFlags {
    /// Verification scheme (github, stripe, standard-webhooks, none, …).
    #[arg(long, conflicts_with = "from_file")]
    scheme: Option<String>,
    /// Read the scheme's `secret` from the first line of stdin.
    #[arg(long, requires = "scheme")]
    secret_stdin: bool,
    /// The request body as JSON (`-` for stdin); `id` is set from the argument.
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
}

impl VerifyFlags {
    /// The body: the file's, or `{"verify": {"scheme": …, "secret": …}}`.
    fn body(&self) -> CliResult<Value> {
        match (&self.from_file, &self.scheme) {
            (Some(path), _) => json_file(path),
            (None, Some(scheme)) => {
                let mut verify = json!({ "scheme": scheme });
                if self.secret_stdin {
                    verify["secret"] = json!(stdin_secret()?);
                }
                Ok(json!({ "verify": verify }))
            }
            (None, None) => Err(CliError::usage("give --scheme or --from-file")),
        }
    }
}

const COLUMNS: [Column; 4] = [
    col("ID", |v| text(&v["id"])),
    col("SCHEME", |v| text(&v["verify"]["scheme"])),
    col("DEDUP", |v| text(&v["dedup"]["key"])),
    col("CREATED", |v| text(&v["created_at"])),
];

pub async fn run(client: &Client, command: SourcesCommand) -> CliResult {
    match command {
        SourcesCommand::List => {
            print_list(client.json, &client.get("/v1/sources").await?, &COLUMNS);
        }
        SourcesCommand::Show { id } => {
            let source = client.get(&format!("/v1/sources/{}", enc(&id))).await?;
            print_object(client.json, &source);
        }
        SourcesCommand::Create(args) => {
            let mut body = args.verify.body()?;
            body["id"] = json!(args.id);
            let source = client.post("/v1/sources", &body).await?;
            print_object(client.json, &source);
        }
        SourcesCommand::Update(args) => {
            let body = args.verify.body()?;
            let path = format!("/v1/sources/{}", enc(&args.id));
            print_object(client.json, &client.patch(&path, &body).await?);
        }
        SourcesCommand::Delete { id } => {
            client.delete(&format!("/v1/sources/{}", enc(&id))).await?;
            if client.json {
                crate::output::print_json(&json!({ "deleted": id }));
            } else {
                println!("deleted source {id}");
            }
        }
    }
    Ok(())
}
