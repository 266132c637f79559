//! The admin function serves the web console too (API Gateway routes `GET /console` and
//! `GET /console/{proxy+}` in template.yaml): the page and its assets without the admin key,
//! with the console's security headers, through `lambda_http`'s conversion of a v2 event.

use axum::body::Body;
use axum::http::{Response, StatusCode};
use hookhub::settings::AdminKey;
use hookhub_tests::moto::fresh_aws;
use lambda_http::tower::ServiceExt;
use serde_json::{json, Value};

/// A `GET path` API Gateway v2 event without any authorization header.
fn get_event(path: &str, route_key: &str) -> String {
    let mut event: Value =
        serde_json::from_str(include_str!("../../../events/admin-list-sources.json")).unwrap();
    event["routeKey"] = json!(route_key);
    event["requestContext"]["routeKey"] = json!(route_key);
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
    event["headers"]
        .as_object_mut()
        .unwrap()
        .remove("authorization");
    event["pathParameters"] = match path.strip_prefix("/console/") {
        Some(rest) => json!({ "proxy": rest }),
        None => Value::Null,
    };
    event.to_string()
}

#[tokio::test]
async fn console_page_and_assets_without_the_key() {
    let backend = fresh_aws().await.backend().await.expect("backend");
    let app = hookhub_admin::app(backend, &AdminKey::from_plain("hh_dev_admin_key"));
    for (path, route, content_type) in [
        ("/console", "GET /console", "text/html; charset=utf-8"),
        (
            "/console/console.js",
            "GET /console/{proxy+}",
            "text/javascript; charset=utf-8",
        ),
    ] {
        let request = lambda_http::request::from_str(&get_event(path, route)).unwrap();
        let response: Response<Body> = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], content_type);
        assert_eq!(headers["x-frame-options"], "DENY");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
    }
}
