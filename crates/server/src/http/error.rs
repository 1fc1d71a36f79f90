//! Errors as HTTP answers. The domain's refusals carry a stable code; this
//! module alone decides the status each is answered with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use countersign_core::api::ErrorBody;

use crate::domain::Code;
use crate::Error;

/// An error as the client sees it: `{code, message}` with a status.
pub struct ApiError(Error);

/// A refusal as answered, kept with the response so that the pages can
/// show it as a page instead of JSON (`pages::refusals_as_pages`).
#[derive(Clone)]
pub struct Refused {
    /// The stable code.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            Error::Refused { code, .. } => status(*code),
            Error::Store(_) | Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
            "The server could not complete the request.".to_string()
        } else {
            self.0.to_string()
        };
        let refused = Refused {
            code: self.0.code(),
            message: message.clone(),
        };
        let mut resp = (
            status,
            Json(ErrorBody {
                code: self.0.code().to_string(),
                message,
            }),
        )
            .into_response();
        resp.extensions_mut().insert(refused);
        resp
    }
}

/// The status each refusal is answered with.
pub fn status(code: Code) -> StatusCode {
    match code {
        Code::Invalid(_) | Code::InvalidCode | Code::InvalidGrant => StatusCode::BAD_REQUEST,
        Code::Unauthorized
        | Code::BadSignature
        | Code::InvalidCredentials
        | Code::InvalidClient => StatusCode::UNAUTHORIZED,
        Code::AccountDisabled
        | Code::TemporaryPasswordExpired
        | Code::SetupRequired
        | Code::RoleTooHigh
        | Code::WrongDevice
        | Code::PushBlocked => StatusCode::FORBIDDEN,
        Code::NotFound | Code::NoCode => StatusCode::NOT_FOUND,
        Code::UserExists
        | Code::AlreadyDecided
        | Code::MethodsChanged
        | Code::NoPhone
        | Code::NoDevice
        | Code::AlreadyAnswered
        | Code::CodeUsed
        | Code::CodeVoid
        | Code::LastMethod
        | Code::ClientExists => StatusCode::CONFLICT,
        Code::CodeExpired => StatusCode::GONE,
        Code::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Code::AccountLocked => StatusCode::LOCKED,
        Code::TooManyAttempts | Code::TooManyCodes | Code::TooManyRequests | Code::PushLimited => {
            StatusCode::TOO_MANY_REQUESTS
        }
        Code::TelephonyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}
