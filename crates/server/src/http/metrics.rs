//! `/metrics` for Prometheus, on a listener of its own (`metrics.listen`,
//! loopback by default): plain HTTP, nothing else served there, and
//! nothing of it on the sign-in listener.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::Server;

/// Prometheus's text format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `listen` and serves `/metrics` until `shutdown` is dropped or
/// fired. Returns the bound address (useful with port 0).
pub async fn start(
    server: Arc<Server>,
    listen: SocketAddr,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(server);
    tokio::spawn(async move {
        let stop = async {
            let _ = shutdown.await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(addr)
}

async fn metrics(State(s): State<Arc<Server>>) -> Response {
    match s.metrics.render(s.hub.total_connected()) {
        Ok(text) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics could not be written");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Counts the requests a rate limit refused, whichever part of the router
/// answered them.
pub(crate) async fn count_refusals(State(s): State<Arc<Server>>, resp: Response) -> Response {
    if resp.status() == StatusCode::TOO_MANY_REQUESTS {
        s.metrics.rate_limited();
    }
    resp
}
