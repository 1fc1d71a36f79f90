//! Errors as HTTP answers. The domain's refusals carry a stable code; this
//! module alone decides the status each is answered with.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use countersign_core::api::ErrorBody;

use crate::Error;

/// An error as the client sees it: `{code, message}` with a status.
pub struct ApiError(Error);

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
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
            "The server could not complete the request.".to_string()
        } else {
            self.0.to_string()
        };
        (
            status,
            Json(ErrorBody {
                code: self.0.code().to_string(),
                message,
            }),
        )
            .into_response()
    }
}
