//! The JSON API of the HTTP listener: chat history and presence.
//!
//! `GET /api/history?limit=N&before=ID`:
//! `{"lines": [{"id", "time", "name", "protocol", "text"}, …], "older": ID | null}`.
//! The lines are the `limit` latest (default 100, capped at 1000) with an id below
//! `before` (default: all), oldest first; `older` is the `before` of the previous page,
//! `null` when there is none. `time` is RFC 3339 (UTC, milliseconds); `protocol` is
//! `socketio`, `websocket`, `tcp-json` or `tcp-text`. A bad parameter gets a 400 and
//! `{"error": "<why>"}`; without a history (`--no-history`), a 404 and the same shape.
//!
//! `GET /api/members`: `{"count": N, "members": [{"name", "protocol", "since"}, …]}`,
//! the named members present now, in the order they connected (`since`: RFC 3339).
//! Our page also receives this object live, as the Socket.IO event `members`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::history::{DEFAULT_PAGE_LINES, MAX_PAGE_LINES, StoredLine};
use crate::lobby::Lobby;

/// Why an API request was refused; the text is the `error` the client gets.
#[derive(Debug, thiserror::Error)]
enum ApiError {
    #[error("limit must be a whole number from 1 (at most {MAX_PAGE_LINES} are returned)")]
    Limit,
    #[error("before must be a line id (a whole number)")]
    Before,
    #[error("the history is off on this server")]
    NoHistory,
    #[error("the history cannot be read now")]
    Unavailable,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::Limit | ApiError::Before => StatusCode::BAD_REQUEST,
            ApiError::NoHistory => StatusCode::NOT_FOUND,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// `GET /api/history`.
pub async fn history(
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
    let before = match query.get("before") {
        None => None,
        Some(before) => Some(before.parse::<i64>().map_err(|_| ApiError::Before)?),
    };
    let reader = lobby.history().ok_or(ApiError::NoHistory)?.clone();
    // One more than asked tells whether there is an older page.
    let read = tokio::task::spawn_blocking(move || reader.page(before, limit + 1)).await;
    let mut lines = match read {
        Ok(Ok(lines)) => lines,
        Ok(Err(e)) => {
            tracing::error!("{e}");
            return Err(ApiError::Unavailable);
        }
        Err(e) => {
            tracing::error!("the history read did not finish: {e}");
            return Err(ApiError::Unavailable);
        }
    };
    let more = lines.len() > limit;
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
        "protocol": line.protocol,
        "text": line.text,
    })
}

fn rfc3339(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// `GET /api/members`.
pub async fn members(State(lobby): State<Lobby>) -> Json<Value> {
    Json(members_json(&lobby))
}

/// The member list as the `members` event carries it, made once per presence change and
/// shared by every subscriber: each change is sent to every subscriber, and building the
/// list once per subscriber would cost subscribers × members per join.
#[derive(Clone, Default)]
pub struct SharedMemberList(Arc<Mutex<Option<MemberList>>>);

/// A member list and the presence version it was made at.
type MemberList = (u64, Arc<RawValue>);

impl SharedMemberList {
    /// The list as of presence `version` (see [`Lobby::watch_presence`]) or later.
    pub fn get(&self, lobby: &Lobby, version: u64) -> Result<Arc<RawValue>, serde_json::Error> {
        let mut cached = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((made_at, list)) = &*cached
            && *made_at >= version
        {
            return Ok(list.clone());
        }
        let list: Arc<RawValue> = serde_json::value::to_raw_value(&members_json(lobby))?.into();
        *cached = Some((version, list.clone()));
        Ok(list)
    }
}

/// Who is in the lobby now, as `GET /api/members` and the `members` event carry it.
pub fn members_json(lobby: &Lobby) -> Value {
    let present = lobby.present();
    json!({
        "count": present.len(),
        "members": present
            .iter()
            .map(|member| json!({
                "name": &*member.name,
                "protocol": member.protocol.as_str(),
                "since": rfc3339(member.since),
            }))
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::{Delivery, Limits, Outbox, Protocol, Refusal};

    struct Nobody;

    impl Outbox for Nobody {
        fn offer(&self, _: &Arc<Delivery>) -> Result<(), Refusal> {
            Ok(())
        }
        fn cut_off(&self) {}
    }

    fn names(list: &RawValue) -> Vec<String> {
        let list: Value = serde_json::from_str(list.get()).unwrap();
        list["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|member| member["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_member_list_is_made_once_per_presence_change() {
        let lobby = Lobby::new(Limits::default());
        let shared = SharedMemberList::default();
        let ann = lobby.join(Protocol::SocketIo, Nobody);
        ann.set_name("ann").unwrap();
        let version = *lobby.watch_presence().borrow();
        let first = shared.get(&lobby, version).unwrap();
        assert_eq!(names(&first), ["ann"]);
        // Another subscriber at the same version gets the very same list.
        assert!(Arc::ptr_eq(&first, &shared.get(&lobby, version).unwrap()));

        let bob = lobby.join(Protocol::SocketIo, Nobody);
        bob.set_name("bob").unwrap();
        let changed = *lobby.watch_presence().borrow();
        assert!(changed > version);
        let mut now = names(&shared.get(&lobby, changed).unwrap());
        now.sort();
        assert_eq!(now, ["ann", "bob"]);
    }
}
