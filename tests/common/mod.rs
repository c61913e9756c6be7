//! Test support: a server on port 0 in the test process, and Socket.IO clients
//! (`rust_socketio`) whose every receive is bounded by a timeout.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::net::SocketAddr;
use std::time::Duration;

use chatterbox::{Config, Listeners, RunError};
use futures_util::FutureExt;
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for something it expects before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// A chatterbox server running in this test process, every listener on port 0.
pub struct TestServer {
    pub http: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), RunError>>>,
}

impl TestServer {
    /// A server with the default configuration.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A server with the default configuration changed by `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            host: [127, 0, 0, 1].into(),
            port: 0,
            ..Config::default()
        };
        configure(&mut config);
        let http = TcpListener::bind((config.host, 0))
            .await
            .expect("bind http");
        let addr = http.local_addr().expect("http address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(chatterbox::run(
            config,
            Listeners { http },
            shutdown.clone(),
        ));
        Self {
            http: addr,
            shutdown,
            task: Some(task),
        }
    }

    /// The server's base URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.http)
    }

    /// `GET path` on the HTTP listener, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let body = http_get(self.http, path).await;
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
    }

    /// Stops the server as Ctrl-C would and returns what `run` returned.
    pub async fn stop(mut self) -> Result<(), RunError> {
        self.shutdown.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(WAIT, task)
            .await
            .expect("server stops in time")
            .expect("server task")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A minimal HTTP/1.1 GET returning the body (tests need no HTTP client crate).
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    body.to_owned()
}

/// A Socket.IO client that records every event it receives, in order.
pub struct Client {
    socket: SioClient,
    events: mpsc::UnboundedReceiver<(String, Value)>,
}

impl Client {
    /// Connects with the default transports and waits for the namespace to be joined.
    pub async fn connect(server: &TestServer) -> Self {
        Self::connect_with(server, TransportType::Any).await
    }

    /// Connects with `transport` and waits for the namespace to be joined.
    pub async fn connect_with(server: &TestServer, transport: TransportType) -> Self {
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
        let socket = ClientBuilder::new(server.url())
            .transport_type(transport)
            .reconnect(false)
            .on("open", on("connect"))
            .on("error", on("error"))
            .on("close", on("close"))
            .on_any(any)
            .connect()
            .await
            .expect("connect");
        let mut client = Self { socket, events };
        client.expect_event("connect").await;
        client
    }

    /// Connects and names itself `name`, consuming its own join announcement.
    pub async fn named(server: &TestServer, name: &str) -> Self {
        let mut client = Self::connect(server).await;
        client.emit("newUser", json!(name)).await;
        client.expect_update(joined(name)).await;
        client
    }

    /// Emits `event` with one argument.
    pub async fn emit(&self, event: &str, data: Value) {
        self.socket.emit(event, data).await.expect("emit");
    }

    /// Sends a chat line as the original page does.
    pub async fn say(&self, text: &str) {
        self.emit("message", json!({"type": "message", "message": text}))
            .await;
    }

    /// The next event, whatever it is.
    pub async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("client open")
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
