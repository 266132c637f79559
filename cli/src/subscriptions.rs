//! `hookhub subscriptions …`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::client::{enc, CliResult, Client};
use crate::input::json_file;
use crate::output::{col, print_json, print_list, print_object, text, Column};

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// List subscriptions with their state and health.
    #[command(after_help = "Example:\n  hookhub subscriptions list")]
    List,
    /// Show one subscription.
    #[command(after_help = "Example:\n  hookhub subscriptions show sub_01J…")]
    Show { id: String },
    /// Create a subscription; its signing secret is printed once.
    #[command(after_help = "Examples:\n  \
        hookhub subscriptions create --endpoint https://example.com/hook --source github --type 'issues.*'\n  \
        hookhub subscriptions create --from-file subscription.json")]
    Create(Fields),
    /// Change a subscription (only the fields given).
    #[command(
        after_help = "Example:\n  hookhub subscriptions update sub_01J… --endpoint https://example.com/v2/hook"
    )]
    Update {
        id: String,
        #[command(flatten)]
        fields: Fields,
    },
    /// Delete a subscription.
    #[command(after_help = "Example:\n  hookhub subscriptions delete sub_01J…")]
    Delete { id: String },
    /// Enable a subscription (its health starts over).
    #[command(after_help = "Example:\n  hookhub subscriptions enable sub_01J…")]
    Enable { id: String },
    /// Disable a subscription: nothing is delivered to it until it is enabled.
    #[command(after_help = "Example:\n  hookhub subscriptions disable sub_01J…")]
    Disable { id: String },
    /// Print the subscription's signing secret.
    #[command(after_help = "Example:\n  hookhub subscriptions secret sub_01J…")]
    Secret { id: String },
    /// Replace the signing secret; the old one keeps signing for the grace period.
    #[command(after_help = "Example:\n  hookhub subscriptions rotate-secret sub_01J… --grace 1h")]
    RotateSecret {
        id: String,
        /// How long the old secret keeps signing too (`0s` to `7d`) [server default: 24h].
        #[arg(long)]
        grace: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct Fields {
    /// Where deliveries go (the subscription's `url`; `--url` is the admin API's).
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// Only events of this source (repeatable; none = every source).
    #[arg(long = "source", value_name = "SOURCE")]
    sources: Vec<String>,
    /// Only events of this type, exact or `prefix.*` (repeatable; none = every type).
    #[arg(long = "type", value_name = "TYPE")]
    types: Vec<String>,
    #[arg(long)]
    label: Option<String>,
    /// The request body as JSON (`-` for stdin); flags given as well override its fields.
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
}

impl Fields {
    fn body(&self) -> CliResult<Value> {
        let mut body = match &self.from_file {
            Some(path) => json_file(path)?,
            None => Value::Object(Map::new()),
        };
        if let Some(url) = &self.endpoint {
            body["url"] = json!(url);
        }
        if !self.sources.is_empty() {
            body["sources"] = json!(self.sources);
        }
        if !self.types.is_empty() {
            body["event_types"] = json!(self.types);
        }
        if let Some(label) = &self.label {
            body["label"] = json!(label);
        }
        Ok(body)
    }
}

const COLUMNS: [Column; 7] = [
    col("ID", |v| text(&v["id"])),
    col("URL", |v| text(&v["url"])),
    col("SOURCES", |v| or_all(&v["sources"])),
    col("TYPES", |v| or_all(&v["event_types"])),
    col("STATUS", |v| match text(&v["disabled_reason"]) {
        reason if reason.is_empty() => text(&v["status"]),
        reason => format!("{} ({reason})", text(&v["status"])),
    }),
    col("CIRCUIT", |v| text(&v["health"]["circuit"])),
    col("FAILURES", |v| text(&v["health"]["consecutive_failures"])),
];

fn or_all(v: &Value) -> String {
    match text(v) {
        s if s.is_empty() => "*".to_owned(),
        s => s,
    }
}

fn path(id: &str) -> String {
    format!("/v1/subscriptions/{}", enc(id))
}

pub async fn run(client: &Client, command: SubscriptionsCommand) -> CliResult {
    use SubscriptionsCommand as C;
    let json = client.json;
    match command {
        C::List => print_list(json, &client.get("/v1/subscriptions").await?, &COLUMNS),
        C::Show { id } => print_object(json, &client.get(&path(&id)).await?),
        C::Create(fields) => {
            let created = client.post("/v1/subscriptions", &fields.body()?).await?;
            print_object(json, &created);
        }
        C::Update { id, fields } => {
            print_object(json, &client.patch(&path(&id), &fields.body()?).await?)
        }
        C::Delete { id } => {
            client.delete(&path(&id)).await?;
            if json {
                print_json(&json!({ "deleted": id }));
            } else {
                println!("deleted subscription {id}");
            }
        }
        C::Enable { id } => toggle(client, &id, true).await?,
        C::Disable { id } => toggle(client, &id, false).await?,
        C::Secret { id } => {
            let secret = client.get(&format!("{}/secret", path(&id))).await?;
            print_object(json, &secret);
        }
        C::RotateSecret { id, grace } => {
            let body = match grace {
                Some(grace) => json!({ "grace": grace }),
                None => json!({}),
            };
            let rotated = client
                .post(&format!("{}/secret/rotate", path(&id)), &body)
                .await?;
            print_object(json, &rotated);
        }
    }
    Ok(())
}

async fn toggle(client: &Client, id: &str, enabled: bool) -> CliResult {
    let sub = client
        .patch(&path(id), &json!({ "enabled": enabled }))
        .await?;
    if client.json {
        print_json(&sub);
    } else {
        println!("subscription {id} {}", text(&sub["status"]));
    }
    Ok(())
}
