//! A raw TCP client for the TCP JSON and TCP text chats.

use std::net::SocketAddr;

use serde_json::json;

use super::WAIT;
use super::http::connect_from;

/// A raw TCP client reading a stream with no framing: `expect` checks the next bytes.
pub struct TcpClient {
    pub stream: tokio::net::TcpStream,
    pub(crate) received: Vec<u8>,
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
