//! Admin API routes under `/v1`, behind `Authorization: Bearer <admin key>`.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::extract::{AdminBody, ApiPath, ApiQuery};
use super::{ApiError, AppState};

pub(super) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v1/sources", get(list_sources).post(create_source))
        .route(
            "/v1/sources/{id}",
            get(get_source).patch(update_source).delete(delete_source),
        )
        .route(
            "/v1/subscriptions",
            get(list_subscriptions).post(create_subscription),
        )
        .route(
            "/v1/subscriptions/{id}",
            get(get_subscription)
                .patch(update_subscription)
                .delete(delete_subscription),
        )
        .route(
            "/v1/subscriptions/{id}/attempts",
            get(subscription_attempts),
        )
        .route("/v1/subscriptions/{id}/recover", post(recover_subscription))
        .route("/v1/subscriptions/{id}/secret", get(subscription_secret))
        .route(
            "/v1/subscriptions/{id}/secret/rotate",
            post(rotate_subscription_secret),
        )
        .route("/v1/events", get(list_events))
        .route("/v1/events/replay", post(replay_events))
        .route("/v1/events/{id}", get(get_event))
        .route("/v1/events/{id}/attempts", get(event_attempts))
        .route("/v1/events/{id}/replay", post(replay_event))
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(state, require_admin_key))
}

pub(super) async fn require_admin_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(key) if state.admin_key_matches(key.trim()) => next.run(request).await,
        _ => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin key is required: Authorization: Bearer <key>",
        )
        .into_response(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed on this route",
    )
}

/// Parses a JSON body with a JSON error on failure (axum's own rejection is plain text).
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not valid: {e}"),
        )
    })
}

/// Like [`parse`], with an empty (or blank) body meaning the request's defaults.
fn parse_or_default<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse(body)
    }
}

type ApiResult = Result<Response, ApiError>;

fn created<T: serde::Serialize>(value: T) -> ApiResult {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

fn ok<T: serde::Serialize>(value: T) -> ApiResult {
    Ok(Json(value).into_response())
}

fn listed<T: serde::Serialize>(data: Vec<T>) -> ApiResult {
    Ok(Json(serde_json::json!({ "data": data })).into_response())
}

async fn create_source(State(s): State<AppState>, AdminBody(body): AdminBody) -> ApiResult {
    created(s.admin.create_source(parse(&body)?).await?)
}

async fn list_sources(State(s): State<AppState>) -> ApiResult {
    listed(s.admin.list_sources().await?)
}

async fn get_source(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    ok(s.admin.get_source(&id).await?)
}

async fn update_source(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    AdminBody(body): AdminBody,
) -> ApiResult {
    ok(s.admin.update_source(&id, parse(&body)?).await?)
}

async fn delete_source(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    s.admin.delete_source(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn create_subscription(State(s): State<AppState>, AdminBody(body): AdminBody) -> ApiResult {
    created(s.admin.create_subscription(parse(&body)?).await?)
}

async fn list_subscriptions(State(s): State<AppState>) -> ApiResult {
    listed(s.admin.list_subscriptions().await?)
}

async fn get_subscription(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    ok(s.admin.get_subscription(&id).await?)
}

async fn update_subscription(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    AdminBody(body): AdminBody,
) -> ApiResult {
    ok(s.admin.update_subscription(&id, parse(&body)?).await?)
}

async fn delete_subscription(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    s.admin.delete_subscription(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn subscription_secret(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    ok(s.admin.subscription_secret(&id).await?)
}

async fn rotate_subscription_secret(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    AdminBody(body): AdminBody,
) -> ApiResult {
    // An empty body generates the new secret, with the default grace period.
    let request = parse_or_default(&body)?;
    ok(s.admin.rotate_subscription_secret(&id, request).await?)
}

#[derive(Debug, Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn subscription_attempts(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> ApiResult {
    listed(s.admin.subscription_attempts(&id, q.limit).await?)
}

/// `?source=&type=&since=&before=&after=&wait=&limit=` (see [`crate::admin::EventsQuery`]).
async fn list_events(
    State(s): State<AppState>,
    query: Result<Query<crate::admin::EventsQuery>, QueryRejection>,
) -> ApiResult {
    let Ok(Query(q)) = query else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "expected ?source=&type=&since=&before=&after=&wait=&limit=<number>",
        ));
    };
    // A bad query parameter is a bad request (400), as a malformed query is.
    let search = q.validate(chrono::Utc::now()).map_err(|e| match e {
        crate::admin::AdminError::Invalid { code, message } => {
            ApiError::new(StatusCode::BAD_REQUEST, code, message)
        }
        other => ApiError::from(other),
    })?;
    ok(s.admin.search_events(search).await?)
}

async fn get_event(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    ok(s.admin.get_event(&id).await?)
}

async fn event_attempts(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    listed(s.admin.event_attempts(&id).await?)
}

async fn replay_event(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    AdminBody(body): AdminBody,
) -> ApiResult {
    // An empty body replays to every matching subscription.
    let request = parse_or_default(&body)?;
    let replayed = s.admin.replay_event(&id, request).await?;
    Ok((StatusCode::ACCEPTED, Json(replayed)).into_response())
}

async fn recover_subscription(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    AdminBody(body): AdminBody,
) -> ApiResult {
    let accepted = s.admin.recover_subscription(&id, parse(&body)?).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

async fn replay_events(State(s): State<AppState>, AdminBody(body): AdminBody) -> ApiResult {
    let accepted = s.admin.replay_events(parse(&body)?).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}
