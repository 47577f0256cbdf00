//! The API server: authentication, the typed command engine over the store, and the HTTP
//! layer that decodes Kubernetes-shaped REST requests into commands.

pub mod accounts;
pub mod alloc;
pub mod auth;
pub mod body;
pub mod discovery;
pub mod engine;
pub mod error;
pub mod eviction;
pub mod fieldvalidation;
pub mod http;
pub mod identity;
pub mod openapi;
pub mod openapi_v2;
pub mod paging;
pub mod podadmission;
pub mod podlog;
pub mod portforward;
pub mod proxy;
pub mod resume;
pub mod scale;
pub mod spdy;
pub mod storage;
pub mod stored;
pub mod streams;
pub mod table;
pub mod write;

pub use auth::{Caller, Credentials};
pub use engine::{Command, Engine, Reply};
pub use error::{ApiError, Status, StatusCause};
