//! Socket.IO clients: `rust_socketio` whose every receive is bounded by a timeout, a
//! raw Engine.IO client of the test's own making, and the lobby's `update` payloads.

use std::net::SocketAddr;

use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::WAIT;
use super::server::TestServer;

/// A Socket.IO client that records every event it receives, in order.
///
/// The `id` of a chat line's `update` (its history id, when the server keeps one) is
/// taken out of the payload as it is received, so that tests compare what PROTOCOLS.md
/// says; it must be a number, and [`Client::line_ids`] has them all, in order.
pub struct Client {
    pub(crate) socket: SioClient,
    pub(crate) events: mpsc::UnboundedReceiver<(String, Value)>,
    pub(crate) line_ids: Vec<i64>,
}

impl Client {
    /// Connects with the default transports and waits for the namespace to be joined.
    pub async fn connect(server: &TestServer) -> Self {
        Self::connect_with(server, TransportType::Any).await
    }

    /// Connects with `transport` and waits for the namespace to be joined.
    pub async fn connect_with(server: &TestServer, transport: TransportType) -> Self {
        Self::connect_to(server.url(), transport).await
    }

    /// Connects to the server at `url` with `transport`.
    pub async fn connect_to(url: String, transport: TransportType) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        // rust_socketio reports `connect`, `error` and `close` only to `on`, and every
        // other event only to `on_any`.
        let on = |name: &'static str| {
            let tx = tx.clone();
            move |payload: Payload, _| {
                record(&tx, name.to_owned(), payload);
                async {}.boxed()
            }
        };
        let any = {
            let tx = tx.clone();
            move |event: Event, payload: Payload, _| {
                record(&tx, event.to_string(), payload);
                async {}.boxed()
            }
        };
        let socket = ClientBuilder::new(url)
            .transport_type(transport)
            .reconnect(false)
            .on("open", on("connect"))
            .on("error", on("error"))
            .on("close", on("close"))
            .on_any(any)
            .connect()
            .await
            .expect("connect");
        let mut client = Self {
            socket,
            events,
            line_ids: Vec::new(),
        };
        client.expect_event("connect").await;
        client
    }

    /// Connects and names itself `name`, consuming its own join announcement.
    pub async fn named(server: &TestServer, name: &str) -> Self {
        Self::named_at(server.url(), name).await
    }

    /// Connects to the server at `url` and names itself `name`, consuming its own join
    /// announcement.
    pub async fn named_at(url: String, name: &str) -> Self {
        let mut client = Self::connect_to(url, TransportType::Any).await;
        client.emit("newUser", json!(name)).await;
        client.expect_update(joined(name)).await;
        client
    }

    /// Connects and names itself `name` while others chat: skips the updates that
    /// come before its own join announcement.
    pub async fn named_amid_chat(server: &TestServer, name: &str) -> Self {
        let mut client = Self::connect(server).await;
        client.name_amid_chat(name).await;
        client
    }

    /// Names itself `name` while others chat: skips the updates that come before its
    /// own join announcement.
    pub async fn name_amid_chat(&mut self, name: &str) {
        self.emit("newUser", json!(name)).await;
        loop {
            let update = self.expect_event("update").await;
            if update == joined(name) {
                return;
            }
        }
    }

    /// A handle that emits for this client (from another task).
    pub fn sender(&self) -> SioClient {
        self.socket.clone()
    }

    /// Emits `event` with one argument.
    pub async fn emit(&self, event: &str, data: Value) {
        self.socket.emit(event, data).await.expect("emit");
    }

    /// Emits `event` with one argument; the transport's error, if any, as text.
    pub async fn try_emit(&self, event: &str, data: Value) -> Result<(), String> {
        self.socket
            .emit(event, data)
            .await
            .map_err(|e| format!("{e:?}"))
    }

    /// Sends a chat line as the original page does.
    pub async fn say(&self, text: &str) {
        self.emit("message", json!({"type": "message", "message": text}))
            .await;
    }

    /// Sends a chat line as our page does, asking for an acknowledgement; returns it.
    pub async fn say_with_ack(&self, text: &str) -> Value {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        let callback = move |payload: Payload, _| {
            if let Some(tx) = tx.lock().expect("ack sender").take() {
                // rust_socketio hands an acknowledgement's arguments over as one array.
                let value = match payload {
                    Payload::Text(mut values) if values.len() == 1 => match values.remove(0) {
                        Value::Array(mut args) if args.len() == 1 => args.remove(0),
                        other => other,
                    },
                    other => json!(format!("{other:?}")),
                };
                let _ = tx.send(value);
            }
            async {}.boxed()
        };
        let line = json!({"type": "message", "message": text});
        self.socket
            .emit_with_ack("message", line, WAIT, callback)
            .await
            .expect("emit");
        tokio::time::timeout(WAIT, rx)
            .await
            .expect("an acknowledgement in time")
            .expect("acknowledged")
    }

    /// The next event, whatever it is (a line's `id` taken out, see [`Client`]).
    pub async fn next(&mut self) -> (String, Value) {
        let (name, mut value) = tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("client open");
        if name == "update"
            && value["type"] == "message"
            && let Some(id) = value.as_object_mut().and_then(|update| update.remove("id"))
        {
            let id = id.as_i64().unwrap_or_else(|| panic!("a line id, got {id}"));
            self.line_ids.push(id);
        }
        (name, value)
    }

    /// The ids of the chat lines received so far, in order.
    pub fn line_ids(&self) -> &[i64] {
        &self.line_ids
    }

    /// The next event must be `event`; returns its payload.
    pub async fn expect_event(&mut self, event: &str) -> Value {
        let (name, value) = self.next().await;
        assert_eq!(name, event, "expected {event}, got {name} {value}");
        value
    }

    /// The next event must be an `update` equal to `expected`.
    pub async fn expect_update(&mut self, expected: Value) {
        let value = self.expect_event("update").await;
        assert_eq!(value, expected);
    }

    /// The next event must be an `error` with this message.
    pub async fn expect_error(&mut self, message: &str) {
        let value = self.expect_event("error").await;
        assert_eq!(value, json!({ "message": message }));
    }

    /// Skips presence updates (joins and leaves of others); the next other event must
    /// be an `update` equal to `expected`.
    pub async fn expect_update_eventually(&mut self, expected: Value) {
        let update = self.expect_message_eventually().await;
        assert_eq!(update, expected);
    }

    /// Skips presence updates; the next other event must be a `message` update.
    pub async fn expect_message_eventually(&mut self) -> Value {
        loop {
            let update = self.expect_event("update").await;
            if update["type"] == "message" {
                return update;
            }
            assert!(
                update["type"] == "connect" || update["type"] == "disconnect",
                "{update}"
            );
        }
    }

    /// Disconnects from the server.
    pub async fn disconnect(self) {
        self.socket.disconnect().await.expect("disconnect");
    }
}

