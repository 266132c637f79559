//! DynamoDB capacity units and SQS billed requests of recorded calls, by AWS's size rules.
//!
//! - an item's size is the sum of its attribute names and values (numbers: 1 byte per two
//!   significant digits + 1; binary: its bytes; lists and maps: 3 bytes + 1 per element);
//! - a write costs 1 WRU per started KB of the item (an `UpdateItem` or a replacing `PutItem`
//!   the larger of the item before and after), doubled inside a transaction, plus 1 WRU per
//!   index entry written or removed (keys-only entries fit in 1 KB; `ALL` projections cost the
//!   item's size);
//! - a read costs 1 RRU per started 4 KB (of each item for `GetItem`/`BatchGetItem`, of the
//!   summed items for `Query`/`Scan`), half when eventually consistent; a key that finds
//!   nothing still costs one unit (half);
//! - SQS bills each started 64 KB of a request's payload as one request.
//!
//! [`Accountant`] replays a recording in order, keeping the items it saw written, so updates
//! are charged on the full item and index entries entered or left are counted. Everything
//! here is pure: it works on the recorded request and response bodies only.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use serde_json::Value;

/// Billed units of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Units {
    pub wru: f64,
    pub rru: f64,
    pub sqs: f64,
}

impl std::ops::AddAssign for Units {
    fn add_assign(&mut self, other: Units) {
        self.wru += other.wru;
        self.rru += other.rru;
        self.sqs += other.sqs;
    }
}

