//! The rules of signing in, free of HTTP: accounts and passwords, sign-in
//! methods, authenticator activation, push challenges, TOTP, registration
//! requests and the help desk's fixes. Each is a set of methods on
//! [`Server`], the state built once at start.

pub mod accounts;
pub mod activation;
pub mod captcha;
mod error;
pub mod fixes;
pub mod helpdesk;
mod hub;
pub mod inbox;
pub mod instances;
pub mod keys;
pub mod limits;
pub mod methods;
pub mod oidc;
pub mod passwords;
mod phone_codes;
pub mod push;
pub mod registration;
mod server;
pub mod shared_keys;
pub mod totp;

pub use error::{Code, Error};
pub(crate) use server::random_token;
pub use server::{sha256, AuditChanges, Server};
