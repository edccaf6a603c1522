//! `GET /v1/whoami?challenge=HEX` → `{"proof": HEX}`: how `doctor`, `restore` and the
//! command line's nudges tell this data dir's daemon from any other process on its port
//! before they send it the POS token (see [`crate::local_daemon`], which also holds the
//! client). No authentication: the answer proves who we are and grants nothing, and the
//! key it is made with is fresh for each run and used for nothing else.

use super::api::{error, AppState};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route(crate::local_daemon::WHOAMI_PATH, get(whoami))
}

async fn whoami(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    // Set right after binding, before the server starts; unset only if that failed.
    let Some(identity) = state.identity.get() else {
        return error(503, "starting", "the daemon is not ready yet");
    };
    match identity.answer(query.as_deref().unwrap_or_default()) {
        Some(proof) => axum::Json(serde_json::json!({ "proof": proof })).into_response(),
        None => error(400, "bad_challenge", "give challenge=HEX, 16 to 64 bytes in hexadecimal"),
    }
}
