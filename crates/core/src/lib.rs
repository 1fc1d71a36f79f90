//! Countersign core: the domain rules of the authenticator and the sign-in
//! server, free of I/O. Nothing here touches the network, the disk or the
//! system clock; time and randomness are always parameters.

pub mod answer;
pub mod api;
pub mod enroll;
mod error;
pub mod key_update;
pub mod keys;
pub mod methods;
pub mod migration;
pub mod otp;
pub mod otpauth;
pub mod password;
pub mod pin;
pub mod protocol;
pub mod qr;
pub mod random;
pub mod secret;
pub mod text;
pub mod time;
mod uri;
pub mod vault;

pub use answer::{Answer, Number};
pub use enroll::Enrollment;
pub use error::Error;
pub use keys::{PublicKey, Signature, SigningKey};
pub use otp::{Algorithm, Otp, OtpKind};
pub use otpauth::OtpAccount;
pub use secret::{Passcode, SecretBytes};
pub use uri::percent_encode;
