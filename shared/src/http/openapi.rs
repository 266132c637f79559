//! The OpenAPI 3.1 document of the admin API, generated from the handlers' `#[utoipa::path]`
//! annotations (`admin.rs`) and the `ToSchema` of their request and response types. Served at
//! `GET /v1/openapi.json` without auth; committed as `docs/openapi.json` (the `openapi` test
//! keeps the two in step).
//!
//! The bearer scheme, the errors every admin route can answer (401, 500, 503) and those that
//! follow from what a route reads (a path parameter, a query, a JSON body: the extractors in
//! `extract.rs`) are added here to every operation, so the handlers' annotations list only
//! their own errors (404, 409, 422).

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::admin::{SourceView, SubscriptionView};
use crate::domain::Attempt;
use crate::verify::{VerifyConfig, CATALOG};

/// The bearer security scheme's name in the document.
pub const SECURITY_SCHEME: &str = "admin_key";

/// Every error answer of the API.
#[derive(ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "source github not found"}}))]
#[allow(dead_code)] // schema only: `ApiError` writes the same shape
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)] // schema only
pub struct ErrorDetail {
    /// Stable and machine-readable (`not_found`, `invalid_json`, …): what clients match on.
    code: String,
    /// For people; its wording may change.
    message: String,
}

/// `GET /v1/sources`.
#[derive(ToSchema)]
#[allow(dead_code)] // schema only: the handlers answer `{"data": [...]}`
pub struct SourceList {
    data: Vec<SourceView>,
}

/// `GET /v1/subscriptions`.
#[derive(ToSchema)]
#[allow(dead_code)] // schema only
pub struct SubscriptionList {
    data: Vec<SubscriptionView>,
}

/// Attempts, newest last for an event, newest first for a subscription.
#[derive(ToSchema)]
#[allow(dead_code)] // schema only
pub struct AttemptList {
    data: Vec<Attempt>,
}

/// `GET /v1/events/states`, in the order of the ids asked for.
#[derive(ToSchema)]
#[allow(dead_code)] // schema only
pub struct EventStateList {
    data: Vec<crate::admin::EventStateView>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hookhub admin API",
        description = "Manage sources and subscriptions, read events and delivery attempts, \
            replay and recover deliveries. Every request but `GET /v1/openapi.json` needs \
            `Authorization: Bearer <admin key>`. Every error is JSON: \
            `{\"error\": {\"code\", \"message\"}}`; clients match on `code`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(openapi_document),
    components(schemas(ErrorBody)),
    tags(
        (name = "sources", description = "Where webhooks arrive and how they are verified"),
        (name = "subscriptions", description = "Where events are delivered"),
        (name = "events", description = "Received webhooks, their delivery attempts and replays"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// The document: this module's parts and the admin routes' annotations.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(super::admin::AdminApi::openapi());
    Conventions.modify(&mut doc);
    doc
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut json = serde_json::to_string_pretty(&document()).expect("the document serialises");
    json.push('\n');
    json
}

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "This OpenAPI 3.1 document", body = Object))
)]
pub(super) async fn openapi_document() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(document_json);
    ([(header::CONTENT_TYPE, "application/json")], json.as_str())
}

/// The bearer scheme and the errors any authenticated route can answer.
struct Conventions;

/// The 400 codes of what an operation reads: `ApiPath`, `ApiQuery`, and `parse` of the body.
const INVALID_PATH: &str = "`invalid_path`: a path parameter is not UTF-8";
const INVALID_QUERY: &str = "`invalid_query`: a query parameter does not parse";
const INVALID_JSON: &str = "`invalid_json`: the body is not JSON of this shape";
/// `AdminBody`'s limit.
const TOO_LARGE: (&str, &str, &str) = (
    "413",
    "PayloadTooLarge",
    "`payload_too_large`: the body is over 2 MiB",
);

