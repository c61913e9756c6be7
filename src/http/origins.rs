//! Which web origins may open a chat connection (`--allowed-origins`): checked on
//! Socket.IO requests and on plain WebSocket upgrades, against cross-site WebSocket
//! hijacking (a page elsewhere using a visitor's browser to connect).
//!
//! No list (the default) allows every origin, so the original pages keep working from
//! wherever they are served. With a list, a request whose `Origin` is not in it is
//! refused with HTTP 403. A request without an `Origin` header is allowed: browsers
//! always send one on WebSocket upgrades and cross-site requests, so it comes from a
//! client that is not a browser page (a terminal client, a bot, a test).
//!
//! [`AllowedOrigins`] is the list, which the WebSocket listener checks at its upgrades;
//! [`behind_origin_check`] puts the Socket.IO endpoint behind the check and its CORS
//! headers.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ORIGIN};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::peer_of;
use crate::lobby::Lobby;
use crate::protocol::Protocol;
use crate::refusals::{Refusal, Refusals};

/// The origins allowed to connect; empty: any.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowedOrigins {
    list: Arc<[String]>,
}

impl AllowedOrigins {
    /// Allows exactly `origins` (`scheme://host[:port]`, compared without case and
    /// without a trailing `/`); an empty list allows any.
    pub(crate) fn new(origins: &[String]) -> Self {
        Self {
            list: origins.iter().map(|o| normalize(o)).collect(),
        }
    }

    /// Whether a list is in force.
    pub(crate) fn is_restricted(&self) -> bool {
        !self.list.is_empty()
    }

    /// The origins of the list, normalized.
    pub(crate) fn list(&self) -> &[String] {
        &self.list
    }

    /// Whether a request with this `Origin` header value (if any) may connect; a value
    /// that is not text is no origin of the list.
    pub(crate) fn allows_header(&self, value: Option<&HeaderValue>) -> bool {
        match value.map(HeaderValue::to_str) {
            None => true,
            Some(Ok(origin)) => self.allows(Some(origin)),
            Some(Err(_)) => !self.is_restricted(),
        }
    }

    /// Whether a request with this `Origin` header (if any) may connect.
    pub(crate) fn allows(&self, origin: Option<&str>) -> bool {
        match origin {
            _ if self.list.is_empty() => true,
            None => true,
            Some(origin) => {
                let origin = normalize(origin);
                self.list.contains(&origin)
            }
        }
    }
}

fn normalize(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// `endpoint` (the Socket.IO routes) behind the origin check and its CORS headers.
pub(super) fn behind_origin_check(
    endpoint: Router<Lobby>,
    origins: &AllowedOrigins,
    refusals: &Refusals,
) -> Router<Lobby> {
    let allowed = if origins.is_restricted() {
        AllowOrigin::list(
            origins
                .list()
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    } else {
        AllowOrigin::any()
    };
    let cors = CorsLayer::new()
        .allow_origin(allowed)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([CONTENT_TYPE]);
    endpoint
        .layer(middleware::from_fn_with_state(
            (origins.clone(), refusals.clone()),
            check_origin,
        ))
        .layer(cors)
}

/// Refuses a Socket.IO request from an origin that is not allowed, with HTTP 403.
async fn check_origin(
    State((origins, refusals)): State<(AllowedOrigins, Refusals)>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(ORIGIN);
    if origins.allows_header(origin) {
        return next.run(request).await;
    }
    let why = format_args!("origin not allowed: {origin:?}");
    refusals.report(
        Protocol::SocketIo,
        peer_of(&request),
        Refusal::new("origin", why),
    );
    (StatusCode::FORBIDDEN, "origin not allowed\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::answer;
    use crate::lobby::Limits;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::routing::get;
    use std::time::Duration;

    #[test]
    fn a_list_allows_its_origins_and_clients_without_one() {
        let any = AllowedOrigins::default();
        assert!(any.allows(Some("https://evil.example")));
        let list = AllowedOrigins::new(&[
            "https://Chat.example/".into(),
            "http://localhost:8000".into(),
        ]);
        assert!(list.allows(Some("https://chat.example")));
        assert!(list.allows(Some("http://localhost:8000")));
        assert!(list.allows(None));
        assert!(!list.allows(Some("https://evil.example")));
        assert!(!list.allows(Some("http://localhost:8001")));
        assert!(!list.allows(Some("null")));
    }

    #[tokio::test]
    async fn only_listed_origins_reach_the_endpoint() {
        let origins = AllowedOrigins::new(&["https://chat.example/".to_owned()]);
        let endpoint = Router::new().route("/socket.io/", get(|| async { "endpoint" }));
        let refusals = Refusals::new(Duration::ZERO);
        let app = behind_origin_check(endpoint, &origins, &refusals)
            .with_state(Lobby::new(Limits::default()));
        let from = |origin: Option<&str>| {
            let request = Request::get("/socket.io/");
            let request = match origin {
                Some(origin) => request.header(ORIGIN, origin),
                None => request,
            };
            request.body(Body::empty()).unwrap()
        };
        let listed = HeaderValue::from_static("https://chat.example");
        assert_eq!(
            answer(app.clone(), from(Some("https://chat.example"))).await,
            (StatusCode::OK, listed, "endpoint".to_owned())
        );
        assert_eq!(
            answer(app.clone(), from(Some("https://elsewhere.example"))).await,
            (
                StatusCode::FORBIDDEN,
                HeaderValue::from_static("none"),
                "origin not allowed\n".to_owned()
            )
        );
        // Not a page: a terminal client, a bot, a test.
        let (status, _, body) = answer(app, from(None)).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "endpoint"));
    }
}
