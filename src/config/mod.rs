//! Command-line and environment configuration (clap). Every flag has an environment
//! variable `CHATTERBOX_<FLAG>`; every limit is named with its unit.
//!
//! [`Config`] is the flags as clap parses them (with their defaults, here); `values`
//! the types of flag values of our own (a port or `off`, a log format, the admin UI's
//! mode); `settings` what each part of the server is given of them (the lobby's limits,
//! each listener's policies, the time limits, the history, the cluster, the admin UI),
//! and the combinations refused at start.

mod settings;
mod values;

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::http::DEFAULT_HEADER_TIMEOUT_MS;
use crate::lobby::backlog::{DEFAULT_OUTBOX_BEHIND, DEFAULT_OUTBOX_BYTES};
use crate::lobby::churn::{DEFAULT_RATE_JOIN_BURST, DEFAULT_RATE_JOINS_PER_MIN};
use crate::lobby::limits::{
    DEFAULT_MAX_MESSAGE_CHARS, DEFAULT_MAX_NAME_CHARS, DEFAULT_MAX_ROOM_NAME_CHARS,
    DEFAULT_OUTBOX_MESSAGES,
};
use crate::lobby::rate::{DEFAULT_RATE_BURST, DEFAULT_RATE_LINES_PER_SEC, DEFAULT_RATE_STRIKES};
use crate::log::DEFAULT_HISTORY_QUEUE_LINES;
use crate::log::sqlite::Durability;
use crate::net::admission::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP};
pub use crate::net::proxy::TrustedNet;
use crate::net::{DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_STALL_TIMEOUT_MS};
use crate::protocols::tcp_json::DEFAULT_MAX_JSON_OBJECT_BYTES;
use crate::protocols::websocket::DEFAULT_MAX_WS_MESSAGE_BYTES;
use crate::refusals::DEFAULT_LOG_FOLD_SECS;
pub use settings::ConfigError;
pub use values::{AdminMode, ListenPort, LogFormat};

/// Why the admin UI's settings (`--admin-*`) cannot be used.
pub use crate::admin::SettingsError as AdminSettingsError;

/// Default HTTP port: the original Socket.IO lobby server's.
pub const DEFAULT_PORT: u16 = 8000;

/// Default plain WebSocket port: the original WebSocket chat's.
pub const DEFAULT_WS_PORT: u16 = 8001;

/// Default TCP JSON port: the original JSON command chat's.
pub const DEFAULT_TCP_JSON_PORT: u16 = 5000;

/// Default TCP text port: the original plain text chat's.
pub const DEFAULT_TCP_TEXT_PORT: u16 = 3000;

/// Default Engine.IO heartbeat interval, as the Node server's `pingInterval`.
pub const DEFAULT_PING_INTERVAL_MS: u64 = 25_000;

/// Default wait for a heartbeat answer, as the Node server's `pingTimeout`.
pub const DEFAULT_PING_TIMEOUT_MS: u64 = 20_000;

/// Default largest Engine.IO payload, as the Node server's `maxHttpBufferSize` (1 MB).
/// Applies to long-polling requests and to WebSocket messages and frames alike.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 1_000_000;

/// Default history file, in the working directory.
pub const DEFAULT_DB: &str = "chatterbox.db";

/// chatterbox: one chat server for the Socket.IO lobby, Socket.IO rooms, plain WebSocket
/// and raw TCP chat clients, all in one lobby.
#[derive(Debug, Clone, Parser)]
#[command(name = "chatterbox", version, about)]
pub struct Config {
    /// Address every listener binds.
    #[arg(long, env = "CHATTERBOX_HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// HTTP port: the pages, the Socket.IO endpoint and the APIs (0: any free port).
    #[arg(long, env = "CHATTERBOX_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,

    /// Plain WebSocket chat port (path `/`), or `off`.
    #[arg(long, env = "CHATTERBOX_WS_PORT", default_value_t = ListenPort::On(DEFAULT_WS_PORT))]
    pub ws_port: ListenPort,