/// Size in bytes of one attribute value in DynamoDB's JSON wire format (`{"S": "..."}`).
pub fn value_size(value: &Value) -> usize {
    let Some((kind, v)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    let text = |v: &Value| v.as_str().map_or(0, str::len);
    let binary = |v: &Value| {
        v.as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .map_or(0, |b| b.len())
    };
    match kind.as_str() {
        "S" => text(v),
        "N" => number_size(v.as_str().unwrap_or("0")),
        "B" => binary(v),
        "BOOL" | "NULL" => 1,
        "SS" => v.as_array().map_or(0, |a| a.iter().map(text).sum()),
        "NS" => v.as_array().map_or(0, |a| {
            a.iter()
                .map(|n| number_size(n.as_str().unwrap_or("0")))
                .sum()
        }),
        "BS" => v.as_array().map_or(0, |a| a.iter().map(binary).sum()),
        "L" => v.as_array().map_or(3, |a| {
            3 + a.iter().map(|e| value_size(e) + 1).sum::<usize>()
        }),
        "M" => v.as_object().map_or(3, |m| {
            3 + m
                .iter()
                .map(|(name, e)| name.len() + value_size(e) + 1)
                .sum::<usize>()
        }),
        _ => 0,
    }
}

/// 1 byte per two significant digits, plus 1.
fn number_size(n: &str) -> usize {
    let digits: String = n
        .trim_start_matches('-')
        .split(['e', 'E'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// Size of an item (a map of attribute names to values).
pub fn item_size(item: &Value) -> usize {
    item.as_object().map_or(0, |m| {
        m.iter().map(|(name, v)| name.len() + value_size(v)).sum()
    })
}

/// WRU of writing (or deleting) an item of `bytes`.
pub fn write_units(bytes: usize) -> f64 {
    bytes.max(1).div_ceil(1024) as f64
}

/// RRU of reading `bytes` (at least one unit, also for nothing found).
pub fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.max(1).div_ceil(4096) as f64;
    if consistent {
        units
    } else {
        units / 2.0
    }
}

/// SQS requests billed for a request carrying `payload` bytes.
pub fn sqs_requests(payload: usize) -> f64 {
    payload.max(1).div_ceil(64 * 1024) as f64
}

/// A global secondary index: its key attributes and whether it projects the whole item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    pub keys: Vec<String>,
    pub projects_all: bool,
}

#[derive(Debug, Clone, Default)]
struct Table {
    keys: Vec<String>,
    indexes: Vec<Index>,
    /// Items seen written, by their key attributes (rendered).
    items: HashMap<String, Value>,
}

/// Replays recorded calls in order and prices each one.
#[derive(Debug, Default)]
pub struct Accountant {
    tables: BTreeMap<String, Table>,
}

impl Accountant {
    pub fn new() -> Self {
        Self::default()
    }

    /// Units of one call: `target` is the `X-Amz-Target` header (`DynamoDB_20120810.PutItem`,
    /// `AmazonSQS.SendMessage`), `ok` whether it succeeded (failed writes change nothing but
    /// are still charged, as DynamoDB charges a failed condition).
    pub fn call(&mut self, target: &str, request: &Value, response: &Value, ok: bool) -> Units {
        let (service, op) = target.split_once('.').unwrap_or(("", target));
        if service.starts_with("AmazonSQS") {
            return Units {
                sqs: sqs_call(op, request, response),
                ..Units::default()
            };
        }
        let table_name = request["TableName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
        let mut units = Units::default();
        match op {
            "CreateTable" if ok => self.create_table(request),
            "PutItem" => units.wru = self.put(&table_name, &request["Item"], ok),
            "UpdateItem" => units.wru = self.update(&table_name, request, ok),
            "DeleteItem" => units.wru = self.delete(&table_name, &request["Key"], ok),
            "GetItem" => units.rru = read_units(item_size(&response["Item"]), consistent),
            "Query" | "Scan" => {
                let bytes = response["Items"]
                    .as_array()
                    .map_or(0, |items| items.iter().map(item_size).sum());
                units.rru = read_units(bytes, consistent);
            }
            "BatchGetItem" => {
                let consistent_of = |table: &str| {
                    request["RequestItems"][table]["ConsistentRead"]
                        .as_bool()
                        .unwrap_or(false)
                };
                for (table, items) in response["Responses"].as_object().into_iter().flatten() {
                    for item in items.as_array().into_iter().flatten() {
                        units.rru += read_units(item_size(item), consistent_of(table));
                    }
                }
                // A key that finds nothing is still read: one unit (half when eventually
                // consistent), as for `GetItem`.
                for (table, asked) in request["RequestItems"].as_object().into_iter().flatten() {
                    let keys = asked["Keys"].as_array().map_or(0, Vec::len);
                    let found = response["Responses"][table].as_array().map_or(0, Vec::len);
                    let unprocessed = response["UnprocessedKeys"][table]["Keys"]
                        .as_array()
                        .map_or(0, Vec::len);
                    let missing = keys.saturating_sub(found + unprocessed);
                    units.rru += missing as f64 * read_units(0, consistent_of(table));
                }
            }
            "BatchWriteItem" => {
                for (table, writes) in request["RequestItems"].as_object().into_iter().flatten() {
                    for write in writes.as_array().into_iter().flatten() {
                        if write.get("PutRequest").is_some() {
                            units.wru += self.put(table, &write["PutRequest"]["Item"], ok);
                        } else {
                            units.wru += self.delete(table, &write["DeleteRequest"]["Key"], ok);
                        }
                    }
                }
            }
            "TransactWriteItems" => {
                for item in request["TransactItems"].as_array().into_iter().flatten() {
                    let wru = if let Some(put) = item.get("Put") {
                        let table = put["TableName"].as_str().unwrap_or_default();
                        self.put(table, &put["Item"], ok)
                    } else if let Some(update) = item.get("Update") {
                        let table = update["TableName"].as_str().unwrap_or_default();
                        self.update(table, update, ok)
                    } else if let Some(delete) = item.get("Delete") {
                        let table = delete["TableName"].as_str().unwrap_or_default();
                        self.delete(table, &delete["Key"], ok)
                    } else {
                        // ConditionCheck: charged as a write of the item's size; 1 KB here.
                        1.0
                    };
                    units.wru += 2.0 * wru;
                }
            }
            _ => {}
        }
        units
    }

    fn create_table(&mut self, request: &Value) {
        let names = |schema: &Value| -> Vec<String> {
            schema
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k["AttributeName"].as_str().map(str::to_owned))
                .collect()
        };
        let indexes = request["GlobalSecondaryIndexes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|gsi| Index {
                name: gsi["IndexName"].as_str().unwrap_or_default().to_string(),
                keys: names(&gsi["KeySchema"]),
                projects_all: gsi["Projection"]["ProjectionType"] == "ALL",
            })
            .collect();
        let table = Table {
            keys: names(&request["KeySchema"]),
            indexes,
            items: HashMap::new(),
        };
        self.tables.insert(
            request["TableName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            table,
        );
    }

    fn table(&mut self, name: &str) -> &mut Table {
        self.tables
            .entry(name.to_string())
            .or_insert_with(|| Table {
                keys: vec!["id".into()],
                ..Table::default()
            })
    }

    /// Replaces (or creates) an item.
    fn put(&mut self, table: &str, item: &Value, ok: bool) -> f64 {
        let t = self.table(table);
        let key = key_of(&t.keys, item);
        let before = t.items.get(&key).cloned();
        let wru = write_change(&t.indexes, before.as_ref(), Some(item));
        if ok {
            t.items.insert(key, item.clone());
        }
        wru
    }

    fn delete(&mut self, table: &str, key: &Value, ok: bool) -> f64 {
        let t = self.table(table);
        let key = key_of(&t.keys, key);
        let before = t.items.get(&key).cloned();
        if ok {
            t.items.remove(&key);
        }
        write_change(&t.indexes, before.as_ref(), None)
    }

    fn update(&mut self, table: &str, request: &Value, ok: bool) -> f64 {
        let t = self.table(table);
        let key = key_of(&t.keys, &request["Key"]);
        let before = t.items.get(&key).cloned();
        let mut after = before.clone().unwrap_or_else(|| request["Key"].clone());
        apply_update(
            &mut after,
            request["UpdateExpression"].as_str().unwrap_or_default(),
            &request["ExpressionAttributeNames"],
            &request["ExpressionAttributeValues"],
        );
        let wru = write_change(&t.indexes, before.as_ref(), Some(&after));
        if ok {
            t.items.insert(key, after);
        }
        wru
    }
}

/// WRU of changing an item from `before` to `after` (`None`: absent): the larger of the two
/// on the table, plus each index entry written or removed.
pub fn write_change(indexes: &[Index], before: Option<&Value>, after: Option<&Value>) -> f64 {
    let size = |v: Option<&Value>| v.map_or(0, item_size);
    let mut wru = write_units(size(before).max(size(after)));
    for index in indexes {
        let has_keys = |item: &&Value| index.keys.iter().all(|k| item.get(k).is_some());
        let (old, new) = (before.filter(has_keys), after.filter(has_keys));
        let keys_of = |v: &Value| index.keys.iter().map(|k| v[k].clone()).collect::<Vec<_>>();
        let entry_units = |v: &Value| {
            if index.projects_all {
                write_units(item_size(v))
            } else {
                1.0
            }
        };
        wru += match (old, new) {
            (None, None) => 0.0,
            (None, Some(n)) => entry_units(n),
            (Some(o), None) => entry_units(o),
            // Moved to other keys: one entry removed, one written.
            (Some(o), Some(n)) if keys_of(o) != keys_of(n) => entry_units(o) + entry_units(n),
            // Same keys: rewritten only when it carries the changed attributes.
            (Some(o), Some(n)) if index.projects_all && o != n => entry_units(n),
            _ => 0.0,
        };
    }
    wru
}

/// Applies the `SET a = :v, #b = :w`, `REMOVE c` and `ADD n :v` clauses of an update
/// expression (direct values only, which is all Hookhub writes) to `item`.
pub fn apply_update(item: &mut Value, expression: &str, names: &Value, values: &Value) {
    let resolve = |name: &str| -> String {
        let name = name.trim();
        names[name].as_str().unwrap_or(name).to_string()
    };
    let Some(map) = item.as_object_mut() else {
        return;
    };
    let mut clause = "";
    for token in split_clauses(expression) {
        let (keyword, body) = token;
        if !keyword.is_empty() {
            clause = keyword;
        }
        for part in body.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match clause {
                "SET" => {
                    if let Some((name, value)) = part.split_once('=') {
                        let value = values[value.trim()].clone();
                        if !value.is_null() {
                            map.insert(resolve(name), value);
                        }
                    }
                }
                "REMOVE" => {
                    map.remove(&resolve(part));
                }
                "ADD" => {
                    if let Some((name, value)) = part.split_once(' ') {
                        map.insert(resolve(name), values[value.trim()].clone());
                    }
                }
                _ => {}
            }
        }
    }
}

/// `SET a = :x REMOVE b` → `[("SET", " a = :x "), ("REMOVE", " b")]`.
fn split_clauses(expression: &str) -> Vec<(&'static str, String)> {
    const KEYWORDS: [&str; 4] = ["SET", "REMOVE", "ADD", "DELETE"];
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for word in expression.split_whitespace() {
        match KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(word)) {
            Some(k) => out.push((k, String::new())),
            None => match out.last_mut() {
                Some((_, body)) => {
                    body.push(' ');
                    body.push_str(word);
                }
                None => out.push(("", word.to_string())),
            },
        }
    }
    out
}

