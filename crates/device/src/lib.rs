//! The Countersign authenticator engine: everything an authenticator does,
//! with no user interface. The `countersign` CLI and the desktop/phone app
//! are thin layers over it.

mod error;
pub mod scanner;

pub use error::Error;