    /// TCP JSON chat port, or `off`.
    #[arg(long, env = "CHATTERBOX_TCP_JSON_PORT", default_value_t = ListenPort::On(DEFAULT_TCP_JSON_PORT))]
    pub tcp_json_port: ListenPort,

    /// TCP plain text chat port, or `off`.
    #[arg(long, env = "CHATTERBOX_TCP_TEXT_PORT", default_value_t = ListenPort::On(DEFAULT_TCP_TEXT_PORT))]
    pub tcp_text_port: ListenPort,

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

    /// Longest room name, in characters; longer ones are refused with an error.
    #[arg(long, env = "CHATTERBOX_MAX_ROOM_NAME_CHARS", default_value_t = DEFAULT_MAX_ROOM_NAME_CHARS)]
    pub max_room_name_chars: usize,

    /// Largest Socket.IO payload, in bytes (polling request, WebSocket message or frame);
    /// a larger one closes that client's connection.
    #[arg(long, env = "CHATTERBOX_MAX_PAYLOAD_BYTES", default_value_t = DEFAULT_MAX_PAYLOAD_BYTES)]
    pub max_payload_bytes: u64,

    /// Largest message on the plain WebSocket listener, in bytes; a larger one closes
    /// the connection with code 1009.
    #[arg(long, env = "CHATTERBOX_MAX_WS_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_WS_MESSAGE_BYTES)]
    pub max_ws_message_bytes: usize,

    /// Largest JSON object on the TCP JSON listener, in bytes; a larger one gets an
    /// error line and the connection is closed.
    #[arg(long, env = "CHATTERBOX_MAX_JSON_OBJECT_BYTES", default_value_t = DEFAULT_MAX_JSON_OBJECT_BYTES)]
    pub max_json_object_bytes: usize,

    /// Depth of each member's outgoing queue, in messages: a backstop (a member whose
    /// queue is full is cut off as a slow consumer); the rule is `--outbox-bytes` and
    /// `--outbox-behind-ms`.
    #[arg(long, env = "CHATTERBOX_OUTBOX_MESSAGES", default_value_t = DEFAULT_OUTBOX_MESSAGES)]
    pub outbox_messages: usize,

    /// Bytes of chat a member may have waiting in its queue (its queued events at the
    /// mean weight of what it is sent: name and text plus 64); past it, it is cut off
    /// as a slow consumer.
    #[arg(long, env = "CHATTERBOX_OUTBOX_BYTES", default_value_t = DEFAULT_OUTBOX_BYTES)]
    pub outbox_bytes: usize,

    /// How long a member may be behind, in milliseconds: since a delivery found its queue
    /// not empty and it has not yet taken out what it had been sent by then; past it,
    /// it is cut off as a slow consumer.
    #[arg(long, env = "CHATTERBOX_OUTBOX_BEHIND_MS", default_value_t = DEFAULT_OUTBOX_BEHIND.as_millis() as u64)]
    pub outbox_behind_ms: u64,

    /// Joins and departures that make a storm: once that many connections have come or
    /// gone and the count has calmed, the allocator gives its free memory back to the
    /// system (`malloc_trim`, glibc only). 0: never.
    #[arg(long, env = "CHATTERBOX_TRIM_AFTER_CONNECTIONS", default_value_t = crate::memory::DEFAULT_TRIM_AFTER_CONNECTIONS)]
    pub trim_after_connections: usize,

    /// Connections the server holds at once, every listener together; one more gets an
    /// error (`error: too many connections …` on TCP, HTTP 503 on HTTP and WebSocket)
    /// and is closed. 0: no limit.
    #[arg(long, env = "CHATTERBOX_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Connections one client IP address may hold at once, every listener together;
    /// refused as for `--max-connections`. 0: no limit.
    #[arg(long, env = "CHATTERBOX_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: usize,

