//! The OpenAPI document of the admin API (`hookhub::http::openapi`): the committed
//! `docs/openapi.json` is the generated one, it is served without auth, and it documents every
//! `/v1` route of the router with its error responses.
//!
//! After changing a route or a request/response type, regenerate the committed file with
//! `HOOKHUB_UPDATE_OPENAPI=1 cargo test -p hookhub-tests --test openapi`.
//! (`tests/openapi/test_openapi_spec.py` validates it with openapi-spec-validator.)

use std::collections::BTreeSet;
use std::path::PathBuf;

use hookhub::http::openapi::document_json;
use hookhub_tests::routes::routes_in_source;
use hookhub_tests::{temp_dir, DevOptions, DevServer};
use serde_json::Value;

const REGENERATE: &str = "HOOKHUB_UPDATE_OPENAPI=1 cargo test -p hookhub-tests --test openapi";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

fn document() -> Value {
    serde_json::from_str(&document_json()).expect("the document is JSON")
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let generated = document_json();
    let path = committed_path();
    if std::env::var_os("HOOKHUB_UPDATE_OPENAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("docs/openapi.json written");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    // Which operation differs, so the failure says more than "the files differ".
    let differing: Vec<String> = match serde_json::from_str::<Value>(&committed) {
        Ok(old) => {
            let new = document();
            let paths = |doc: &Value| doc["paths"].as_object().cloned().unwrap_or_default();
            let (old_paths, new_paths) = (paths(&old), paths(&new));
            let mut names: BTreeSet<&String> = old_paths.keys().collect();
            names.extend(new_paths.keys());
            names
                .into_iter()
                .filter(|p| old_paths.get(*p) != new_paths.get(*p))
                .cloned()
                .collect()
        }
        Err(_) => vec!["(docs/openapi.json is missing or not JSON)".to_string()],
    };
    assert!(
        committed == generated,
        "docs/openapi.json is not the document the code generates (paths differing: \
         {differing:?}; else components or info). Regenerate it with:\n    {REGENERATE}"
    );
}

/// An operation's error responses: status → the description (the codes it can answer) and
/// whether the body is the JSON error body.
fn error_responses(doc: &Value, operation: &Value) -> Vec<(String, String, bool)> {
    let responses = operation["responses"].as_object().expect("responses");
    responses
        .iter()
        .filter(|(status, _)| status.starts_with('4') || status.starts_with('5'))
        .map(|(status, response)| {
            // A shared response is a `$ref` into components/responses.
            let response = match response["$ref"].as_str() {
                Some(r) => {
                    let name = r.rsplit('/').next().unwrap();
                    &doc["components"]["responses"][name]
                }
                None => response,
            };
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            (
                status.clone(),
                response["description"].as_str().unwrap_or("").to_string(),
                schema == "#/components/schemas/ErrorBody",
            )
        })
        .collect()
}

fn documents(errors: &[(String, String, bool)], status: &str, code: &str) -> bool {
    errors
        .iter()
        .any(|(s, description, _)| s == status && description.contains(&format!("`{code}`")))
}

#[test]
fn every_admin_route_is_documented_with_its_error_responses() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes: BTreeSet<(String, String)> = routes_in_source()
        .into_iter()
        .filter(|(_, path)| path.starts_with("/v1/"))
        .collect();
    assert!(routes.len() >= 20, "parsed {routes:?}");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            let label = format!("{} {path}", method.to_uppercase());
            let errors = error_responses(&doc, operation);
            for (status, description, error_body) in &errors {
                assert!(*error_body, "{label} {status}: not the error body schema");
                assert!(
                    description.contains('`'),
                    "{label} {status}: names no error code: {description}"
                );
            }
            if path == "/v1/openapi.json" {
                assert_eq!(operation["security"], serde_json::json!([{}]), "{label}");
                continue;
            }
            assert!(
                operation["security"].is_null(),
                "{label}: the global bearer"
            );
            for (status, code) in [
                ("401", "unauthorized"),
                ("500", "internal"),
                ("503", "unavailable"),
            ] {
                assert!(documents(&errors, status, code), "{label}: {status} {code}");
            }
            if path.contains('{') {
                assert!(documents(&errors, "400", "invalid_path"), "{label}");
            }
            if matches!(method.as_str(), "post" | "patch") {
                assert!(operation["requestBody"].is_object(), "{label}: a body");
                assert!(documents(&errors, "400", "invalid_json"), "{label}");
                assert!(documents(&errors, "413", "payload_too_large"), "{label}");
            }
            let has_query = operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            if has_query {
                assert!(documents(&errors, "400", "invalid_query"), "{label}");
            }
            if path.contains("{id}") {
                assert!(documents(&errors, "404", "not_found"), "{label}");
            }
        }
    }
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes without an operation in the document: {undocumented:?}: annotate the handler \
         with #[utoipa::path(…)], list it in `AdminApi` (shared/src/http/admin.rs), then \
         {REGENERATE}"
    );
    let stale: Vec<_> = documented.difference(&routes).collect();
    assert!(stale.is_empty(), "documented but not routed: {stale:?}");
    let schemes = &doc["components"]["securitySchemes"]["admin_key"];
    assert_eq!(
        (&schemes["type"], &schemes["scheme"]),
        (&"http".into(), &"bearer".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_server_serves_it_without_auth() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    let response = hookhub_tests::http_client()
        .get(format!("{}/v1/openapi.json", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), document_json());
}
