//! A `redis-server` of the test's own: on a unix socket in a directory of its own (never
//! a port), no snapshots, killed when dropped. A test that needs one and finds no
//! `redis-server` fails and says how to install it (nothing is skipped silently).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::WAIT;

/// A running `redis-server`.
pub struct RedisServer {
    child: Child,
    /// Its unix socket.
    pub socket: PathBuf,
    settings: Vec<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// A Redis with no persistence at all (`--save '' --appendonly no`).
    pub async fn start() -> Self {
        Self::start_with(&["--appendonly", "no"]).await
    }

    /// A Redis with `settings` (e.g. `["--appendonly", "yes", "--appendfsync",
    /// "always"]`), ready to answer.
    pub async fn start_with(settings: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a directory for redis");
        let socket = dir.path().join("redis.sock");
        let settings: Vec<String> = settings.iter().map(|s| (*s).to_owned()).collect();
        let child = spawn(&socket, dir.path(), &settings);
        let server = Self {
            child,
            socket,
            settings,
            dir,
        };
        server.wait_until_ready().await;
        server
    }

    /// Kills it with SIGKILL (`kill -9`): whatever it had not written to disk is lost.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9 redis-server");
        self.child.wait().expect("redis-server gone");
    }

    /// Sends it `signal` (`STOP`: it freezes, answering nothing; `CONT`: it goes on).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} redis-server");
    }

    /// Starts it again, on the same socket with the same settings and directory (an
    /// append-only file there is read back), and waits until it answers.
    pub async fn restart(&mut self) {
        self.child = spawn(&self.socket, self.dir.path(), &self.settings);
        self.wait_until_ready().await;
    }

    /// The URL chatterbox connects with.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// Polls until Redis answers `PING` (a condition, not a delay).
    async fn wait_until_ready(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(mut stream) = UnixStream::connect(&self.socket).await
                && stream.write_all(b"PING\r\n").await.is_ok()
            {
                let mut reply = [0; 7];
                if stream.read_exact(&mut reply).await.is_ok() && &reply == b"+PONG\r\n" {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends one command (its arguments as RESP bulk strings) and returns the raw reply
    /// (read until it ends with CRLF; enough for the simple replies the tests use).
    pub async fn command(&self, args: &[&[u8]]) -> String {
        let mut stream = UnixStream::connect(&self.socket).await.expect("connect");
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        stream.write_all(&request).await.expect("write");
        let mut reply = Vec::new();
        let reading = async {
            while !reply.ends_with(b"\r\n") {
                let mut buffer = [0; 4096];
                let n = stream.read(&mut buffer).await.expect("read");
                assert!(n > 0, "redis closed the connection");
                reply.extend_from_slice(&buffer[..n]);
            }
        };
        tokio::time::timeout(WAIT, reading)
            .await
            .expect("a reply in time");
        String::from_utf8_lossy(&reply).into_owned()
    }
}

/// Starts `redis-server` on `socket`, in `dir`.
fn spawn(socket: &std::path::Path, dir: &std::path::Path, settings: &[String]) -> Child {
    Command::new("redis-server")
        .args(["--port", "0", "--unixsocket"])
        .arg(socket)
        .args(["--unixsocketperm", "700", "--save", "", "--dir"])
        .arg(dir)
        .args(settings)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start redis-server ({e}): the cluster tests need it \
                 (apt-get install redis-server; tests/run-all.sh installs it)"
            )
        })
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
