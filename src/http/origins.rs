//! Which web origins may open a chat connection (`--allowed-origins`): checked on
//! Socket.IO requests and on plain WebSocket upgrades, against cross-site WebSocket
//! hijacking (a page elsewhere using a visitor's browser to connect).
//!
//! No list (the default) allows every origin, so the original pages keep working from
//! wherever they are served. With a list, a request whose `Origin` is not in it is
//! refused with HTTP 403. A request without an `Origin` header is allowed: browsers
//! always send one on WebSocket upgrades and cross-site requests, so it comes from a
//! client that is not a browser page (a terminal client, a bot, a test).

use std::sync::Arc;

use axum::http::HeaderValue;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
