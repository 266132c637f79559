//! How the verbs print: the API's JSON with `--json`, else aligned tables and `key: value`
//! lines.

use comfy_table::{presets, ContentArrangement, Table};
use serde_json::Value;

/// A column: its header and where its cell comes from in each row's JSON.
pub struct Column {
    pub header: &'static str,
    pub cell: fn(&Value) -> String,
}

pub const fn col(header: &'static str, cell: fn(&Value) -> String) -> Column {
    Column { header, cell }
}

/// The JSON value as a cell: strings bare, `null` empty, arrays comma-separated.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Rows as an aligned table without borders (like `kubectl get`).
pub fn table(rows: &[Value], columns: &[Column]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(columns.iter().map(|c| c.header));
    for row in rows {
        t.add_row(columns.iter().map(|c| (c.cell)(row)));
    }
    // comfy-table pads every line with a space on each side; trimmed, the first column starts
    // at the margin and no line ends in blanks.
    t.to_string()
        .lines()
        .map(|l| l.trim_end().strip_prefix(' ').unwrap_or(l.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints the JSON (pretty) with `--json`, else the table of `value["data"]` or `value` (an
/// array).
pub fn print_list(json: bool, value: &Value, columns: &[Column]) {
    if json {
        print_json(value);
        return;
    }
    let rows = value
        .get("data")
        .and_then(Value::as_array)
        .or_else(|| value.as_array())
        .cloned()
        .unwrap_or_default();
    if rows.is_empty() {
        println!("(none)");
    } else {
        println!("{}", table(&rows, columns));
    }
}

/// One object: JSON with `--json`, else one `field: value` line per top-level field, aligned.
pub fn print_object(json: bool, value: &Value) {
    if json {
        print_json(value);
        return;
    }
    let Some(map) = value.as_object() else {
        println!("{}", text(value));
        return;
    };
    let width = map.keys().map(String::len).max().unwrap_or(0);
    for (k, v) in map {
        let shown = match v {
            Value::Object(_) => v.to_string(),
            Value::Array(items) if items.iter().any(Value::is_object) => v.to_string(),
            _ => text(v),
        };
        println!("{k:<width$}  {shown}");
    }
}

pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON serialises")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_are_aligned_without_borders() {
        let rows = [
            json!({"id": "github", "n": 1}),
            json!({"id": "a", "n": null}),
        ];
        let columns = [col("ID", |v| text(&v["id"])), col("N", |v| text(&v["n"]))];
        let out = table(&rows, &columns);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("ID"), "{out}");
        assert!(lines[1].starts_with("github"), "{out}");
        // The second column starts at the same place on every line.
        let at = lines[0].find('N').unwrap();
        assert_eq!(lines[1].find('1'), Some(at), "{out}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')), "{out}");
    }

    #[test]
    fn cells_show_json_values_plainly() {
        let cases = [
            (json!(null), ""),
            (json!("x"), "x"),
            (json!(3), "3"),
            (json!(true), "true"),
            (json!(["a", "b"]), "a,b"),
        ];
        for (value, expected) in cases {
            assert_eq!(text(&value), expected, "{value}");
        }
    }
}