    /// Chat lines (and renames, room lines, TCP text chunks) each member may send a
    /// second, sustained; more are refused with an error. 0: no limit.
    #[arg(long, env = "CHATTERBOX_RATE_LINES_PER_SEC", default_value_t = DEFAULT_RATE_LINES_PER_SEC)]
    pub rate_lines_per_sec: u32,

    /// Lines a member may send at once before `--rate-lines-per-sec` applies.
    #[arg(long, env = "CHATTERBOX_RATE_BURST", default_value_t = DEFAULT_RATE_BURST)]
    pub rate_burst: u32,

    /// Lines refused for the rate in a row that disconnect the member. 0: never.
    #[arg(long, env = "CHATTERBOX_RATE_STRIKES", default_value_t = DEFAULT_RATE_STRIKES)]
    pub rate_strikes: u32,

    /// Joins and renames each client IP address may make a minute, sustained, every
    /// protocol together (a budget that outlives the member: rejoining does not refill
    /// it). Over it a `newUser` or `CONNECT` is refused with an error, and a WebSocket
    /// or TCP text connection (announced when it connects) gets the error and is closed.
    /// 0: no limit.
    #[arg(long, env = "CHATTERBOX_RATE_JOINS_PER_MIN", default_value_t = DEFAULT_RATE_JOINS_PER_MIN)]
    pub rate_joins_per_min: u32,

    /// Joins and renames an address may make at once before `--rate-joins-per-min`
    /// applies.
    #[arg(long, env = "CHATTERBOX_RATE_JOIN_BURST", default_value_t = DEFAULT_RATE_JOIN_BURST)]
    pub rate_join_burst: u32,

    /// How long a TCP JSON client may stay connected without sending CONNECT, in
    /// milliseconds; then it gets an error line and is closed. 0: no limit.
    #[arg(long, env = "CHATTERBOX_CONNECT_TIMEOUT_MS", default_value_t = DEFAULT_CONNECT_TIMEOUT_MS)]
    pub connect_timeout_ms: u64,

    /// How long a TCP JSON object (or a UTF-8 character on TCP text) may stay
    /// incomplete, in milliseconds, from its first byte, and a Socket.IO long-polling
    /// request's body from the end of its headers; then the client gets an error (line,
    /// HTTP 400) and is closed. 0: no limit.
    #[arg(long, env = "CHATTERBOX_STALL_TIMEOUT_MS", default_value_t = DEFAULT_STALL_TIMEOUT_MS)]
    pub stall_timeout_ms: u64,

    /// How long an HTTP client may take to send a request's headers (a WebSocket
    /// upgrade's too, on either port), and an idle keep-alive connection may wait for its
    /// next request, and a Socket.IO session may stay without connecting to a namespace,
    /// in milliseconds; then the connection (the session) is closed. 0: no limit (45 s
    /// for a session, as the Node server's `connectTimeout`).
    #[arg(long, env = "CHATTERBOX_HEADER_TIMEOUT_MS", default_value_t = DEFAULT_HEADER_TIMEOUT_MS)]
    pub header_timeout_ms: u64,

    /// Web origins allowed to open Socket.IO and WebSocket connections, comma-separated
    /// (`https://chat.example,http://localhost:8000`); none: any. Requests without an
    /// `Origin` header (clients that are not browser pages) are always allowed.
    #[arg(long, env = "CHATTERBOX_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Reverse proxies (addresses or CIDRs, comma-separated: `127.0.0.1,10.0.0.0/8`)
    /// whose connections carry their client's address: `X-Forwarded-For` on HTTP, a
    /// PROXY protocol header (v1 or v2) on the WebSocket and TCP ports. The
    /// per-address limit and the logs then see that client. Only from these peers; a
    /// trusted peer's raw connection without a valid PROXY header is closed. None: off,
    /// every client is its TCP peer.
    #[arg(long, env = "CHATTERBOX_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<TrustedNet>,