const COMMON_ERRORS: [(&str, &str, &str); 3] = [
    (
        "401",
        "Unauthorized",
        "`unauthorized`: no valid `Authorization: Bearer <admin key>`",
    ),
    (
        "500",
        "Internal",
        "`internal`: a stored record could not be read",
    ),
    (
        "503",
        "Unavailable",
        "`unavailable`: the backend is unavailable; try again",
    ),
];

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The admin key (`HOOKHUB_ADMIN_KEY`)"))
                    .build(),
            ),
        );
        for (_, name, description) in COMMON_ERRORS.into_iter().chain([TOO_LARGE]) {
            components
                .responses
                .insert(name.to_string(), RefOr::T(error_response(description)));
        }
        doc.security = Some(vec![SecurityRequirement::new(
            SECURITY_SCHEME,
            Vec::<String>::new(),
        )]);
        for item in doc.paths.paths.values_mut() {
            for operation in operations(item) {
                optional_body_is_omitted(operation);
                // `security(())`: an open route (this document), with none of these errors.
                if operation.security.is_some() {
                    continue;
                }
                let reads_body = operation.request_body.is_some();
                let shared = COMMON_ERRORS.iter().chain(reads_body.then_some(&TOO_LARGE));
                for (status, name, _) in shared {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
                }
                // Added to the route's own 400 codes, if it lists some.
                let responses = &mut operation.responses.responses;
                let own = match responses.get("400") {
                    Some(RefOr::T(own)) => Some(own.description.clone()),
                    _ => None,
                };
                let codes: Vec<String> = own
                    .into_iter()
                    .chain(bad_request_codes(operation))
                    .collect();
                if !codes.is_empty() {
                    operation
                        .responses
                        .responses
                        .insert("400".into(), RefOr::T(error_response(&codes.join("; "))));
                }
            }
        }
    }
}

/// The 400 answers of what the operation reads.
fn bad_request_codes(operation: &Operation) -> Vec<String> {
    let reads = |place: ParameterIn| {
        operation
            .parameters
            .iter()
            .flatten()
            .any(|parameter| matches!(parameter, RefOr::T(p) if p.parameter_in == place))
    };
    let codes = [
        (reads(ParameterIn::Path), INVALID_PATH),
        (reads(ParameterIn::Query), INVALID_QUERY),
        (operation.request_body.is_some(), INVALID_JSON),
    ];
    codes
        .iter()
        .filter(|(applies, _)| *applies)
        .map(|(_, code)| code.to_string())
        .collect()
}

/// `request_body(content = Option<T>)` (an empty body means the defaults) is written as
/// "`T` or `null`", but the body is empty, not `null`: it stays `T`, not required.
fn optional_body_is_omitted(operation: &mut Operation) {
    let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
        return;
    };
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else { continue };
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let not_null: Vec<_> = one_of
                .items
                .iter()
                .filter(|item| matches!(item, RefOr::Ref(_)))
                .cloned()
                .collect();
            if let [only] = &not_null[..] {
                content.schema = Some(only.clone());
            }
        }
    }
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// `verify` is tagged by `scheme`, each scheme with its own fields: the catalog names them,
/// so the schema lists every scheme and its fields without a schema type per provider config.
impl PartialSchema for VerifyConfig {
    fn schema() -> RefOr<Schema> {
        let fields: String = CATALOG
            .iter()
            .map(|info| format!("\n- `{}`: {}", info.scheme, info.fields))
            .collect();
        let description = format!(
            "How a source's requests are authenticated: `scheme` and that scheme's fields \
             (`?` marks optional ones; `secret | secrets` is one secret or a list, for \
             rotation). Secrets are shown as `***`; sent back as `***` in an update, they keep \
             the stored one.{fields}"
        );
        let examples = CATALOG
            .iter()
            .filter_map(|info| serde_json::from_str::<serde_json::Value>(info.example).ok());
        ObjectBuilder::new()
            .property(
                "scheme",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(CATALOG.iter().map(|info| info.scheme))),
            )
            .required("scheme")
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::<Schema>::FreeForm(true),
            ))
            .description(Some(description))
            .examples(examples)
            .into()
    }
}

impl ToSchema for VerifyConfig {}
