//! The JSON API of the HTTP listener: chat history and presence.
//!
//! `GET /api/history?limit=N&before=ID`:
//! `{"lines": [{"id", "time", "name", "protocol", "text"}, …], "older": ID | null}`.
//! The lines are the `limit` latest (default 100, capped at 1000) with an id below
//! `before` (default: all), oldest first; `older` is the `before` of the previous page,
//! `null` when there is none. `time` is RFC 3339 (UTC, milliseconds); `protocol` is
//! `socketio`, `websocket`, `tcp-json` or `tcp-text`.
//!
//! `GET /api/history?after=ID&limit=N`: what came after line `ID` (a client catching up,
//! with the `id` of the last line it has: Socket.IO `update`s carry it):
//! `{"lines": […], "newer": ID | null}`, the `limit` oldest lines with an id above `ID`,
//! oldest first; `newer` is the `after` of the next page, `null` when these are the
//! latest. `before` and `after` together are refused.
//!
//! A bad parameter gets a 400 and `{"error": "<why>"}`; without a history
//! (`--no-history`), a 404 and the same shape.
//!
//! `GET /api/members`: `{"count": N, "members": [{"name", "protocol", "since"}, …]}`,
//! the named members present now, in the order they connected (`since`: RFC 3339).
//! Our page also receives this object live, as the Socket.IO event `members`.

use std::collections::HashMap;

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::lobby::Lobby;
use crate::lobby::presence::{members_json, rfc3339};
use crate::log::{DEFAULT_PAGE_LINES, MAX_PAGE_LINES, StoredLine};

/// Why an API request was refused; the text is the `error` the client gets.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("limit must be a whole number from 1 (at most {MAX_PAGE_LINES} are returned)")]
    Limit,
    #[error("before must be a line id (a whole number)")]
    Before,
    #[error("after must be a line id (a whole number)")]
    After,
    #[error("before and after cannot be asked together: one page goes one way")]
    BothWays,
    #[error("the history is off on this server")]
    NoHistory,
    #[error("the history cannot be read now")]
    Unavailable,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::Limit | ApiError::Before | ApiError::After | ApiError::BothWays => {
                StatusCode::BAD_REQUEST
            }
            ApiError::NoHistory => StatusCode::NOT_FOUND,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// `GET /api/history`.
pub(crate) async fn history(
    State(lobby): State<Lobby>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match read_history(&lobby, &query).await {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn read_history(lobby: &Lobby, query: &HashMap<String, String>) -> Result<Value, ApiError> {
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE_LINES,
        Some(limit) => match limit.parse::<u64>() {
            Ok(0) | Err(_) => return Err(ApiError::Limit),
            Ok(limit) => usize::try_from(limit).map_or(MAX_PAGE_LINES, |l| l.min(MAX_PAGE_LINES)),
        },
    };
    let id = |name: &str, refusal: ApiError| match query.get(name) {
        None => Ok(None),
        Some(id) => id.parse::<i64>().map(Some).map_err(|_| refusal),
    };
    let before = id("before", ApiError::Before)?;
    let after = id("after", ApiError::After)?;
    if before.is_some() && after.is_some() {
        return Err(ApiError::BothWays);
    }
    if !lobby.has_history() {
        return Err(ApiError::NoHistory);
    }
    // One more than asked tells whether there is another page.
    let reader = lobby.clone();
    let read = tokio::task::spawn_blocking(move || match after {
        Some(after) => reader.history_after(after, limit + 1),
        None => reader.history_page(before, limit + 1),
    })
    .await;
    let mut lines = match read {
        Ok(None) => return Err(ApiError::NoHistory),
        Ok(Some(Ok(lines))) => lines,
        Ok(Some(Err(e))) => {
            tracing::error!("{e}");
            return Err(ApiError::Unavailable);
        }
        Err(e) => {
            tracing::error!("the history read did not finish: {e}");
            return Err(ApiError::Unavailable);
        }
    };
    let more = lines.len() > limit;
    if after.is_some() {
        lines.truncate(limit);
        let newer = more.then(|| lines.last().map(|line| line.id)).flatten();
        return Ok(json!({
            "lines": lines.iter().map(line_json).collect::<Vec<_>>(),
            "newer": newer,
        }));
    }
    if more {
        lines.remove(0);
    }
    let older = more.then(|| lines.first().map(|line| line.id)).flatten();
    Ok(json!({
        "lines": lines.iter().map(line_json).collect::<Vec<_>>(),
        "older": older,
    }))
}

fn line_json(line: &StoredLine) -> Value {
    let millis = u64::try_from(line.time_ms).unwrap_or(0);
    json!({
        "id": line.id,
        "time": rfc3339(UNIX_EPOCH + Duration::from_millis(millis)),
        "name": line.name,
        "protocol": line.protocol.as_str(),
        "text": line.text,
    })
}

/// `GET /api/members`.
pub(crate) async fn members(State(lobby): State<Lobby>) -> Json<Value> {
    Json(members_json(&lobby))
}