fn key_of(keys: &[String], item: &Value) -> String {
    keys.iter()
        .map(|k| item[k].to_string())
        .collect::<Vec<_>>()
        .join("|")
}

fn sqs_call(op: &str, request: &Value, response: &Value) -> f64 {
    let text = |v: &Value| v.as_str().map_or(0, str::len);
    match op {
        "SendMessage" => sqs_requests(text(&request["MessageBody"])),
        // A batch is billed on its total payload.
        "SendMessageBatch" => sqs_requests(
            request["Entries"]
                .as_array()
                .map_or(0, |e| e.iter().map(|m| text(&m["MessageBody"])).sum()),
        ),
        "ReceiveMessage" => sqs_requests(
            response["Messages"]
                .as_array()
                .map_or(0, |m| m.iter().map(|m| text(&m["Body"])).sum()),
        ),
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attribute_sizes() {
        let b64 = |n: usize| base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
        let cases = [
            (json!({"S": "hello"}), 5),
            (json!({"S": "é"}), 2),
            (json!({"N": "0"}), 1),
            (json!({"N": "12345"}), 4),
            (json!({"N": "-1200"}), 2),
            (json!({"N": "1.5e3"}), 2),
            (json!({"B": b64(1000)}), 1000),
            (json!({"BOOL": true}), 1),
            (json!({"NULL": true}), 1),
            (json!({"SS": ["ab", "c"]}), 3),
            (
                json!({"L": [{"S": "ab"}, {"N": "1"}]}),
                3 + (2 + 1) + (2 + 1),
            ),
            (json!({"M": {"k": {"S": "v"}}}), 3 + 1 + 1 + 1),
            (json!({"M": {}}), 3),
        ];
        for (value, size) in cases {
            assert_eq!(value_size(&value), size, "{value}");
        }
        assert_eq!(
            item_size(&json!({"id": {"S": "abc"}, "n": {"N": "7"}})),
            2 + 3 + 1 + 2
        );
    }

    #[test]
    fn unit_rounding() {
        // (bytes, WRU, RRU consistent, RRU eventual, SQS requests)
        let cases = [
            (0, 1.0, 1.0, 0.5, 1.0),
            (1, 1.0, 1.0, 0.5, 1.0),
            (1024, 1.0, 1.0, 0.5, 1.0),
            (1025, 2.0, 1.0, 0.5, 1.0),
            (4096, 4.0, 1.0, 0.5, 1.0),
            (4097, 5.0, 2.0, 1.0, 1.0),
            (65_536, 64.0, 16.0, 8.0, 1.0),
            (65_537, 65.0, 17.0, 8.5, 2.0),
        ];
        for (bytes, wru, rru, eventual, sqs) in cases {
            assert_eq!(write_units(bytes), wru, "WRU of {bytes}");
            assert_eq!(read_units(bytes, true), rru, "RRU of {bytes}");
            assert_eq!(
                read_units(bytes, false),
                eventual,
                "eventual RRU of {bytes}"
            );
            assert_eq!(sqs_requests(bytes), sqs, "SQS of {bytes}");
        }
    }

    #[test]
    fn batch_gets_charge_keys_that_find_nothing() {
        let key = |id: &str| json!({"id": {"S": id}});
        let found = json!({"id": {"S": "a"}, "b": {"S": "x".repeat(5000)}});
        // (keys asked, items found, consistent, RRU)
        let cases = [
            (vec![key("a")], vec![found.clone()], true, 2.0),
            (vec![key("a"), key("b")], vec![found.clone()], true, 3.0),
            (vec![key("b")], vec![], true, 1.0),
            (vec![key("b"), key("c")], vec![], false, 1.0),
        ];
        for (keys, items, consistent, rru) in cases {
            let request =
                json!({"RequestItems": {"t": {"Keys": keys, "ConsistentRead": consistent}}});
            let response = json!({"Responses": {"t": items}});
            let units =
                Accountant::new().call("DynamoDB_20120810.BatchGetItem", &request, &response, true);
            assert_eq!(units.rru, rru, "{request}");
        }
    }

    fn keys_only(name: &str, keys: &[&str]) -> Index {
        Index {
            name: name.into(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            projects_all: false,
        }
    }

    #[test]
    fn index_entries_entered_and_left() {
        let indexes = [keys_only("unenqueued", &["pending", "sk"])];
        let pending = json!({"id": {"S": "e"}, "pending": {"S": "1"}, "sk": {"S": "t"}});
        let done = json!({"id": {"S": "e"}, "sk": {"S": "t"}});
        // (before, after, WRU)
        let cases = [
            (None, Some(&pending), 2.0),
            (Some(&pending), Some(&done), 2.0),
            (Some(&done), Some(&done), 1.0),
            (Some(&pending), None, 2.0),
            (None, Some(&done), 1.0),
        ];
        for (before, after, wru) in cases {
            assert_eq!(
                write_change(&indexes, before, after),
                wru,
                "{before:?} -> {after:?}"
            );
        }
        // An index projecting the whole item costs its size.
        let all = [Index {
            projects_all: true,
            ..keys_only("by-sub", &["id"])
        }];
        let big = json!({"id": {"S": "e"}, "b": {"S": "x".repeat(1500)}});
        assert_eq!(write_change(&all, None, Some(&big)), 4.0);
    }

    #[test]
    fn updates_are_charged_on_the_full_item() {
        let mut acc = Accountant::new();
        acc.call(
            "DynamoDB_20120810.CreateTable",
            &json!({"TableName": "ev", "KeySchema": [{"AttributeName": "id"}],
                    "GlobalSecondaryIndexes": [{"IndexName": "u",
                      "KeySchema": [{"AttributeName": "pending"}],
                      "Projection": {"ProjectionType": "KEYS_ONLY"}}]}),
            &json!({}),
            true,
        );
        let item =
            json!({"id": {"S": "e1"}, "pending": {"S": "0"}, "body": {"S": "x".repeat(2000)}});
        let put = acc.call(
            "DynamoDB_20120810.PutItem",
            &json!({"TableName": "ev", "Item": item}),
            &json!({}),
            true,
        );
        assert_eq!(put.wru, 2.0 + 1.0);
        let update = acc.call(
            "DynamoDB_20120810.UpdateItem",
            &json!({"TableName": "ev", "Key": {"id": {"S": "e1"}},
                    "UpdateExpression": "SET enqueued = :t REMOVE pending",
                    "ExpressionAttributeValues": {":t": {"BOOL": true}}}),
            &json!({}),
            true,
        );
        // The whole 2 KB item, and the entry leaving the index.
        assert_eq!(update.wru, 2.0 + 1.0);
        let transact = acc.call(
            "DynamoDB_20120810.TransactWriteItems",
            &json!({"TransactItems": [{"Put": {"TableName": "ev", "Item": {"id": {"S": "m"}}}}]}),
            &json!({}),
            true,
        );
        assert_eq!(transact.wru, 2.0);
        let get = acc.call(
            "DynamoDB_20120810.GetItem",
            &json!({"TableName": "ev", "ConsistentRead": false}),
            &json!({"Item": {"id": {"S": "e1"}}}),
            true,
        );
        assert_eq!(get.rru, 0.5);
        let send = acc.call(
            "AmazonSQS.SendMessage",
            &json!({"MessageBody": "y".repeat(70_000)}),
            &json!({}),
            true,
        );
        assert_eq!(
            send,
            Units {
                sqs: 2.0,
                ..Units::default()
            }
        );
    }

    #[test]
    fn update_expressions() {
        let mut item = json!({"id": {"S": "a"}, "p": {"S": "1"}});
        apply_update(
            &mut item,
            "SET #e = :t, health = :h REMOVE p",
            &json!({"#e": "enabled"}),
            &json!({":t": {"BOOL": false}, ":h": {"M": {}}}),
        );
        assert_eq!(
            item,
            json!({"id": {"S": "a"}, "enabled": {"BOOL": false}, "health": {"M": {}}})
        );
    }
}
