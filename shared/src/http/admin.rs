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
use utoipa::{IntoParams, OpenApi};

use super::extract::{AdminBody, ApiPath, ApiQuery};
use super::openapi::{AttemptList, ErrorBody, SourceList, SubscriptionList};
use super::{ApiError, AppState};
use crate::admin::{
    BulkAccepted, BulkReplayRequest, CreateSource, CreateSubscription, CreatedSubscription,
    EventPage, EventView, RecoverRequest, ReplayEvent, Replayed, RotateSecret, SourceView,
    SubscriptionSecret, SubscriptionView, UpdateSource, UpdateSubscription,
};

/// The OpenAPI paths of [`routes`] (`super::openapi` adds what every route shares): a route
/// added there is added here too, or the `openapi` test fails.
#[derive(OpenApi)]
#[openapi(paths(
    list_sources,
    create_source,
    get_source,
    update_source,
    delete_source,
    list_subscriptions,
    create_subscription,
    get_subscription,
    update_subscription,
    delete_subscription,
    subscription_attempts,
    recover_subscription,
    subscription_secret,
    rotate_subscription_secret,
    list_events,
    replay_events,
    get_event,
    event_attempts,
    replay_event,
    super::console::stats,
    super::console::event_states,
))]
pub(super) struct AdminApi;

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
        .route("/v1/events/states", get(super::console::event_states))
        .route("/v1/stats", get(super::console::stats))
        .route("/v1/events/replay", post(replay_events))
        .route("/v1/events/{id}", get(get_event))
        .route("/v1/events/{id}/attempts", get(event_attempts))
        .route("/v1/events/{id}/replay", post(replay_event))
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(state, require_admin_key))
        // Open, so client generators and people can fetch it without a key.
        .route("/v1/openapi.json", get(super::openapi::openapi_document))
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

#[utoipa::path(
    post,
    path = "/v1/sources",
    tag = "sources",
    request_body = CreateSource,
    responses(
        (status = 201, description = "The source, secrets redacted", body = SourceView),
        (status = 409, description = "`conflict`: a source with this id exists", body = ErrorBody),
        (status = 422, description = "`invalid_source_id`, `reserved_source` (`hookhub`), `invalid_verify`, `invalid_dedup`, `secret_placeholder` (`***` where nothing is stored)", body = ErrorBody),
    )
)]
async fn create_source(State(s): State<AppState>, AdminBody(body): AdminBody) -> ApiResult {
    created(s.admin.create_source(parse(&body)?).await?)
}

#[utoipa::path(
    get,
    path = "/v1/sources",
    tag = "sources",
    responses(
        (status = 200, description = "Every source, secrets redacted", body = SourceList),
    )
)]
async fn list_sources(State(s): State<AppState>) -> ApiResult {
    listed(s.admin.list_sources().await?)
}

#[utoipa::path(
    get,
    path = "/v1/sources/{id}",
    tag = "sources",
    params(("id" = String, Path, description = "The source id")),
    responses(
        (status = 200, description = "The source, secrets redacted", body = SourceView),
        (status = 404, description = "`not_found`: no such source", body = ErrorBody),
    )
)]
async fn get_source(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    ok(s.admin.get_source(&id).await?)
}

#[utoipa::path(
    patch,
    path = "/v1/sources/{id}",
    tag = "sources",
    params(("id" = String, Path, description = "The source id")),
    request_body = UpdateSource,
    responses(
        (status = 200, description = "The updated source, secrets redacted", body = SourceView),
        (status = 404, description = "`not_found`: no such source", body = ErrorBody),
        (status = 422, description = "`reserved_source` (`hookhub`), `invalid_verify`, `invalid_dedup`, `secret_placeholder`", body = ErrorBody),
    )
)]
async fn update_source(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    AdminBody(body): AdminBody,
) -> ApiResult {
    ok(s.admin.update_source(&id, parse(&body)?).await?)
}

#[utoipa::path(
    delete,
    path = "/v1/sources/{id}",
    tag = "sources",
    params(("id" = String, Path, description = "The source id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such source", body = ErrorBody),
        (status = 422, description = "`reserved_source`: the built-in `hookhub` source", body = ErrorBody),
    )
)]
async fn delete_source(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    s.admin.delete_source(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions",
    tag = "subscriptions",
    request_body = CreateSubscription,
    responses(
        (status = 201, description = "The subscription and its signing secret (shown unasked this once)", body = CreatedSubscription),
        (status = 422, description = "`invalid_url`, `url_not_allowed` (a non-public IP address), `invalid_sources`, `invalid_event_types`, `invalid_filter`, `invalid_transform`, `invalid_headers`, `invalid_rate_limit`, `invalid_secret`", body = ErrorBody),
    )
)]
async fn create_subscription(State(s): State<AppState>, AdminBody(body): AdminBody) -> ApiResult {
    created(s.admin.create_subscription(parse(&body)?).await?)
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions",
    tag = "subscriptions",
    responses(
        (status = 200, description = "Every subscription, without secrets", body = SubscriptionList),
    )
)]
async fn list_subscriptions(State(s): State<AppState>) -> ApiResult {
    listed(s.admin.list_subscriptions().await?)
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions/{id}",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription id")),
    responses(
        (status = 200, description = "The subscription, without secrets", body = SubscriptionView),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
    )
)]
async fn get_subscription(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    ok(s.admin.get_subscription(&id).await?)
}

