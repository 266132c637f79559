//! Log setup shared by the binaries. Filtered by `RUST_LOG` (default `info`).
//!
//! `RUST_LOG` is a comma-separated list of directives, each a level (`info`), a target
//! (`hookhub`, every level) or `target=level` (`info,hookhub=debug,aws_smithy_runtime=warn`);
//! targets match by prefix of the module path and the most specific directive wins. Levels are
//! `off`, `error`, `warn`, `info`, `debug`, `trace` (any case). Unset, empty or invalid: `info`.
//! (`tracing_subscriber::filter::Targets`, not `EnvFilter`: span and field-value filters such as
//! `[span]=debug` are not supported, and the binaries do not carry a regex engine for them.)

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const DEFAULT: LevelFilter = LevelFilter::INFO;

fn filter() -> Targets {
    parse_filter(std::env::var("RUST_LOG").ok().as_deref())
}

/// `RUST_LOG`'s value as a filter: blanks around directives and empty directives are ignored;
/// an unset, empty or invalid value gives the default, `info`.
fn parse_filter(value: Option<&str>) -> Targets {
    let directives: Vec<&str> = value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Targets::new().with_default(DEFAULT);
    }
    Targets::from_str(&directives.join(","))
        .unwrap_or_else(|_| Targets::new().with_default(DEFAULT))
}

/// Lambda functions: JSON lines without colours (CloudWatch shows escape codes verbatim) and
/// without timestamps (CloudWatch stamps every line).
pub fn init_lambda() {
    tracing_subscriber::fmt()
        .json()
        .with_max_level(LevelFilter::TRACE)
        .with_ansi(false)
        .with_target(false)
        // Each line lists its spans (the runtime's has the request id); not the innermost twice.
        .with_current_span(false)
        .without_time()
        .finish()
        .with(filter())
        .init();
}

/// The CLI: readable lines on stderr, or JSON lines with `HOOKHUB_LOG_FORMAT=json`.
pub fn init_cli() {
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_target(false)
        .with_writer(std::io::stderr);
    if std::env::var("HOOKHUB_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().finish().with(filter()).init();
    } else {
        builder.finish().with(filter()).init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(value: Option<&str>) -> String {
        parse_filter(value).to_string()
    }

    #[test]
    fn unset_empty_or_invalid_is_info() {
        assert_eq!(show(None), "info");
        assert_eq!(show(Some("")), "info");
        assert_eq!(show(Some(" , ")), "info");
        assert_eq!(show(Some("hookhub=loud")), "info");
        assert_eq!(show(Some("a=b=c")), "info");
    }

    #[test]
    fn levels_and_targets() {
        assert_eq!(show(Some("debug")), "debug");
        assert_eq!(show(Some("WARN")), "warn");
        let f = parse_filter(Some(" info, hookhub=debug ,aws_smithy_runtime=warn,"));
        assert_eq!(f.default_level(), Some(LevelFilter::INFO));
        let levels: Vec<(String, LevelFilter)> = f.into_iter().collect();
        assert!(levels.contains(&("hookhub".to_string(), LevelFilter::DEBUG)));
        assert!(levels.contains(&("aws_smithy_runtime".to_string(), LevelFilter::WARN)));
    }

    #[test]
    fn most_specific_target_wins() {
        let f = parse_filter(Some("warn,hookhub=debug,hookhub::delivery=error"));
        assert!(f.would_enable("hookhub::ingest", &tracing::Level::DEBUG));
        assert!(!f.would_enable("hookhub::delivery", &tracing::Level::WARN));
        assert!(f.would_enable("hyper", &tracing::Level::WARN));
        assert!(!f.would_enable("hyper", &tracing::Level::INFO));
    }
}