    /// The chat history: a SQLite file, created if missing. Every lobby chat line is
    /// committed here before it is relayed.
    #[arg(long, env = "CHATTERBOX_DB", default_value = DEFAULT_DB)]
    pub db: PathBuf,

    /// What a line's commit waits for before the line is relayed: `full`, the disk (it
    /// survives a power cut; every group commit waits for an fsync), or `normal`, the
    /// operating system (it survives a crash of chatterbox, not of the machine).
    #[arg(long, env = "CHATTERBOX_DB_DURABILITY", value_enum, default_value_t = Durability::Full)]
    pub db_durability: Durability,

    /// Run as a node of a cluster: the lobby's log and history are in this Redis
    /// (`redis://host:port` or `redis+unix:///path/to/socket`), shared with every node
    /// on it; `--db` is then not used. None: one process, history in SQLite.
    #[arg(long, env = "CHATTERBOX_REDIS_URL")]
    pub redis_url: Option<String>,

    /// The cluster's name: the prefix of every key in Redis (two clusters can share one
    /// Redis).
    #[arg(long, env = "CHATTERBOX_CLUSTER", default_value = crate::log::redis::DEFAULT_CLUSTER)]
    pub cluster: String,

    /// This node's id in the cluster's log; none: one is generated (and logged at start).
    #[arg(long, env = "CHATTERBOX_NODE_ID")]
    pub node_id: Option<String>,

    /// A cluster node's lease, in milliseconds: renewed three times a lease; a node that
    /// has not renewed it for this long (killed, frozen, cut off from Redis) is given
    /// up by the others, which announce its members as left.
    #[arg(long, env = "CHATTERBOX_NODE_LEASE_MS", default_value_t = crate::log::redis::DEFAULT_LEASE_MS,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub node_lease_ms: u64,

    /// How long a cluster node waits for Redis to answer a command, in milliseconds:
    /// past it the command is tried again and, meanwhile, chat lines are refused
    /// ("the lobby is unavailable"). Blocking reads of the log wait as long as they
    /// block.
    #[arg(long, env = "CHATTERBOX_REDIS_TIMEOUT_MS", default_value_t = crate::log::redis::DEFAULT_RESPONSE_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub redis_timeout_ms: u64,

