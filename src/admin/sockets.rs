//! Every member of every protocol as a socket of namespace `/`, in the shape the admin
//! UI reads (`SerializedSocket` of `@socket.io/admin-ui`): `id`, `clientId`,
//! `transport`, `nsp`, `data: {name}`, `handshake: {address, headers, query, issued,
//! secure, time, url, xdomain}`, `rooms`.
//!
//! A Socket.IO member is its socket (its id, `polling` or `websocket`, its
//! handshake request); a WebSocket, TCP JSON or TCP text member is a socket of its
//! own, id `<protocol>-<member id>` (`websocket-7`, `tcp-json-8`, `tcp-text-9`),
//! transport `ws`, `tcp-json` or `tcp-text`, its handshake its address and arrival.
//! A member seated in a two-person room is in that room.
//!
//! [`Sockets::changes`] compares two lists: what the UI is told between them
//! (`socket_connected`, `socket_updated`, `socket_disconnected`, `room_joined`,
//! `room_left`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::http::header::{HOST, ORIGIN};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::TransportType;

use crate::chat::millis;
use crate::lobby::roster::Listed;
use crate::lobby::{Lobby, Member};
use crate::protocol::Protocol;

/// What the admin UI is told of one socket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Socket {
    /// The id the UI knows it by (and sends back in `_disconnect`).
    pub(crate) id: String,
    /// The lobby member behind it.
    pub(crate) member: u64,
    pub(crate) protocol: Protocol,
    pub(crate) transport: String,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) room: Option<Arc<str>>,
    handshake: Value,
    /// The cluster node it is on; `None`: this one.
    pub(crate) node: Option<String>,
}

impl Socket {
    /// The socket as `all_sockets` and `socket_connected` carry it.
    pub(crate) fn to_json(&self) -> Value {
        let mut rooms = vec![self.id.clone()];
        rooms.extend(self.room.as_deref().map(str::to_owned));
        json!({
            "id": self.id,
            "clientId": self.id.chars().take(12).collect::<String>(),
            "transport": self.transport,
            "nsp": "/",
            "data": self.data(),
            "handshake": self.handshake,
            "rooms": rooms,
        })
    }

    /// A socket of another node, as its report carries it ([`Socket::to_json`]).
    pub(crate) fn from_json(socket: &Value, node: &str) -> Option<Self> {
        let rooms = socket["rooms"].as_array()?;
        Some(Self {
            id: socket["id"].as_str()?.to_owned(),
            member: 0,
            protocol: Protocol::parse(socket["data"]["protocol"].as_str()?)?,
            transport: socket["transport"].as_str()?.to_owned(),
            name: socket["data"]["name"].as_str().map(Arc::from),
            room: rooms.get(1).and_then(Value::as_str).map(Arc::from),
            handshake: socket["handshake"].clone(),
            node: Some(node.to_owned()),
        })
    }

    fn data(&self) -> Value {
        json!({ "name": self.name.as_deref(), "protocol": self.protocol.as_str() })
    }
}

/// This node's sockets, by id.
#[derive(Default)]
pub(crate) struct Sockets(pub(crate) BTreeMap<String, Socket>);

