//! Engine.IO sessions hold places under the connection limits (`crate::net::admission`),
//! as connections do: a session is a client as much as a connection is, and long-polling
//! lets one keep-alive connection open any number of them.
//!
//! | request on `/socket.io/` | its place |
//! |---|---|
//! | a handshake (no `sid`), long-polling or WebSocket, on a connection that holds a place | the connection's place moves to the session, once the handshake succeeded |
//! | a handshake on a connection that gave its place to an earlier session | a new place for the session, or HTTP 503 `{"error": "too many connections …"}` (counted and logged, folded per address, as a refused connection) |
//! | a session's upgrade to WebSocket (`sid`, `transport=websocket`) | the new connection's place is given back once the upgrade succeeded: the session holds one already |
//! | anything else | the connection keeps its place |
//!
//! So a Socket.IO client holds one place for as long as its session lives (two for a
//! moment while it upgrades), and a client that opens sessions by the thousand over a
//! few keep-alive connections is refused past the limits. A session's place is given
//! back when socketioxide lets go of the session (it keeps the handshake's request parts,
//! and with them the place, for the session's life).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::locks::lock;
use crate::net::admission::{Admission, AdmissionRefusal, Permit};
use crate::protocol::Protocol;
use crate::refusals::{Refusal, Refusals, Who};

/// A place under the connection limits that can move: an HTTP connection's (in every
/// request's extensions) or an Engine.IO session's (in its handshake's extensions).
#[derive(Clone, Default)]
pub(crate) struct Place(Arc<Mutex<Option<Permit>>>);

impl Place {
    /// A place holding `permit`.
    pub(crate) fn holding(permit: Permit) -> Self {
        Self(Arc::new(Mutex::new(Some(permit))))
    }

    /// Counts the place, while the connection still holds it, for `client`: the
    /// client a trusted proxy forwards (`crate::net::proxy`), unless that client is at
    /// its limit. A place a session took over stays the session's.
    pub(crate) fn count_for(&self, client: IpAddr) -> Result<(), AdmissionRefusal> {
        match lock(&self.0).as_mut() {
            Some(permit) => permit.count_for(client),
            None => Ok(()),
        }
    }

    fn take(&self) -> Option<Permit> {
        lock(&self.0).take()
    }

    fn put(&self, permit: Permit) {
        *lock(&self.0) = Some(permit);
    }
}

/// What a request on `/socket.io/` is to its session's place.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// Opens a session.
    Handshake,
    /// Upgrades a session to WebSocket.
    Upgrade,
    /// Anything else: a poll, a post, a malformed request.
    Other,
}

impl Request {
    fn of(query: Option<&str>) -> Self {
        let (mut sid, mut transport) = (false, None);
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=') {
                Some(("sid", _)) => sid = true,
                Some(("transport", value)) => transport = Some(value),
                _ => {}
            }
        }
        match (sid, transport) {
            (false, Some(_)) => Request::Handshake,
            (true, Some("websocket")) => Request::Upgrade,
            _ => Request::Other,
        }
    }
}

/// The middleware that gives each Engine.IO session a place (see the module doc).
pub(crate) async fn hold_places(
    State((admission, refusals)): State<(Admission, Refusals)>,
    mut request: axum::extract::Request,
    next: Next,
) -> Response {
    let kind = Request::of(request.uri().query());
    if kind == Request::Other {
        return next.run(request).await;
    }
    let connection = request.extensions().get::<Place>().cloned();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    if kind == Request::Upgrade {
        let response = next.run(request).await;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            drop(connection.and_then(|place| place.take()));
        }
        return response;
    }
    // A handshake: the connection's place if it still has one, else a new one.
    let new = match (connection.as_ref().and_then(|place| place.take()), peer) {
        (Some(permit), _) => Err(permit),
        (None, Some(peer)) => match admission.admit(peer.ip()) {
            Ok(permit) => Ok(permit),
            Err(why) => {
                let refusal = Refusal::new(why.reason(), why);
                refusals.report(Protocol::SocketIo, Who::Peer(peer), refusal);
                let body = json!({ "error": why.to_string() });
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
        },
        // Not served by `crate::http::Connection` (no peer): nothing to count it by.
        (None, None) => return next.run(request).await,
    };
    let session = Place::default();
    request.extensions_mut().insert(session.clone());
    let response = next.run(request).await;
    let opened = matches!(
        response.status(),
        StatusCode::OK | StatusCode::SWITCHING_PROTOCOLS
    );
    match (new, opened) {
        (Ok(permit) | Err(permit), true) => session.put(permit),
        // The connection keeps its place; a new one is given back.
        (Err(permit), false) => {
            if let Some(connection) = connection {
                connection.put(permit);
            }
        }
        (Ok(_), false) => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_upgrades_and_the_rest() {
        let kind = |query| Request::of(Some(query));
        assert_eq!(kind("EIO=4&transport=polling&t=Pq1"), Request::Handshake);
        assert_eq!(kind("EIO=3&transport=websocket"), Request::Handshake);
        assert_eq!(kind("EIO=4&transport=websocket&sid=abc"), Request::Upgrade);
        assert_eq!(kind("EIO=4&transport=polling&sid=abc"), Request::Other);
        assert_eq!(kind("EIO=4"), Request::Other);
        assert_eq!(Request::of(None), Request::Other);
    }
}
