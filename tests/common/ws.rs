//! A plain WebSocket client of the chat, and its frames.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::WAIT;

/// A plain WebSocket client of the chat.
pub struct WsClient {
    pub(crate) socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsClient {
    /// Connects to `ws://addr/` as a program does: without `Origin`.
    pub async fn connect(addr: Option<SocketAddr>) -> Self {
        let url = format!("ws://{}/", addr.expect("listener on"));
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        Self { socket }
    }

    /// Connects to `ws://addr/` as a browser page does: with `Origin: origin`.
    pub async fn connect_from_page(addr: Option<SocketAddr>, origin: &str) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!("ws://{}/", addr.expect("listener on"));
        let mut request = url.into_client_request().expect("a request");
        let origin = origin.parse().expect("an origin header");
        request.headers_mut().insert("origin", origin);
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect");
        Self { socket }
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        use futures_util::SinkExt;
        let message = tokio_tungstenite::tungstenite::Message::text(text.into());
        self.socket.send(message).await.expect("send");
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        use futures_util::SinkExt;
        let message = tokio_tungstenite::tungstenite::Message::binary(bytes);
        self.socket.send(message).await.expect("send");
    }

    /// Skips notifications; the next other frame must be this line.
    pub async fn expect_line_eventually(&mut self, name: &str, msg: &str) {
        loop {
            let frame = self.next().await;
            let text = frame
                .to_text()
                .unwrap_or_else(|_| panic!("a text frame, got {frame:?}"));
            let value: Value = serde_json::from_str(text).expect("JSON");
            if value["type"] != "notification" {
                assert_eq!(value, ws_line(name, msg));
                return;
            }
        }
    }

    /// Sends a chat line as the original page does.
    pub async fn say(&mut self, name: &str, msg: &str) {
        self.send_text(json!({"name": name, "msg": msg}).to_string())
            .await;
    }

    /// The next frame.
    pub async fn next(&mut self) -> tokio_tungstenite::tungstenite::Message {
        use futures_util::StreamExt;
        tokio::time::timeout(WAIT, self.socket.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame")
    }

    /// The next frame must be a text frame with this JSON.
    pub async fn expect(&mut self, expected: Value) {
        let frame = self.next().await;
        let text = frame
            .to_text()
            .unwrap_or_else(|_| panic!("a text frame, got {frame:?}"));
        let value: Value = serde_json::from_str(text).expect("JSON");
        assert_eq!(value, expected);
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        self.socket.close(None).await.expect("close");
    }
}

/// The WebSocket notification of a join, N counting the whole lobby.
pub fn ws_joined(members: usize) -> Value {
    json!({"type": "notification", "msg": format!("새로운 유저 접속 [현재 : {members}명]")})
}

/// The WebSocket notification of a leave.
pub fn ws_left(members: usize) -> Value {
    json!({"type": "notification", "msg": format!("유저 연결 해제 [현재 : {members}명]")})
}

/// A WebSocket line frame.
pub fn ws_line(name: &str, msg: &str) -> Value {
    json!({"type": "message", "name": name, "msg": msg})
}