fn record(tx: &mpsc::UnboundedSender<(String, Value)>, name: String, payload: Payload) {
    let value = match payload {
        Payload::Text(mut values) if values.len() == 1 => values.remove(0),
        Payload::Text(values) => Value::Array(values),
        other => json!(format!("{other:?}")),
    };
    // Fails only once the test has dropped the client.
    let _ = tx.send((name, value));
}

/// The `update` announcing that `name` joined.
pub fn joined(name: &str) -> Value {
    json!({"type": "connect", "name": "SERVER", "message": format!("{name}님이 접속하였습니다.")})
}

/// The `update` announcing that `name` left.
pub fn left(name: &str) -> Value {
    json!({"type": "disconnect", "name": "SERVER", "message": format!("{name}님이 나가셨습니다.")})
}

/// The `update` relaying `text` from `name`.
pub fn line(name: &str, text: &str) -> Value {
    json!({"type": "message", "name": name, "message": text})
}

/// A Socket.IO client of the test's own making, frame by frame: Engine.IO v4 over a
/// WebSocket on `stream` (connected to the HTTP listener `http`), returned the instant
/// the namespace's connect packet (`40`) arrives. Pings before it are answered.
pub async fn raw_socketio(
    http: SocketAddr,
    stream: tokio::net::TcpStream,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("ws://{http}/socket.io/?EIO=4&transport=websocket");
    let (mut socket, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("socket.io handshake");
    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        match frame.to_text().expect("text") {
            "2" => socket.send(Message::text("3")).await.expect("pong"),
            open if open.starts_with('0') => {
                socket.send(Message::text("40")).await.expect("connect")
            }
            connected if connected.starts_with("40") => return socket,
            other => panic!("before the namespace is joined: {other}"),
        }
    }
}
