//! The JSON error body and the mapping of library errors onto HTTP statuses.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::admin::AdminError;
use crate::ports::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The error code of an [`ApiError`] answer, kept in the response's extensions so the layers
/// that log and count answers need not parse the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCode(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = ErrorCode(self.code.clone());
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(code);
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            StoreError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            StoreError::Unavailable(detail) => {
                tracing::error!(detail, "backend unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the backend is unavailable; try again",
                )
            }
            StoreError::Corrupt(detail) => {
                tracing::error!(detail, "corrupt record");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "a stored record could not be read",
                )
            }
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid { code, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            AdminError::NotFound(what) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            AdminError::Store(e) => e.into(),
        }
    }
}

/// The last layer of every router: an error response that is not JSON (an axum rejection or
/// default answer that no route turned into an [`ApiError`]) becomes the JSON error body, with
/// a code named after its status and its text as the message.
///
/// Routes answer their own errors with specific codes; this is the backstop that keeps the
/// contract ("every error is JSON") when a new extractor or an axum default slips through. It
/// logs a warning each time, so such a gap is seen and given a proper code.
pub(crate) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // axum's texts are a line or two; anything longer or binary is not worth echoing.
    let text = axum::body::to_bytes(body, 1024)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_string())
        .filter(|text| !text.is_empty());
    let code = code_for_status(status);
    tracing::warn!(
        status = status.as_u16(),
        code,
        "an error answer was not JSON; sent as the JSON error body"
    );
    let message = text.unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_string()
    });
    let json = ApiError::new(status, code, message).into_response();
    // The status and other headers (`Allow`, `Retry-After`) stay; the body and its type change.
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Some(content_type) = json.headers().get(header::CONTENT_TYPE) {
        parts
            .headers
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    Response::from_parts(parts, json.into_body())
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
        })
}

/// The error code of a status when nothing more specific is known; the codes routes use for
/// the same statuses where they have them.
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        409 => "conflict",
        411 => "length_required",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "unprocessable_entity",
        429 => "too_many_requests",
        431 => "headers_too_large",
        500 => "internal",
        501 => "not_implemented",
        503 => "unavailable",
        _ if status.is_client_error() => "client_error",
        _ => "server_error",
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use serde_json::Value;

    use super::*;

    async fn converted(response: Response) -> (StatusCode, HeaderMap, Value) {
        let response = json_errors(response).await;
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (parts.status, parts.headers, value)
    }

    #[tokio::test]
    async fn plain_errors_become_json_and_keep_their_headers() {
        let mut plain = (StatusCode::METHOD_NOT_ALLOWED, "").into_response();
        plain
            .headers_mut()
            .insert(header::ALLOW, "GET,HEAD".parse().unwrap());
        let (status, headers, body) = converted(plain).await;
        assert_eq!(status, 405);
        assert_eq!(headers[header::ALLOW], "GET,HEAD");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["error"]["code"], "method_not_allowed");
        assert_eq!(body["error"]["message"], "Method Not Allowed");

        let rejection = (
            StatusCode::BAD_REQUEST,
            "Failed to deserialize query string",
        )
            .into_response();
        let (_, _, body) = converted(rejection).await;
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(
            body["error"]["message"],
            "Failed to deserialize query string"
        );

        let binary = Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::from(vec![0xff; 8]))
            .unwrap();
        let (_, _, body) = converted(binary).await;
        assert_eq!(body["error"]["code"], "server_error");
        assert_eq!(body["error"]["message"], "Bad Gateway");
    }

    #[tokio::test]
    async fn json_errors_and_successes_pass_unchanged() {
        let api = ApiError::new(StatusCode::NOT_FOUND, "source_not_found", "no such source");
        let (_, _, body) = converted(api.into_response()).await;
        assert_eq!(body["error"]["code"], "source_not_found");
        // A handshake answer in plain text is a success: left alone.
        let ok = converted((StatusCode::OK, "challenge").into_response()).await;
        assert_eq!(ok.1[header::CONTENT_TYPE], "text/plain; charset=utf-8");
    }

    #[test]
    fn codes_follow_the_status() {
        let cases = [
            (400, "bad_request"),
            (404, "not_found"),
            (413, "payload_too_large"),
            (418, "client_error"),
            (431, "headers_too_large"),
            (500, "internal"),
            (503, "unavailable"),
            (504, "server_error"),
        ];
        for (status, code) in cases {
            assert_eq!(code_for_status(StatusCode::from_u16(status).unwrap()), code);
        }
    }
}
