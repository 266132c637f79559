//! Extractors whose rejections are the JSON error body (axum's own answer in plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::body::read_limited;
use super::ApiError;

/// The largest admin request body: axum's default limit, made explicit.
pub(crate) const ADMIN_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// `Path<T>`; a path parameter that does not decode (e.g. `%FF`, not UTF-8) is a 400
/// `invalid_path`.
pub(crate) struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(e) => Err(rejection(e.status(), "invalid_path", e.body_text())),
        }
    }
}

/// `Query<T>`; a query string that does not fit `T` (e.g. `limit=-1`) is a 400 `invalid_query`.
pub(crate) struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(e) => Err(rejection(e.status(), "invalid_query", e.body_text())),
        }
    }
}

/// The raw admin request body, at most [`ADMIN_MAX_BODY_BYTES`]; a larger one is a 413
/// `payload_too_large` that the client can read (see [`super::body`]).
pub(crate) struct AdminBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for AdminBody {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        read_limited(&parts.headers, body, ADMIN_MAX_BODY_BYTES)
            .await
            .map(Self)
            .map_err(|e| e.into_response(ADMIN_MAX_BODY_BYTES))
    }
}

/// axum's rejections are 4xx for bad input and 5xx for a route that does not fit its
/// extractor (a bug): the latter must not read as the client's fault.
fn rejection(status: StatusCode, code: &'static str, message: String) -> ApiError {
    if status.is_server_error() {
        tracing::error!(
            status = status.as_u16(),
            message,
            "extractor does not fit its route"
        );
        ApiError::new(status, "internal", "the request could not be handled")
    } else {
        ApiError::new(status, code, message)
    }
}
