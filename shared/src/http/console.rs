//! The web console: static assets embedded in the binary, served at `/console` without the
//! admin key (the page asks for it and sends it on its own API calls), plus the two admin
//! routes it needs beyond the rest of the API (`/v1/stats`, `/v1/events/states`).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::extract::{ApiPath, ApiQuery};
use super::openapi::{ErrorBody, EventStateList};
use super::{ApiError, AppState};
use crate::admin::parse_window;

/// The console's files: (name under `/console/`, content type, content).
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("console/index.html"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("console/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("console/console.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("console/favicon.svg"),
    ),
];

/// Everything the page loads comes from this origin; no inline script or style, no framing.
/// `connect-src 'self'` covers the admin API calls.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { asset("index.html") }))
        .route("/console/", get(|| async { asset("index.html") }))
        .route(
            "/console/{file}",
            get(|ApiPath(file): ApiPath<String>| async move { asset(&file) }),
        )
}

fn asset(name: &str) -> Response {
    let Some((_, content_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such console file")
            .into_response();
    };
    let mut response = (*body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, *content_type),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // Assets change with the binary; revalidating keeps an upgraded server's page current.
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StatsQuery {
    /// How far back to count: a duration from `1m` to `24h`; `1h` when absent.
    window: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = "events",
    params(StatsQuery),
    responses(
        (status = 200, description = "Counts of the window: received, delivered, failing (`capped`: lower bounds)", body = crate::admin::Stats),
        (status = 422, description = "`invalid_window`: not a duration from 1m to 24h", body = ErrorBody),
    )
)]
pub(super) async fn stats(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Response, ApiError> {
    let window = parse_window(q.window.as_deref())?;
    Ok(Json(s.admin.stats(window).await?).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StatesQuery {
    /// Event ids, comma-separated, at most 100.
    ids: String,
}

#[utoipa::path(
    get,
    path = "/v1/events/states",
    tag = "events",
    params(StatesQuery),
    responses(
        (status = 200, description = "Each event's delivery state and attempt count, in the order given (unknown ids: `pending`)", body = EventStateList),
        (status = 422, description = "`too_many_ids`: more than 100 ids", body = ErrorBody),
    )
)]
pub(super) async fn event_states(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<StatesQuery>,
) -> Result<Response, ApiError> {
    let data = s.admin.event_states(&q.ids).await?;
    Ok(Json(serde_json::json!({ "data": data })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_stay_small() {
        let total: usize = ASSETS.iter().map(|(_, _, body)| body.len()).sum();
        assert!(total <= 150 * 1024, "console assets are {total} bytes");
    }

    /// The create form's table of scheme fields (in `console.js`) names every scheme of the
    /// provider catalog, and no other.
    #[test]
    fn scheme_form_follows_the_catalog() {
        let js = ASSETS
            .iter()
            .find(|(n, _, _)| *n == "console.js")
            .unwrap()
            .2;
        let start = js.find("const SCHEMES = {").expect("SCHEMES table");
        let table = &js[start..start + js[start..].find("};").unwrap()];
        let named = table.matches("\": [").count();
        for info in crate::verify::CATALOG {
            let key = format!("\"{}\": [", info.scheme);
            assert!(
                table.contains(&key),
                "console.js has no fields for {}",
                info.scheme
            );
        }
        assert_eq!(named, crate::verify::CATALOG.len(), "{table}");
    }

    #[test]
    fn no_inline_script_or_style_and_no_other_host() {
        let (_, _, html) = ASSETS[0];
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains("<style"), "inline style");
        assert!(!html.contains(" style="), "inline style attribute");
        for (name, _, body) in ASSETS {
            // The SVG namespace is a name, never fetched.
            let body = body.replace("http://www.w3.org/2000/svg", "");
            assert!(!body.contains("http://"), "{name} names a host");
            assert!(!body.contains("https://"), "{name} names a host");
        }
    }
}