#[utoipa::path(
    patch,
    path = "/v1/subscriptions/{id}",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription id")),
    request_body = UpdateSubscription,
    responses(
        (status = 200, description = "The updated subscription", body = SubscriptionView),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
        (status = 422, description = "`invalid_url`, `url_not_allowed`, `invalid_sources`, `invalid_event_types`, `invalid_filter`, `invalid_transform`, `invalid_headers`, `invalid_rate_limit`, `invalid_secret`", body = ErrorBody),
    )
)]
async fn update_subscription(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    AdminBody(body): AdminBody,
) -> ApiResult {
    ok(s.admin.update_subscription(&id, parse(&body)?).await?)
}

#[utoipa::path(
    delete,
    path = "/v1/subscriptions/{id}",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
    )
)]
async fn delete_subscription(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    s.admin.delete_subscription(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions/{id}/secret",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription id")),
    responses(
        (status = 200, description = "The signing secret", body = SubscriptionSecret),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
    )
)]
async fn subscription_secret(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    ok(s.admin.subscription_secret(&id).await?)
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/secret/rotate",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription id")),
    request_body(content = Option<RotateSecret>, description = "Empty: a generated secret, the old one signing for 24 h more"),
    responses(
        (status = 200, description = "The new secret and until when the old one still signs", body = SubscriptionSecret),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
        (status = 422, description = "`invalid_secret` (also: the same as the current one), `invalid_grace`", body = ErrorBody),
    )
)]
async fn rotate_subscription_secret(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    AdminBody(body): AdminBody,
) -> ApiResult {
    // An empty body generates the new secret, with the default grace period.
    let request = parse_or_default(&body)?;
    ok(s.admin.rotate_subscription_secret(&id, request).await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LimitQuery {
    /// At most this many (1-1000; 50 when absent).
    limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions/{id}/attempts",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription id"), LimitQuery),
    responses(
        (status = 200, description = "The subscription's latest attempts, newest first", body = AttemptList),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
    )
)]
async fn subscription_attempts(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> ApiResult {
    listed(s.admin.subscription_attempts(&id, q.limit).await?)
}

#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    params(crate::admin::EventsQuery),
    responses(
        (status = 200, description = "A page of events without headers or body: newest first, or oldest first with `after` (the long poll)", body = EventPage),
        (status = 400, description = "`invalid_limit`, `invalid_since`, `invalid_after`, `invalid_wait`, `invalid_source`, `invalid_event_type`, `invalid_query`", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    tag = "events",
    params(("id" = String, Path, description = "The event id")),
    responses(
        (status = 200, description = "The event with its headers and body", body = EventView),
        (status = 404, description = "`not_found`: no such event", body = ErrorBody),
    )
)]
async fn get_event(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    ok(s.admin.get_event(&id).await?)
}

#[utoipa::path(
    get,
    path = "/v1/events/{id}/attempts",
    tag = "events",
    params(("id" = String, Path, description = "The event id")),
    responses(
        (status = 200, description = "Every delivery attempt of the event", body = AttemptList),
        (status = 404, description = "`not_found`: no such event", body = ErrorBody),
    )
)]
async fn event_attempts(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult {
    listed(s.admin.event_attempts(&id).await?)
}

#[utoipa::path(
    post,
    path = "/v1/events/{id}/replay",
    tag = "events",
    params(("id" = String, Path, description = "The event id")),
    request_body(content = Option<ReplayEvent>, description = "Empty: to every enabled subscription the event matches"),
    responses(
        (status = 202, description = "Deliveries enqueued, each a new attempt series", body = Replayed),
        (status = 404, description = "`not_found`: no such event, or no such subscription", body = ErrorBody),
        (status = 422, description = "`subscription_disabled`, `operational_event_subject` (an operational event about that subscription)", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/recover",
    tag = "subscriptions",
    params(("id" = String, Path, description = "The subscription id")),
    request_body = RecoverRequest,
    responses(
        (status = 202, description = "The recovery job started (or, for a dry run, only counted)", body = BulkAccepted),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
        (status = 422, description = "`invalid_time`, `invalid_range`, `invalid_state`, `subscription_disabled`", body = ErrorBody),
    )
)]
async fn recover_subscription(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    AdminBody(body): AdminBody,
) -> ApiResult {
    let accepted = s.admin.recover_subscription(&id, parse(&body)?).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

#[utoipa::path(
    post,
    path = "/v1/events/replay",
    tag = "events",
    request_body = BulkReplayRequest,
    responses(
        (status = 202, description = "The replay job started (or, for a dry run, only counted)", body = BulkAccepted),
        (status = 404, description = "`not_found`: no such subscription", body = ErrorBody),
        (status = 422, description = "`invalid_time`, `invalid_range`, `invalid_source`, `invalid_event_type`, `subscription_disabled`", body = ErrorBody),
    )
)]
async fn replay_events(State(s): State<AppState>, AdminBody(body): AdminBody) -> ApiResult {
    let accepted = s.admin.replay_events(parse(&body)?).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}
