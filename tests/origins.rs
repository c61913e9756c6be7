//! `--allowed-origins`: Socket.IO requests and WebSocket upgrades from an origin not in
//! the list are refused with 403, listed ones and clients without an `Origin` header
//! are accepted, and with no list every origin is.

mod common;

use common::{TestServer, http_request};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const GOOD: &str = "https://chat.example";
const EVIL: &str = "https://evil.example";

/// A WebSocket upgrade with `origin`, if any: the HTTP status it got.
async fn upgrade_status(server: &TestServer, origin: Option<&str>) -> u16 {
    let url = format!("ws://{}/", server.websocket.expect("on"));
    let mut request = url.into_client_request().expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

/// A Socket.IO long-polling handshake with `origin`, if any: status line and headers.
async fn handshake_head(server: &TestServer, origin: Option<&str>) -> String {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
    let (head, _) =
        http_request(server.http, "/socket.io/?EIO=4&transport=polling", &headers).await;
    head
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_refuses_other_origins_on_both_listeners() {
    let server = TestServer::spawn_with(|config| {
        config.allowed_origins = vec![format!("{GOOD}/"), "http://localhost:8000".into()];
    })
    .await;
    assert_eq!(upgrade_status(&server, Some(EVIL)).await, 403);
    assert_eq!(upgrade_status(&server, Some(GOOD)).await, 101);
    assert_eq!(upgrade_status(&server, None).await, 101);

    let refused = handshake_head(&server, Some(EVIL)).await;
    assert!(refused.starts_with("http/1.1 403"), "{refused}");
    let allowed = handshake_head(&server, Some(GOOD)).await;
    assert!(allowed.starts_with("http/1.1 200"), "{allowed}");
    assert!(
        allowed.contains(&format!("access-control-allow-origin: {GOOD}")),
        "{allowed}"
    );
    let no_origin = handshake_head(&server, None).await;
    assert!(no_origin.starts_with("http/1.1 200"), "{no_origin}");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_list_accepts_any_origin() {
    let server = TestServer::spawn().await;
    assert_eq!(upgrade_status(&server, Some(EVIL)).await, 101);
    let head = handshake_head(&server, Some(EVIL)).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
}
