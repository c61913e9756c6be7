//! The server under test: in the test process ([`TestServer`]) or as the binary in a
//! process of its own ([`BinaryServer`]), every listener on port 0; waits on `/healthz`.

use std::net::SocketAddr;
use std::time::Duration;

use chatterbox::config::ListenPort;
use chatterbox::{Config, Listeners, RunError};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::WAIT;
use super::crowd;
use super::http::http_get;

/// A chatterbox server running in this test process, every listener on port 0.
pub struct TestServer {
    pub http: SocketAddr,
    pub websocket: Option<SocketAddr>,
    pub tcp_json: Option<SocketAddr>,
    pub tcp_text: Option<SocketAddr>,
    /// The history file (in a directory of the server's own, removed with it).
    pub db: std::path::PathBuf,
    pub(crate) shutdown: CancellationToken,
    pub(crate) task: Option<JoinHandle<Result<(), RunError>>>,
    pub(crate) _dir: tempfile::TempDir,
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
    /// Unlike the binary's defaults, the per-address connection limit, the message rate
    /// and the join budget are off: every test client comes from 127.0.0.1 and many tests send as fast
    /// as they can. Tests of those limits set them in `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("a directory for the history");
        let mut config = Config {
            host: [127, 0, 0, 1].into(),
            port: 0,
            max_connections_per_ip: 0,
            rate_lines_per_sec: 0,
            rate_joins_per_min: 0,
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
            // Every test client comes from 127.0.0.1: the join budget per address is
            // off unless `args` sets it (a flag's last value counts).
            .args(["--rate-joins-per-min", "0"])
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
