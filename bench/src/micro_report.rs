//! Reads the criterion results (`target/criterion/**/new/{benchmark,estimates}.json`) and prints
//! them as one table, each with its ratio to the baseline measured in the same run.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};

use crate::{f2, table, Common};

/// The baseline a benchmark is compared with, by group and name.
fn baseline(group: &str, name: &str) -> Option<&'static str> {
    if group.starts_with("verify/") {
        if name.starts_with("raw-") {
            return None;
        }
        // SHA-1 schemes against the raw SHA-1 MAC; the rest (ECDSA too) against SHA-256.
        return Some(if name == "intercom" || name == "twilio" {
            "raw-hmac-sha1"
        } else {
            "raw-hmac-sha256"
        });
    }
    if group.starts_with("sign/") && !name.starts_with("raw-") {
        return Some("raw-hmac-sha256");
    }
    if group.starts_with("extract/") {
        return match name {
            "dedup-key-sha256" => Some("raw-sha256"),
            n if n.starts_with("json_for_typing") => Some("raw-json-parse"),
            _ => None,
        };
    }
    None
}

fn collect(dir: &Path, out: &mut Vec<(String, String, f64)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let meta: Value =
                serde_json::from_str(&std::fs::read_to_string(path.join("benchmark.json"))?)?;
            let est: Value =
                serde_json::from_str(&std::fs::read_to_string(path.join("estimates.json"))?)?;
            let ns = est["slope"]["point_estimate"]
                .as_f64()
                .or_else(|| est["mean"]["point_estimate"].as_f64())
                .unwrap_or(f64::NAN);
            let group = meta["group_id"].as_str().unwrap_or_default().to_string();
            let mut name = meta["function_id"].as_str().unwrap_or_default().to_string();
            if let Some(v) = meta["value_str"].as_str() {
                name = format!("{name}/{v}");
            }
            out.push((group, name, ns));
        } else if path
            .file_name()
            .is_some_and(|n| n != "report" && n != "base")
        {
            collect(&path, out)?;
        }
    }
    Ok(())
}

fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

pub fn run(common: &Common) -> anyhow::Result<Value> {
    let mut results = Vec::new();
    collect(&common.criterion_dir, &mut results).with_context(|| {
        format!(
            "no criterion results in {} (run `cargo bench -p hookhub-shared --bench micro` first)",
            common.criterion_dir.display()
        )
    })?;
    anyhow::ensure!(!results.is_empty(), "no criterion results found");
    let times: BTreeMap<(String, String), f64> = results
        .iter()
        .map(|(g, n, t)| ((g.clone(), n.clone()), *t))
        .collect();
    let mut sorted = results.clone();
    sorted.sort_by(|a, b| (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str())));
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for (group, name, ns) in &sorted {
        let base = baseline(group, name);
        let ratio = base
            .and_then(|b| times.get(&(group.clone(), b.to_string())))
            .map(|b| ns / b);
        let within = match (group.starts_with("verify/"), ratio) {
            (true, Some(r)) => {
                if r <= 1.5 {
                    "yes"
                } else {
                    "no"
                }
            }
            _ => "",
        };
        rows.push(vec![
            group.clone(),
            name.clone(),
            human(*ns),
            base.unwrap_or("").to_string(),
            ratio.map(f2).unwrap_or_default(),
            within.to_string(),
        ]);
        out.push(
            json!({"group": group, "bench": name, "ns": ns, "baseline": base, "ratio": ratio}),
        );
    }
    table(
        "micro (criterion): time per call and ratio to the same-run baseline (verify target <= 1.5x)",
        &["group", "bench", "time", "baseline", "ratio", "<= 1.5x"],
        &rows,
    );
    Ok(json!({ "results": out }))
}