/// One change the admin UI is told of: the event and its arguments.
pub(crate) type Change = (&'static str, Vec<Value>);

impl Sockets {
    /// Every member of this node's lobby now.
    pub(crate) fn now(lobby: &Lobby, io: &SocketIo) -> Self {
        // The Socket.IO sockets of `/`, by their member's id.
        let mut socketio: HashMap<u64, _> = HashMap::new();
        if let Some(lobby_ns) = io.of("/") {
            for socket in lobby_ns.sockets() {
                if let Some(member) = socket.extensions.get::<Arc<Member>>() {
                    socketio.insert(member.id(), socket);
                }
            }
        }
        let sockets = lobby
            .roster()
            .into_iter()
            .filter_map(|listed| {
                let socket = match listed.someone.protocol {
                    Protocol::SocketIo => {
                        // Not yet (or no longer) a socket of `/`: listed once it is.
                        let socket = socketio.remove(&listed.someone.id)?;
                        socketio_member(&listed, &socket)
                    }
                    _ => raw_member(listed),
                };
                Some((socket.id.clone(), socket))
            })
            .collect();
        Self(sockets)
    }

    /// Adds another node's sockets, from its report.
    pub(crate) fn add_remote(&mut self, node: &str, sockets: &[Value]) {
        for socket in sockets
            .iter()
            .filter_map(|socket| Socket::from_json(socket, node))
        {
            self.0.insert(socket.id.clone(), socket);
        }
    }

    /// The sockets as `all_sockets` carries them.
    pub(crate) fn to_json(&self) -> Value {
        Value::Array(self.0.values().map(Socket::to_json).collect())
    }

    /// What the UI is told for the sockets to go from `self` to `now`.
    pub(crate) fn changes(&self, now: &Sockets) -> Vec<Change> {
        let time = || Value::String(crate::lobby::presence::rfc3339(std::time::SystemTime::now()));
        let mut changes = Vec::new();
        for (id, was) in &self.0 {
            match now.0.get(id) {
                None => {
                    if let Some(room) = &was.room {
                        changes.push((
                            "room_left",
                            vec![json!("/"), json!(&**room), json!(id), time()],
                        ));
                    }
                    let reason = json!("transport close");
                    changes.push((
                        "socket_disconnected",
                        vec![json!("/"), json!(id), reason, time()],
                    ));
                }
                Some(is) => {
                    if is.name != was.name {
                        let update = json!({ "id": id, "nsp": "/", "data": is.data() });
                        changes.push(("socket_updated", vec![update]));
                    }
                    if is.transport != was.transport {
                        let update = json!({ "id": id, "nsp": "/", "transport": is.transport });
                        changes.push(("socket_updated", vec![update]));
                    }
                    if is.room != was.room {
                        if let Some(room) = &was.room {
                            changes.push((
                                "room_left",
                                vec![json!("/"), json!(&**room), json!(id), time()],
                            ));
                        }
                        if let Some(room) = &is.room {
                            changes.push((
                                "room_joined",
                                vec![json!("/"), json!(&**room), json!(id), time()],
                            ));
                        }
                    }
                }
            }
        }
        for (id, is) in &now.0 {
            if !self.0.contains_key(id) {
                changes.push(("socket_connected", vec![is.to_json(), time()]));
                if let Some(room) = &is.room {
                    changes.push((
                        "room_joined",
                        vec![json!("/"), json!(&**room), json!(id), time()],
                    ));
                }
            }
        }
        changes
    }

    /// Sockets on long-polling.
    pub(crate) fn polling(&self) -> usize {
        self.0
            .values()
            .filter(|socket| socket.transport == "polling")
            .count()
    }
}

/// The transport name the admin UI shows for an Engine.IO transport.
pub(crate) fn transport_name(transport: TransportType) -> &'static str {
    match transport {
        TransportType::Polling => "polling",
        TransportType::Websocket => "websocket",
    }
}

fn socketio_member(listed: &Listed, socket: &socketioxide::extract::SocketRef) -> Socket {
    let request = socket.req_parts();
    let headers: serde_json::Map<String, Value> = request
        .headers
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), json!(value.to_str().ok()?))))
        .collect();
    let query: serde_json::Map<String, Value> = request
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key.to_owned(), json!(value))
        })
        .collect();
    // The client's address as the connection limits see it (behind `--trusted-proxies`,
    // from the proxy's `X-Forwarded-For`); never a header the client may have written.
    let address = listed.from.map(|ip| ip.to_string());
    let host = request.headers.get(HOST).and_then(|h| h.to_str().ok());
    let xdomain = request
        .headers
        .get(ORIGIN)
        .and_then(|origin| origin.to_str().ok())
        .is_some_and(|origin| host.is_none_or(|host| !origin.ends_with(&format!("//{host}"))));
    Socket {
        id: socket.id.to_string(),
        member: listed.someone.id,
        protocol: listed.someone.protocol,
        transport: transport_name(socket.transport_type()).to_owned(),
        name: listed.someone.name.clone(),
        room: listed.room.clone(),
        node: None,
        handshake: json!({
            "address": address,
            "headers": headers,
            "query": query,
            "issued": millis(listed.someone.since),
            "secure": false,
            "time": crate::lobby::presence::rfc3339(listed.someone.since),
            "url": request.uri.to_string(),
            "xdomain": xdomain,
        }),
    }
}

fn raw_member(listed: Listed) -> Socket {
    let (prefix, transport) = match listed.someone.protocol {
        Protocol::WebSocket => ("websocket", "ws"),
        Protocol::TcpJson => ("tcp-json", "tcp-json"),
        Protocol::TcpText | Protocol::SocketIo => ("tcp-text", "tcp-text"),
    };
    Socket {
        id: format!("{prefix}-{}", listed.someone.id),
        member: listed.someone.id,
        protocol: listed.someone.protocol,
        transport: transport.to_owned(),
        node: None,
        handshake: json!({
            "address": listed.from.map(|ip| ip.to_string()),
            "headers": {},
            "query": {},
            "issued": millis(listed.someone.since),
            "secure": false,
            "time": crate::lobby::presence::rfc3339(listed.someone.since),
            "url": if listed.someone.protocol == Protocol::WebSocket { "/" } else { "" },
            "xdomain": false,
        }),
        name: listed.someone.name,
        room: listed.room,
    }
}
