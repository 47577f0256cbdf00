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
    /// 429: the request breaks a rule that time may lift (an eviction that a
    /// PodDisruptionBudget does not allow now); clients retry.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        causes: Vec<StatusCause>,
        retry_after_seconds: Option<u32>,
    },
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
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
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
            ApiError::TooManyRequests { .. } => "TooManyRequests",
        }
    }

    /// The Kubernetes `Status` object for this error, with `details` as kube-apiserver gives
    /// them: the object's name and kind, the offending fields, when to retry.
    pub fn to_status(&self) -> Status {
        let named = |kind: &Kind, name: &str| StatusDetails {
            name: name.to_string(),
            group: kind
                .api_version()
                .split_once('/')
                .map(|(g, _)| g.to_string())
                .unwrap_or_default(),
            kind: kind.plural().to_string(),
            ..Default::default()
        };
        let details = match self {
            ApiError::Invalid { kind, name, causes } => Some(StatusDetails {
                kind: kind.name().to_string(),
                causes: causes.iter().map(StatusCause::of_field).collect(),
                ..named(kind, name)
            }),
            ApiError::NotFound { kind, name, .. } | ApiError::AlreadyExists { kind, name, .. } => {
                Some(named(kind, name))
            }
            ApiError::TooManyRequests {
                causes,
                retry_after_seconds,
                ..
            } => Some(StatusDetails {
                causes: causes.clone(),
                retry_after_seconds: *retry_after_seconds,
                ..Default::default()
            }),
            _ => None,
        };
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: serde_json::Map::new(),
            status: "Failure".into(),
            message: self.to_string(),
            reason: self.reason().into(),
            details,
            code: self.status().as_u16(),
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

/// The body of every error response: `meta/v1` Status.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub kind: String,
    pub api_version: String,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    pub code: u16,
}

impl Status {
    /// The offending fields the server named.
    pub fn causes(&self) -> &[StatusCause] {
        self.details.as_ref().map_or(&[], |d| &d.causes)
    }
}

/// `meta/v1` StatusDetails.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u32>,
}

/// `meta/v1` StatusCause: why, about what field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusCause {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl StatusCause {
    fn of_field(e: &FieldError) -> StatusCause {
        let reason = if e.message.starts_with("required") {
            "FieldValueRequired"
        } else if e.message.starts_with("unsupported value") {
            "FieldValueNotSupported"
        } else {
            "FieldValueInvalid"
        };
        StatusCause {
            reason: reason.into(),
            message: e.message.clone(),
            field: e.field.clone(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry = match &self {
            ApiError::TooManyRequests {
                retry_after_seconds: Some(s),
                ..
            } => Some(*s),
            _ => None,
        };
        let mut resp = (status, axum::Json(json!(self.to_status()))).into_response();
        if let Some(s) = retry {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, s.into());
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
