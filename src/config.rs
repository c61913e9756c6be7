//! Command-line and environment configuration (clap). Every flag has an environment
//! variable `CHATTERBOX_<FLAG>`; every limit is named with its unit.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::lobby::{DEFAULT_MAX_MESSAGE_CHARS, DEFAULT_MAX_NAME_CHARS, LobbySettings};

/// Default HTTP port: the original Socket.IO lobby server's.
pub const DEFAULT_PORT: u16 = 8000;

/// Default Engine.IO heartbeat interval, as the Node server's `pingInterval`.
pub const DEFAULT_PING_INTERVAL_MS: u64 = 25_000;

/// Default wait for a heartbeat answer, as the Node server's `pingTimeout`.
pub const DEFAULT_PING_TIMEOUT_MS: u64 = 20_000;

/// Default largest Engine.IO payload, as the Node server's `maxHttpBufferSize` (1 MB).
/// Applies to long-polling requests and to WebSocket messages and frames alike.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 1_000_000;

/// Default depth of each member's outgoing queue: about a minute of a busy lobby. A
/// member this far behind does not keep up and is cut off.
pub const DEFAULT_OUTBOX_MESSAGES: usize = 1_024;

/// chatterbox: one chat server for the Socket.IO lobby and its existing clients.
#[derive(Debug, Clone, Parser)]
#[command(name = "chatterbox", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CHATTERBOX_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// HTTP port: the pages, the Socket.IO endpoint and the APIs (0: any free port).
    #[arg(long, env = "CHATTERBOX_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Serve the pages (`/`, `/css/…`, `/js/…`) from this directory instead of the
    /// embedded ones, e.g. the page of the original Node server.
    #[arg(long, env = "CHATTERBOX_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    /// Longest name, in characters; longer names are cut.
    #[arg(long, env = "CHATTERBOX_MAX_NAME_CHARS", default_value_t = DEFAULT_MAX_NAME_CHARS)]
    pub max_name_chars: usize,

    /// Longest chat line, in characters; longer lines are refused with an error.
    #[arg(long, env = "CHATTERBOX_MAX_MESSAGE_CHARS", default_value_t = DEFAULT_MAX_MESSAGE_CHARS)]
    pub max_message_chars: usize,

    /// Largest Socket.IO payload, in bytes (polling request, WebSocket message or frame);
    /// a larger one closes that client's connection.
    #[arg(long, env = "CHATTERBOX_MAX_PAYLOAD_BYTES", default_value_t = DEFAULT_MAX_PAYLOAD_BYTES)]
    pub max_payload_bytes: u64,

    /// Depth of each member's outgoing queue, in messages; a member whose queue is full
    /// is cut off as a slow consumer.
    #[arg(long, env = "CHATTERBOX_OUTBOX_MESSAGES", default_value_t = DEFAULT_OUTBOX_MESSAGES)]
    pub outbox_messages: usize,

    /// Engine.IO heartbeat interval, in milliseconds.
    #[arg(long, env = "CHATTERBOX_PING_INTERVAL_MS", default_value_t = DEFAULT_PING_INTERVAL_MS)]
    pub ping_interval_ms: u64,

    /// How long to wait for a heartbeat answer before closing, in milliseconds.
    #[arg(long, env = "CHATTERBOX_PING_TIMEOUT_MS", default_value_t = DEFAULT_PING_TIMEOUT_MS)]
    pub ping_timeout_ms: u64,
}

impl Config {
    /// The lobby's limits.
    pub fn lobby_settings(&self) -> LobbySettings {
        LobbySettings {
            max_name_chars: self.max_name_chars,
            max_message_chars: self.max_message_chars,
        }
    }

    /// Engine.IO heartbeat interval.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    /// Engine.IO heartbeat timeout.
    pub fn ping_timeout(&self) -> Duration {
        Duration::from_millis(self.ping_timeout_ms)
    }
}

impl Default for Config {
    /// The configuration with no flags and no environment: what `cargo run` uses.
    fn default() -> Self {
        Config::parse_from(["chatterbox"])
    }
}