    /// Entries the cluster's log (`<cluster>:log` in Redis) keeps, about (Redis trims
    /// whole blocks): a node that falls further behind rebuilds its presence from Redis.
    #[arg(long, env = "CHATTERBOX_CLUSTER_LOG_ENTRIES", default_value_t = crate::log::redis::DEFAULT_LOG_ENTRIES,
          value_parser = clap::value_parser!(u64).range(1000..))]
    pub cluster_log_entries: u64,

    /// Keep no history: lines are relayed at once and never written anywhere.
    #[arg(long, env = "CHATTERBOX_NO_HISTORY")]
    pub no_history: bool,

    /// Send a Socket.IO lobby member this many of the latest lines (as `update`
    /// messages) when it first names itself, before its join is announced; 0: none, as
    /// the original server. At most 1000.
    #[arg(long, env = "CHATTERBOX_REPLAY", default_value_t = 0)]
    pub replay: usize,

    /// Chat lines (at most) waiting for their commit to the history; past it, a line is
    /// refused with an error (the disk does not keep up).
    #[arg(long, env = "CHATTERBOX_HISTORY_QUEUE_LINES", default_value_t = DEFAULT_HISTORY_QUEUE_LINES)]
    pub history_queue_lines: usize,

    /// Keep the latest this many lines in the history; older ones are deleted. 0: no
    /// limit (every line is kept).
    #[arg(long, env = "CHATTERBOX_HISTORY_KEEP_LINES", default_value_t = 0)]
    pub history_keep_lines: u64,

    /// Keep the lines of the last this many days in the history; older ones are
    /// deleted. 0: no limit (every line is kept).
    #[arg(long, env = "CHATTERBOX_HISTORY_KEEP_DAYS", default_value_t = 0)]
    pub history_keep_days: u64,

    /// Log format: one line per join and leave, refusals folded (`--log-fold-secs`), never
    /// a line per relayed line at the default level; `RUST_LOG` sets the level.
    #[arg(long, env = "CHATTERBOX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Refusals are folded in the log over this many seconds: a client's first refusal
    /// for a reason gets its line, the rest one count per interval (see
    /// docs/operations.md). 0: every refusal gets its line.
    #[arg(long, env = "CHATTERBOX_LOG_FOLD_SECS", default_value_t = DEFAULT_LOG_FOLD_SECS)]
    pub log_fold_secs: u64,

    /// The Socket.IO Admin UI's user: with `--admin-password-hash`, switches on the
    /// admin namespace and the UI at `/admin/` (off by default: then `/admin/` is 404
    /// and the namespace does not exist).
    #[arg(long, env = "CHATTERBOX_ADMIN_USER")]
    pub admin_user: Option<String>,

    /// The admin user's password as a bcrypt hash (`$2b$12$…`); a value that is not one
    /// stops the server at start. Prefer the environment variable: a flag shows in `ps`.
    #[arg(long, env = "CHATTERBOX_ADMIN_PASSWORD_HASH", hide_env_values = true)]
    pub admin_password_hash: Option<String>,

    /// Switch on the admin namespace and UI without any login: anyone who reaches the
    /// HTTP port may watch and disconnect members. Only behind a trusted network.
    #[arg(long, env = "CHATTERBOX_ADMIN_NO_AUTH", conflicts_with_all = ["admin_user", "admin_password_hash"])]
    pub admin_no_auth: bool,

    /// The admin UI may watch but not act: disconnecting is refused.
    #[arg(long, env = "CHATTERBOX_ADMIN_READONLY")]
    pub admin_readonly: bool,

    /// The Socket.IO namespace of the admin UI.
    #[arg(long, env = "CHATTERBOX_ADMIN_NAMESPACE", default_value = crate::admin::DEFAULT_NAMESPACE)]
    pub admin_namespace: String,

    /// `development`: the admin UI also shows every request members send and every lobby
    /// event they are sent (`event_received`/`event_sent`, one message to the admin
    /// namespace per request and per event while an admin is connected); `production`:
    /// not.
    #[arg(long, env = "CHATTERBOX_ADMIN_MODE", value_enum, default_value_t = AdminMode::Production)]
    pub admin_mode: AdminMode,

    /// Engine.IO heartbeat interval, in milliseconds.
    #[arg(long, env = "CHATTERBOX_PING_INTERVAL_MS", default_value_t = DEFAULT_PING_INTERVAL_MS)]
    pub ping_interval_ms: u64,

    /// How long to wait for a heartbeat answer before closing, in milliseconds.
    #[arg(long, env = "CHATTERBOX_PING_TIMEOUT_MS", default_value_t = DEFAULT_PING_TIMEOUT_MS)]
    pub ping_timeout_ms: u64,
}

impl Default for Config {
    /// The configuration with no flags and no environment: what `cargo run` uses.
    fn default() -> Self {
        Config::parse_from(["chatterbox"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_off_unless_listed() {
        assert!(
            Config::parse_from(["chatterbox"])
                .trusted_proxies
                .is_empty()
        );
        let config =
            Config::parse_from(["chatterbox", "--trusted-proxies", "127.0.0.1,10.0.0.0/8"]);
        let trusted = crate::net::proxy::TrustedProxies::new(&config.trusted_proxies);
        assert!(trusted.trusts([127, 0, 0, 1].into()));
        assert!(trusted.trusts([10, 9, 8, 7].into()));
        assert!(!trusted.trusts([127, 0, 0, 2].into()));
        let wrong = Config::try_parse_from(["chatterbox", "--trusted-proxies", "proxy.example"]);
        assert!(wrong.is_err());
    }
}
