//! `server_stats`, as the Node `instrument()` sends it every 2 s: `{serverId,
//! hostname, pid, uptime, clientsCount, pollingClientsCount, aggregatedEvents,
//! namespaces: [{name, socketsCount}]}`. `clientsCount` counts every protocol's
//! connections (the lobby's and the admins'); `aggregatedEvents` the connections
//! (`rawConnection`) and departures (`rawDisconnection`) seen since the last, and the
//! members' traffic since (`packetsIn`, `bytesIn`, `packetsOut`, `bytesOut`:
//! `crate::telemetry::Traffic`, this process's).

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use socketioxide::SocketIo;

use super::sockets::{Sockets, transport_name};
use crate::telemetry::{TRAFFIC, TrafficTotals};

/// Refused admin logins (Prometheus counter).
pub(crate) const LOGINS_REFUSED: &str = "chatterbox_admin_logins_refused_total";
/// Operators' actions, by action and result (Prometheus counter).
pub(crate) const ACTIONS: &str = "chatterbox_admin_actions_total";

/// What `server_stats` is made from.
pub(crate) struct Stats {
    started: Instant,
    server_id: String,
    hostname: String,
    /// Connections and departures since the last `server_stats`.
    events: Mutex<(u64, u64)>,
    /// The members' traffic counted up to the last `server_stats`.
    traffic: Mutex<TrafficTotals>,
}

impl Stats {
    /// `server_id`: the cluster node's id; `None`: the host name, as the Node server's.
    pub(crate) fn new(server_id: Option<String>) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        Self {
            started: Instant::now(),
            server_id: server_id.unwrap_or_else(|| hostname.clone()),
            hostname,
            events: Mutex::default(),
            traffic: Mutex::new(TRAFFIC.totals()),
        }
    }

    /// Counts a change the admins were told of.
    pub(crate) fn count_change(&self, event: &str) {
        let mut events = crate::locks::lock(&self.events);
        match event {
            "socket_connected" => events.0 += 1,
            "socket_disconnected" => events.1 += 1,
            _ => {}
        }
    }

    /// Counts the traffic anew from here (no admin saw it).
    pub(crate) fn skip(&self) {
        *crate::locks::lock(&self.traffic) = TRAFFIC.totals();
    }

    /// The `server_stats` of now, `sockets` this node's members; the connections and
    /// departures are counted anew from here.
    pub(crate) fn now(&self, io: &SocketIo, admin_namespace: &str, sockets: &Sockets) -> Value {
        self.made(io, admin_namespace, sockets, true)
    }

    /// [`Stats::now`], for one admin, counting on.
    pub(crate) fn peek(&self, io: &SocketIo, admin_namespace: &str, sockets: &Sockets) -> Value {
        self.made(io, admin_namespace, sockets, false)
    }

    fn made(&self, io: &SocketIo, admin_namespace: &str, sockets: &Sockets, anew: bool) -> Value {
        let admins = io
            .of(admin_namespace)
            .map(|admins| admins.sockets())
            .unwrap_or_default();
        let polling_admins = admins
            .iter()
            .filter(|admin| transport_name(admin.transport_type()) == "polling")
            .count();
        let (connections, departures) = {
            let mut events = crate::locks::lock(&self.events);
            if anew {
                std::mem::take(&mut *events)
            } else {
                *events
            }
        };
        let traffic = {
            let now = TRAFFIC.totals();
            let mut counted = crate::locks::lock(&self.traffic);
            let since = *counted;
            if anew {
                *counted = now;
            }
            [
                ("packetsIn", now.packets_in - since.packets_in),
                ("bytesIn", now.bytes_in - since.bytes_in),
                ("packetsOut", now.packets_out - since.packets_out),
                ("bytesOut", now.bytes_out - since.bytes_out),
            ]
        };
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs() * 1000)
            .unwrap_or(0);
        let mut aggregated = Vec::new();
        if connections > 0 {
            aggregated
                .push(json!({"timestamp": second, "type": "rawConnection", "count": connections}));
        }
        if departures > 0 {
            aggregated.push(json!({"timestamp": second, "type": "rawDisconnection", "subType": "transport close", "count": departures}));
        }
        for (kind, count) in traffic {
            if count > 0 {
                aggregated.push(json!({"timestamp": second, "type": kind, "count": count}));
            }
        }
        json!({
            "serverId": self.server_id,
            "hostname": self.hostname,
            "pid": std::process::id(),
            "uptime": self.started.elapsed().as_secs_f64(),
            "clientsCount": sockets.0.len() + admins.len(),
            "pollingClientsCount": sockets.polling() + polling_admins,
            "aggregatedEvents": aggregated,
            "namespaces": [
                {"name": "/", "socketsCount": sockets.0.len()},
                {"name": admin_namespace, "socketsCount": admins.len()},
            ],
        })
    }
}
