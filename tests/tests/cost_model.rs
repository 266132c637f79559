//! The READMEs' measured cost sections are what `hookhub-bench cost` generated from the
//! committed `bench/cost.json` (the benchmark itself is not run here).

use hookhub_tests::cost_model::{markdown, section};
use serde_json::Value;

fn root_file(path: &str) -> String {
    let full = concat!(env!("CARGO_MANIFEST_DIR"), "/..").to_string() + "/" + path;
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
}

#[test]
fn readme_cost_sections_match_the_committed_measurement() {
    let summary: Value = serde_json::from_str(&root_file("bench/cost.json")).expect("cost.json");
    let rows = summary["rows"].as_array().expect("rows");
    let wanted = [(1024, 1), (1024, 10), (65536, 1), (65536, 10)];
    for (body, subscribers) in wanted {
        assert!(
            rows.iter()
                .any(|r| r["body_bytes"] == body && r["subscribers"] == subscribers),
            "no row for {body} B, {subscribers} subscribers"
        );
    }
    let expected = markdown(&summary);
    for readme in ["README.md", "bench/README.md"] {
        let text = root_file(readme);
        let found = section(&text).unwrap_or_else(|| panic!("{readme}: no cost-model markers"));
        assert_eq!(
            found,
            expected.trim_matches('\n'),
            "{readme} disagrees with bench/cost.json: run `hookhub-bench cost --write-docs .`"
        );
    }
}
