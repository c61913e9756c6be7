//! The four wire protocols a member can be connected with, and the rules that differ
//! between them (who gets their own lines back, who is announced on connect). A leaf:
//! it imports nothing of the crate, so every module may use it.

/// The wire protocol a member is connected with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The Socket.IO lobby chat (PROTOCOLS.md section 1).
    SocketIo,
    /// The plain WebSocket JSON chat (section 3).
    WebSocket,
    /// The raw TCP chat with JSON commands (section 4a).
    TcpJson,
    /// The raw TCP chat with plain text (section 4b).
    TcpText,
}

impl Protocol {
    /// Every protocol, in the order of [`Protocol::index`].
    pub const ALL: [Protocol; 4] = [
        Protocol::SocketIo,
        Protocol::WebSocket,
        Protocol::TcpJson,
        Protocol::TcpText,
    ];

    /// Whether a member of this protocol receives its own chat lines back. Socket.IO
    /// lobby clients print their own lines locally and TCP text clients never got theirs
    /// back; WebSocket and TCP JSON clients show the server's echo.
    pub fn echoes_own_lines(self) -> bool {
        match self {
            Protocol::SocketIo | Protocol::TcpText => false,
            Protocol::WebSocket | Protocol::TcpJson => true,
        }
    }

    /// Whether a member is announced (under a guest name) as soon as it connects: the
    /// protocols whose clients never name themselves, or name themselves per line.
    pub fn announced_on_connect(self) -> bool {
        matches!(self, Protocol::WebSocket | Protocol::TcpText)
    }

    /// The protocol's name in logs and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::SocketIo => "socketio",
            Protocol::WebSocket => "websocket",
            Protocol::TcpJson => "tcp-json",
            Protocol::TcpText => "tcp-text",
        }
    }

    /// The protocol named by [`Protocol::as_str`].
    pub fn parse(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// A dense index, for per-protocol tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A protocol travels (in the cluster's entries) as its [`Protocol::as_str`] name.
impl serde::Serialize for Protocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Protocol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Protocol::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown protocol {name:?}")))
    }
}
