//! Test support: a server on port 0 in the test process, and Socket.IO clients
//! (`rust_socketio`) whose every receive is bounded by a timeout.
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod crowd;

use std::net::SocketAddr;
use std::time::Duration;

use chatterbox::config::ListenPort;
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
    pub websocket: Option<SocketAddr>,
    pub tcp_json: Option<SocketAddr>,
    pub tcp_text: Option<SocketAddr>,
    /// The history file (in a directory of the server's own, removed with it).
    pub db: std::path::PathBuf,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), RunError>>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// A server with the default configuration (but for the limits [`Self::spawn_with`]
    /// switches off).
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A server with the default configuration changed by `configure`; a listener
    /// whose port `configure` sets to `off` is switched off. Its history is in a new
    /// directory of its own unless `configure` sets `db`.
    ///
    /// Unlike the binary's defaults, the per-address connection limit and the message
    /// rate are off: every test client comes from 127.0.0.1 and many tests send as fast
    /// as they can. Tests of those limits set them in `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("a directory for the history");
        let mut config = Config {
            host: [127, 0, 0, 1].into(),
            port: 0,
            max_connections_per_ip: 0,
            rate_lines_per_sec: 0,
            db: dir.path().join("chatterbox.db"),
            ..Config::default()
        };
        configure(&mut config);
        let db = config.db.clone();
        async fn bind(port: ListenPort) -> Option<TcpListener> {
            match port {
                ListenPort::Off => None,
                ListenPort::On(_) => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind")),
            }
        }
        let listeners = Listeners {
            http: TcpListener::bind("127.0.0.1:0").await.expect("bind http"),
            websocket: bind(config.ws_port).await,
            tcp_json: bind(config.tcp_json_port).await,
            tcp_text: bind(config.tcp_text_port).await,
        };
        let address = |listener: &Option<TcpListener>| {
            listener.as_ref().map(|l| l.local_addr().expect("address"))
        };
        let http = listeners.http.local_addr().expect("http address");
        let (websocket, tcp_json, tcp_text) = (
            address(&listeners.websocket),
            address(&listeners.tcp_json),
            address(&listeners.tcp_text),
        );
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(chatterbox::run(config, listeners, shutdown.clone()));
        Self {
            http,
            websocket,
            tcp_json,
            tcp_text,
            db,
            shutdown,
            task: Some(task),
            _dir: dir,
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

    /// Polls `/healthz` until it reports `members` named members (a condition, not a
    /// delay).
    pub async fn wait_for_members(&self, members: usize) {
        wait_for_members(self.http, members).await;
    }

    /// Polls `/healthz` until it reports `connections` lobby connections, named or not.
    pub async fn wait_for_connections(&self, connections: usize) {
        wait_for_health(self.http, "connections", connections).await;
    }

    /// The addresses of its listeners (all of them on).
    pub fn addresses(&self) -> crowd::Addresses {
        crowd::Addresses {
            http: self.http,
            websocket: self.websocket.expect("on"),
            tcp_json: self.tcp_json.expect("on"),
            tcp_text: self.tcp_text.expect("on"),
        }
    }

    /// `/metrics`, read once: [`Metrics::value`] of any metric in it.
    pub async fn metrics(&self) -> Metrics {
        Metrics(http_get(self.http, "/metrics").await)
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

/// The Prometheus text of `/metrics`.
pub struct Metrics(pub String);

impl Metrics {
    /// The value of `metric` (name and labels, as Prometheus prints them); `None` while
    /// it has never been recorded.
    pub fn value(&self, metric: &str) -> Option<f64> {
        self.0
            .lines()
            .find_map(|line| line.strip_prefix(metric)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `/healthz` at `http` until it reports `members` named members (a condition,
/// not a delay).
pub async fn wait_for_members(http: SocketAddr, members: usize) {
    wait_for_health(http, "members", members).await;
}

/// Polls `/healthz` at `http` until its field `field` is `count`.
pub async fn wait_for_health(http: SocketAddr, field: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let body = http_get(http, "/healthz").await;
        let health: Value = serde_json::from_str(&body).expect("JSON");
        if health[field] == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{field} stayed {} (expected {count})",
            health[field]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The chatterbox binary in a process of its own, every listener on port 0.
pub struct BinaryServer {
    pub child: std::process::Child,
    /// The HTTP listener's address.
    pub http: SocketAddr,
    /// Every line it has logged so far (stderr), in order.
    pub log: tokio::sync::watch::Receiver<Vec<String>>,
}

impl BinaryServer {
    /// Starts `target/…/chatterbox` with `args` and waits for its HTTP listener.
    pub fn spawn(args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chatterbox"))
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args([
                "--ws-port",
                "0",
                "--tcp-json-port",
                "0",
                "--tcp-text-port",
                "0",
            ])
            .args(args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start chatterbox");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let (log_tx, log) = tokio::sync::watch::channel(Vec::new());
        // Reads the log to its end, so that the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(at) = line.find("listening http=") {
                    let address = line[at + "listening http=".len()..].trim().to_owned();
                    let _ = tx.send(address);
                }
                log_tx.send_modify(|log| log.push(line));
            }
        });
        let address = rx.recv_timeout(WAIT).expect("the server listens in time");
        Self {
            child,
            http: address.parse().expect("an address"),
            log,
        }
    }

    /// Waits (at most [`WAIT`]) until `found` finds what it looks for in the log so far.
    pub async fn wait_for_log<T>(
        &mut self,
        what: &str,
        found: impl Fn(&[String]) -> Option<T>,
    ) -> T {
        let waiting = async {
            loop {
                if let Some(found) = found(&self.log.borrow_and_update()) {
                    return found;
                }
                if self.log.changed().await.is_err() {
                    panic!("the server's log ended while waiting for {what}");
                }
            }
        };
        match tokio::time::timeout(WAIT, waiting).await {
            Ok(found) => found,
            Err(_) => panic!("no {what} in the log: {:#?}", self.log.borrow()),
        }
    }

    /// The address of the listener the log calls `name` (`listening NAME=ADDRESS`).
    pub async fn listener(&mut self, name: &str) -> SocketAddr {
        let prefix = format!("listening {name}=");
        self.wait_for_log(&prefix, |log| {
            log.iter().find_map(|line| {
                let at = line.find(&prefix)?;
                line[at + prefix.len()..].trim().parse().ok()
            })
        })
        .await
    }

    /// The server's base URL.
    pub fn url(&self) -> String {
        format!("http://{}/", self.http)
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET returning the body of a 200 response (tests need no HTTP
/// client crate).
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let (head, body) = http_request(addr, path, &[]).await;
    assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
    body
}

/// A minimal HTTP/1.1 GET with extra `headers`; returns the response head (status line
/// and headers, lowercased names) and body.
pub async fn http_request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (String, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    http_exchange(stream, addr, path, headers).await
}

/// [`http_request`] from the local address `from`.
pub async fn http_request_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    path: &str,
) -> (String, String) {
    http_exchange(connect_from(from, addr).await, addr, path, &[]).await
}

async fn http_exchange(
    mut stream: tokio::net::TcpStream,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    (head.to_ascii_lowercase(), body.to_owned())
}

/// A TCP connection to `addr` from the local address `from`.
pub async fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind");
    socket.connect(addr).await.expect("connect")
}

/// A Socket.IO client that records every event it receives, in order.
///
/// The `id` of a chat line's `update` (its history id, when the server keeps one) is
/// taken out of the payload as it is received, so that tests compare what PROTOCOLS.md
/// says; it must be a number, and [`Client::line_ids`] has them all, in order.
pub struct Client {
    socket: SioClient,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    line_ids: Vec<i64>,
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

/// A raw TCP client reading a stream with no framing: `expect` checks the next bytes.
pub struct TcpClient {
    pub stream: tokio::net::TcpStream,
    received: Vec<u8>,
}

impl TcpClient {
    /// Connects to `addr`.
    pub async fn connect(addr: Option<SocketAddr>) -> Self {
        let addr = addr.expect("listener on");
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        Self {
            stream,
            received: Vec::new(),
        }
    }

    /// Connects to `addr` from the local address `from` (any of 127.0.0.0/8 on
    /// Linux: a client of another address).
    pub async fn connect_from(from: std::net::IpAddr, addr: Option<SocketAddr>) -> Self {
        Self {
            stream: connect_from(from, addr.expect("listener on")).await,
            received: Vec::new(),
        }
    }

    /// Writes `bytes`.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes.as_ref()).await.expect("write");
    }

    /// Sends a TCP JSON command.
    pub async fn command(&mut self, kind: &str, content: &str) {
        let command = json!({"type": kind, "content": content}).to_string();
        self.send(command).await;
    }

    /// The next bytes received must be `expected`.
    pub async fn expect(&mut self, expected: impl AsRef<[u8]>) {
        let expected = expected.as_ref();
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.received.len() < expected.len() {
            self.read_more(deadline, expected).await;
        }
        let got: Vec<u8> = self.received.drain(..expected.len()).collect();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    /// Reads until `expected` has come; what came before it must hold no chat line
    /// (` : `): presence notices of other connections only.
    pub async fn expect_eventually(&mut self, expected: impl AsRef<[u8]>) {
        let skipped = self.expect_somewhere(expected).await;
        assert!(!skipped.contains(" : "), "skipped a line: {skipped:?}");
    }

    /// Reads what has come (at least a byte) before `deadline`, waiting for `expected`.
    async fn read_more(&mut self, deadline: tokio::time::Instant, expected: &[u8]) {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0; 64 * 1024];
        let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "timed out waiting for {:?}, got {:?}",
                    String::from_utf8_lossy(expected),
                    String::from_utf8_lossy(&self.received)
                )
            })
            .expect("read");
        assert!(
            n > 0,
            "closed while waiting for {:?}, got {:?}",
            String::from_utf8_lossy(expected),
            String::from_utf8_lossy(&self.received)
        );
        self.received.extend_from_slice(&buf[..n]);
    }

    /// Reads until `expected` has come, whatever comes before it (other members'
    /// lines included); returns what came before it.
    pub async fn expect_somewhere(&mut self, expected: impl AsRef<[u8]>) -> String {
        let expected = expected.as_ref();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(at) = self
                .received
                .windows(expected.len())
                .position(|window| window == expected)
            {
                let skipped: Vec<u8> = self.received.drain(..at + expected.len()).collect();
                return String::from_utf8_lossy(&skipped[..at]).into_owned();
            }
            self.read_more(deadline, expected).await;
        }
    }

    /// Reads until `marker` has come; returns everything up to and including it.
    pub async fn take_until(&mut self, marker: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let found = self
                .received
                .windows(marker.len())
                .position(|window| window == marker.as_bytes());
            if let Some(at) = found {
                let taken: Vec<u8> = self.received.drain(..at + marker.len()).collect();
                return String::from_utf8_lossy(&taken).into_owned();
            }
            self.read_more(deadline, marker.as_bytes()).await;
        }
    }

    /// Reads until the server closes the connection; the last bytes it sent must be
    /// `last`, whatever came before them.
    pub async fn expect_closed_with(&mut self, last: impl AsRef<[u8]>) {
        use tokio::io::AsyncReadExt;
        let last = last.as_ref();
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, self.stream.read_to_end(&mut rest))
            .await
            .expect("closed in time")
            .expect("read");
        self.received.extend_from_slice(&rest);
        let received = String::from_utf8_lossy(&self.received);
        assert!(
            self.received.ends_with(last),
            "expected to end with {:?}, got {received:?}",
            String::from_utf8_lossy(last)
        );
    }

    /// The server must close the connection after sending exactly `last`.
    pub async fn expect_closed_after(&mut self, last: impl AsRef<[u8]>) {
        use tokio::io::AsyncReadExt;
        self.expect(last).await;
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, self.stream.read_to_end(&mut rest))
            .await
            .expect("closed in time")
            .expect("read");
        assert_eq!(
            String::from_utf8_lossy(&rest),
            "",
            "nothing after the last bytes"
        );
    }
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

/// A plain WebSocket client of the chat.
pub struct WsClient {
    socket: tokio_tungstenite::WebSocketStream<
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
