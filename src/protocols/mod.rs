//! One module per wire protocol, each holding that protocol's whole behaviour: its wire
//! format, its errors, and the translation to and from lobby events.
//!
//! - [`socketio`]: the Socket.IO lobby chat and the two-person rooms (PROTOCOLS.md 1, 2),
//!   served on the HTTP listener.
//! - [`websocket`]: the plain WebSocket JSON chat (section 3).
//! - [`tcp_json`]: the raw TCP chat with JSON commands (section 4a).
//! - [`tcp_text`]: the raw TCP chat with plain text (section 4b).

pub(crate) mod socketio;
pub mod tcp_json;
pub mod tcp_text;
pub mod websocket;
