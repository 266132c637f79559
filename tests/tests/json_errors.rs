//! Every route answers every kind of bad request with the JSON error body
//! (`{"error": {"code", "message"}}`, `content-type: application/json`).
//!
//! [`ROUTES`] lists the router's routes; a check reads the route definitions in
//! `shared/src/http` so a route added there without a line here fails the test.

use std::collections::BTreeSet;

use hookhub_tests::routes::routes_in_source;
use hookhub_tests::{temp_dir, DevOptions, DevServer, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};

/// What a route reads from the request, and so which bad requests apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    Nothing,
    /// A `?limit=` query.
    Query,
    /// A JSON body (admin).
    Json,
    /// A raw body (the receiver, where the source's scheme decides what it must be).
    Raw,
}

struct Route {
    method: &'static str,
    /// `{…}` stands for a path parameter.
    path: &'static str,
    admin: bool,
    reads: Reads,
}

const fn route(method: &'static str, path: &'static str, admin: bool, reads: Reads) -> Route {
    Route {
        method,
        path,
        admin,
        reads,
    }
}

use Reads::{Json, Nothing, Query, Raw};

/// Every route (shared/src/http/mod.rs, admin.rs and console.rs): adding one is one line here.
const ROUTES: &[Route] = &[
    route("POST", "/webhooks/{source}", false, Raw),
    route("GET", "/healthz", false, Nothing),
    route("GET", "/console", false, Nothing),
    route("GET", "/console/", false, Nothing),
    route("GET", "/console/{file}", false, Nothing),
    route("GET", "/v1/stats", true, Nothing),
    route("GET", "/v1/events/states", true, Query),
    route("GET", "/v1/sources", true, Nothing),
    route("POST", "/v1/sources", true, Json),
    route("GET", "/v1/sources/{id}", true, Nothing),
    route("PATCH", "/v1/sources/{id}", true, Json),
    route("DELETE", "/v1/sources/{id}", true, Nothing),
    route("GET", "/v1/subscriptions", true, Nothing),
    route("POST", "/v1/subscriptions", true, Json),
    route("GET", "/v1/subscriptions/{id}", true, Nothing),
    route("PATCH", "/v1/subscriptions/{id}", true, Json),
    route("DELETE", "/v1/subscriptions/{id}", true, Nothing),
    route("GET", "/v1/subscriptions/{id}/attempts", true, Query),
    route("POST", "/v1/subscriptions/{id}/recover", true, Json),
    route("GET", "/v1/subscriptions/{id}/secret", true, Nothing),
    route("POST", "/v1/subscriptions/{id}/secret/rotate", true, Json),
    route("GET", "/v1/events", true, Query),
    route("POST", "/v1/events/replay", true, Json),
    route("GET", "/v1/events/{id}", true, Nothing),
    route("GET", "/v1/events/{id}/attempts", true, Nothing),
    route("POST", "/v1/events/{id}/replay", true, Json),
    route("GET", "/v1/openapi.json", false, Nothing),
];

/// Larger than any route's body limit (2 MiB for admin, 256 KiB for webhooks).
const OVERSIZED: usize = 2 * 1024 * 1024 + 1;

/// One bad request and the answer it must get.
struct Case {
    what: &'static str,
    method: Method,
    path: String,
    auth: bool,
    body: Option<Vec<u8>>,
    status: u16,
    code: &'static str,
}

/// `{…}` filled with `value` (already URL-encoded).
fn fill(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn cases(route: &Route) -> Vec<Case> {
    let method = Method::from_bytes(route.method.as_bytes()).unwrap();
    // The receiver's parameter names a source that exists, so only the tested flaw is wrong.
    let good_path = fill(route.path, if route.admin { "missing" } else { "open" });
    let case = |what, method: Method, path: String, body: Option<Vec<u8>>, status, code| Case {
        what,
        method,
        path,
        auth: route.admin,
        body,
        status,
        code,
    };
    let mut cases = vec![case(
        "wrong method",
        Method::PUT,
        good_path.clone(),
        None,
        405,
        "method_not_allowed",
    )];
    if route.admin {
        cases.push(Case {
            auth: false,
            ..case(
                "missing auth",
                method.clone(),
                good_path.clone(),
                None,
                401,
                "unauthorized",
            )
        });
    }
    if route.path.contains('{') {
        cases.push(case(
            "path parameter not UTF-8",
            method.clone(),
            fill(route.path, "%FF"),
            Some(b"{}".to_vec()),
            400,
            "invalid_path",
        ));
    }
    match route.reads {
        Reads::Nothing => {}
        Reads::Query => cases.push(case(
            "bad query",
            method.clone(),
            format!("{good_path}?limit=-1"),
            None,
            400,
            "invalid_query",
        )),
        Reads::Json | Reads::Raw => {
            cases.push(case(
                "oversized body",
                method.clone(),
                good_path.clone(),
                Some(vec![b' '; OVERSIZED]),
                413,
                "payload_too_large",
            ));
            if route.reads == Reads::Json {
                cases.push(case(
                    "invalid JSON",
                    method.clone(),
                    good_path.clone(),
                    Some(b"{\"id\": ".to_vec()),
                    400,
                    "invalid_json",
                ));
            }
        }
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_bad_requests_with_the_json_error_body() {
    let dir = temp_dir();
    let server = DevServer::start(dir.path(), DevOptions::default()).await;
    server
        .admin()
        .post(
            "/v1/sources",
            json!({"id": "open", "verify": {"scheme": "none"}}),
        )
        .await;
    let http = hookhub_tests::http_client();
    let mut checked = 0;
    for route in ROUTES {
        for case in cases(route) {
            let label = format!("{} {}: {}", route.method, route.path, case.what);
            let mut request = http.request(case.method, format!("{}{}", server.base, case.path));
            if case.auth {
                request = request.bearer_auth(ADMIN_KEY);
            }
            if let Some(body) = case.body {
                request = request.body(body);
            }
            let response = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let text = response.text().await.unwrap_or_default();
            assert!((400..500).contains(&status), "{label}: {status} {text}");
            assert_eq!(content_type, "application/json", "{label}: {text}");
            let body: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{label}: not JSON ({e}): {text}"));
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{label}: {body}"
            );
            assert_eq!(
                (status, body["error"]["code"].as_str()),
                (case.status, Some(case.code)),
                "{label}: {body}"
            );
            checked += 1;
        }
    }
    assert!(checked > ROUTES.len() * 2, "{checked} requests checked");
    // Unknown paths too.
    let response = http
        .get(format!("{}/nowhere", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[test]
fn the_route_table_lists_every_route() {
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(listed.len(), ROUTES.len(), "a route is listed twice");
    let defined = routes_in_source();
    assert!(defined.len() >= 17, "parsed {defined:?}");
    assert_eq!(
        defined, listed,
        "the routes in shared/src/http and the table differ"
    );
}
