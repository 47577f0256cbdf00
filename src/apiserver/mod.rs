//! The API server: authentication, the typed command engine over the store, and the HTTP
//! layer that decodes Kubernetes-shaped REST requests into commands.

pub mod alloc;
pub mod auth;
pub mod body;
pub mod discovery;
pub mod engine;
pub mod error;
pub mod http;
pub mod identity;
pub mod proxy;
pub mod resume;
pub mod scale;

pub use auth::{Caller, Credentials};
pub use engine::{Command, Engine, Reply};
pub use error::{ApiError, Status};
