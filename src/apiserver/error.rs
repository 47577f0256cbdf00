//! API errors and the one place they become HTTP statuses: a Kubernetes-style `Status` body
//! with a message that says what and where, the reason, and the offending fields.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{FieldError, Kind};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{kind} {name:?} not found{}", in_namespace(.namespace))]
    NotFound {
        kind: Kind,
        namespace: Option<String>,
        name: String,
    },
    #[error("{0}")]
    PathNotFound(String),
    #[error("{kind} {name:?} already exists{}", in_namespace(.namespace))]
    AlreadyExists {
        kind: Kind,
        namespace: Option<String>,
        name: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{kind} {name:?} is invalid: {}", join(.causes))]
    Invalid {
        kind: Kind,
        name: String,
        causes: Vec<FieldError>,
    },
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A request body over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// A body in a format the endpoint does not take (a patch content type).
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A node agent the master proxies to did not answer.
    #[error("{0}")]
    BadGateway(String),
}

fn in_namespace(ns: &Option<String>) -> String {
    ns.as_ref()
        .map(|n| format!(" in namespace {n:?}"))
        .unwrap_or_default()
}

fn join(causes: &[FieldError]) -> String {
    causes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } | ApiError::PathNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound { .. } | ApiError::PathNotFound(_) => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict(_) => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Gone(_) => "Expired",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::TooLarge(_) => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Unavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
            ApiError::BadGateway(_) => "ServiceUnavailable",
        }
    }

    /// The Kubernetes `Status` object for this error.
    pub fn to_status(&self) -> Status {
        let causes = match self {
            ApiError::Invalid { causes, .. } => causes.clone(),
            _ => Vec::new(),
        };
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            status: "Failure".into(),
            message: self.to_string(),
            reason: self.reason().into(),
            code: self.status().as_u16(),
            causes,
        }
    }

    pub fn from_store(e: StoreError, kind: Kind, namespace: Option<&str>, name: &str) -> ApiError {
        match e {
            StoreError::NotFound(_) => ApiError::NotFound {
                kind,
                namespace: namespace.map(str::to_string),
                name: name.to_string(),
            },
            StoreError::AlreadyExists(_) => ApiError::AlreadyExists {
                kind,
                namespace: namespace.map(str::to_string),
                name: name.to_string(),
            },
            StoreError::Conflict { expected, actual, .. } => ApiError::Conflict(format!(
                "{kind} {name:?} was modified since you read it (your resourceVersion {expected}, \
                 now {actual}); get it again and retry"
            )),
            StoreError::Compacted(rev) => ApiError::Gone(format!(
                "too old resource version: {rev} (compacted); list again and watch from the new resourceVersion"
            )),
            StoreError::Unavailable(msg) => ApiError::Unavailable(msg),
            StoreError::Invalid(msg) => ApiError::BadRequest(msg),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub kind: String,
    pub api_version: String,
    pub status: String,
    pub message: String,
    pub reason: String,
    pub code: u16,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<FieldError>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut resp = (status, axum::Json(json!(self.to_status()))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
