//! The server side of the official Socket.IO Admin UI (npm `@socket.io/admin-ui`
//! 0.5, whose `dist/index.js` defines the protocol), on its own namespace (`/admin` by
//! default) of the Socket.IO endpoint; off unless `--admin-*` asks for it. The UI
//! itself is embedded and served at `/admin/` (`crate::http::assets::ADMIN_UI`).
//!
//! | direction | event | payload |
//! |---|---|---|
//! | client → server | handshake `auth` | `{username, password}` or `{sessionId}` ([`auth`]); refused: `connect_error` `invalid credentials` |
//! | server → admin | `session` | a new session id, after a login with the password |
//! | server → admin | `config` | `{supportedFeatures}`: `["DISCONNECT", "AGGREGATED_EVENTS", "ALL_EVENTS"]`, without `DISCONNECT` read-only |
//! | server → admin | `all_sockets` | every member as a socket of `/` ([`sockets`]) |
//! | server → admins | `server_stats` | every 2 s: `{serverId, hostname, pid, uptime, clientsCount, pollingClientsCount, aggregatedEvents, namespaces}` ([`stats`]) |
//! | server → admins | `socket_connected` | `(socket, time)` |
//! | server → admins | `socket_updated` | `{id, nsp, data}` (a name given) or `{id, nsp, transport}` (an upgrade) |
//! | server → admins | `socket_disconnected` | `(nsp, id, reason, time)` |
//! | server → admins | `room_joined`, `room_left` | `(nsp, room, id, time)`: the two-person rooms |
//! | server → admins | `event_received`, `event_sent` | `(nsp, id, [event, ...args], time)`: with `--admin-mode development` only ([`events`]) |
//! | client → server | `_disconnect` | `(nsp, close, filter)`: the member whose socket id is `filter`, or every member of `nsp` without one (`null`), thrown out whatever its protocol and node |
//!
//! `JOIN`, `LEAVE` and `EMIT` are not offered: the lobby has no rooms an operator could
//! put a member in, and the two-person rooms are the members' own choice.
//! `AGGREGATED_EVENTS`: `server_stats` carries the members' traffic ([`stats`]).
//! `ALL_EVENTS` is offered in both modes, unlike the Node `instrument()`, which offers
//! it in development mode only: the UI reads it for nothing but showing its sockets,
//! rooms, clients and events pages, whose events are sent in both modes here; the
//! development mode adds `event_received`/`event_sent`.
//!
//! The changes are found by comparing the members every time presence changes (a name
//! given or gone) and every 2 s (a connection not yet named, a room, an upgrade), and
//! only while an admin is connected: with none, the watcher wakes (every 2 s and at
//! each join and leave), finds no admin and sleeps again. On a cluster, the other nodes' members and stats come from their reports
//! in Redis, and sessions are the cluster's ([`cluster`]).

mod auth;
mod cluster;
mod events;
mod settings;
mod sockets;
mod stats;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::lobby::Lobby;
pub use settings::SettingsError;
pub(crate) use settings::{AdminMode, AdminSettings, DEFAULT_NAMESPACE};
use sockets::Sockets;

/// How often `server_stats` is sent, and the members compared, as the Node `instrument()`.
pub(crate) const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// How often a login looks for the other nodes' answers.
const ASK_POLL: Duration = Duration::from_millis(50);

/// The admin namespace's shared state.
#[derive(Clone)]
struct Admin {
    lobby: Lobby,
    io: SocketIo,
    gate: auth::Gate,
    settings: Arc<AdminSettings>,
    /// Admins connected now.
    admins: Arc<AtomicUsize>,
    /// Wakes the watcher: an admin came, or a member was thrown out.
    wake: Arc<Notify>,
    stats: Arc<stats::Stats>,
    /// The cluster's Redis (`--redis-url`).
    cluster: Option<cluster::Cluster>,
    /// The other nodes' latest reports, by node id.
    others: Arc<Mutex<Vec<(String, cluster::Report)>>>,
    /// The latest request for every node's report this node heard of.
    asked: Arc<AtomicU64>,
    /// Wakes the watcher to answer such a request.
    report_now: Arc<Notify>,
}

/// Who logged in, on an admin socket: the operator its actions are logged with.
#[derive(Clone)]
struct Operator {
    user: Arc<str>,
    from: Option<IpAddr>,
}

/// `_disconnect`'s arguments: namespace, whether to close the connection (a member's
/// is always closed), and the socket id (`null`: every member).
type DisconnectArgs = (String, Value, Option<String>);

/// A new session to tell the admin once it is connected.
#[derive(Clone)]
struct NewSession(String);

/// Puts the admin namespace on `io` and starts what watches the lobby for it, until
/// `stop`. A cluster node connects to the cluster's Redis first (without it, its admin
/// UI shows this node alone).
pub(crate) async fn install(
    io: &SocketIo,
    lobby: &Lobby,
    settings: AdminSettings,
    stop: CancellationToken,
) {
    let cluster = match settings.cluster.clone() {
        Some(place) => match cluster::Cluster::connect(place).await {
            Ok(cluster) => Some(cluster),
            Err(e) => {
                tracing::error!(
                    "the admin UI cannot reach the cluster's Redis, it shows this node alone: {e}"
                );
                None
            }
        },
        None => None,
    };
    let server_id = cluster.as_ref().map(|cluster| cluster.node_id.clone());
    let admin = Admin {
        lobby: lobby.clone(),
        io: io.clone(),
        gate: auth::Gate::new(settings.auth.clone(), cluster.clone()),
        settings: Arc::new(settings),
        admins: Arc::default(),
        wake: Arc::default(),
        stats: Arc::new(stats::Stats::new(server_id)),
        cluster,
        others: Arc::default(),
        asked: Arc::default(),
        report_now: Arc::default(),
    };
    tracing::info!(
        namespace = %admin.settings.namespace,
        user = admin.gate.user(),
        readonly = admin.settings.readonly,
        "admin UI on at /admin/"
    );
    let (on_connect, check) = (admin.clone(), admin.clone());
    let connect = move |socket: SocketRef| {
        let admin = on_connect.clone();
        async move { admin.connected(socket).await }
    };
    let login = move |socket: SocketRef, TryData(credentials): TryData<Value>| {
        let admin = check.clone();
        async move { admin.log_in(socket, credentials).await }
    };
    io.ns(admin.settings.namespace.clone(), connect.with(login));
    if admin.development()
        && let Some(tapped) = lobby.tap(events::TAP_QUEUE)
    {
        tokio::spawn(admin.clone().relay_tapped(tapped, stop.clone()));
    }
    if let Some(cluster) = admin.cluster.clone() {
        let (listener, stop) = (admin.clone(), stop.clone());
        tokio::spawn(async move {
            let heard = |asked| {
                listener.asked.fetch_max(asked, Ordering::SeqCst);
                listener.report_now.notify_one();
            };
            cluster.listen(heard, stop).await;
        });
    }
    tokio::spawn(admin.watch(stop));
}

impl Admin {
    /// The namespace's connect middleware: the login.
    async fn log_in(
        &self,
        socket: SocketRef,
        credentials: Result<Value, impl std::fmt::Display>,
    ) -> Result<(), auth::LoginRefused> {
        let from = socket
            .req_parts()
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|axum::extract::ConnectInfo(peer)| peer.ip());
        let credentials = credentials
            .ok()
            .and_then(|value| serde_json::from_value(value).ok())
            .unwrap_or_default();
        match self.gate.log_in(credentials, from).await {
            Ok(logged_in) => {
                if let auth::LoggedIn::NewSession(id) = logged_in {
                    socket.extensions.insert(NewSession(id));
                }
                let user = Arc::from(self.gate.user());
                socket.extensions.insert(Operator { user, from });
                Ok(())
            }
            Err(refused) => {
                let from = from.map(|ip| ip.to_string());
                tracing::warn!(
                    from = from.as_deref().unwrap_or("unknown"),
                    "admin login refused: {refused}"
                );
                metrics::counter!(stats::LOGINS_REFUSED).increment(1);
                Err(refused)
            }
        }
    }

    /// A logged-in admin: its session, the config, every socket; then its operations.
    async fn connected(&self, socket: SocketRef) {
        let operator = socket.extensions.get::<Operator>();
        let user = operator
            .as_ref()
            .map_or("anyone", |operator| &*operator.user);
        tracing::info!(admin = %socket.id, user, "admin connected");
        if let Some(NewSession(id)) = socket.extensions.get::<NewSession>()
            && !id.is_empty()
        {
            self.emit_to(&socket, "session", &id);
        }
        self.emit_to(
            &socket,
            "config",
            &json!({ "supportedFeatures": self.features() }),
        );
        let admin = self.clone();
        socket.on(
            "_disconnect",
            move |socket: SocketRef, TryData(args): TryData<DisconnectArgs>| {
                let admin = admin.clone();
                async move { admin.disconnect(&socket, args).await }
            },
        );
        // Counted before its disconnect handler can count it out.
        self.admins.fetch_add(1, Ordering::SeqCst);
        self.tap_while_watched();
        let admin = self.clone();
        socket.on_disconnect(move |socket: SocketRef| {
            admin.admins.fetch_sub(1, Ordering::SeqCst);
            admin.tap_while_watched();
            tracing::info!(admin = %socket.id, "admin disconnected");
            async {}
        });
        self.wake.notify_one();

        // On a cluster, every node's members from the start: their reports asked for now.
        let others = match &self.cluster {
            Some(cluster) => self.ask_reports(cluster).await,
            None => Vec::new(),
        };
        let mine = Sockets::now(&self.lobby, &self.io);
        let stats = self.stats.peek(&self.io, &self.settings.namespace, &mine);
        let mut all = mine;
        for (node, report) in &others {
            all.add_remote(node, &report.sockets);
        }
        self.emit_to(&socket, "all_sockets", &all.to_json());
        self.emit_to(&socket, "server_stats", &stats);
        for (_, report) in &others {
            self.emit_to(&socket, "server_stats", &report.stats);
        }
    }

    /// Asks every node of the cluster for its report and waits for their answers
    /// ([`cluster::ASK_WAIT`] at most); returns the other nodes' reports, which the
    /// watcher then holds too.
    async fn ask_reports(&self, cluster: &cluster::Cluster) -> Vec<(String, cluster::Report)> {
        let (asked, heard) = match cluster.ask_reports().await {
            Ok(asked) => asked,
            Err(e) => {
                tracing::warn!("cannot ask the other nodes for their members: {e}");
                return crate::locks::lock(&self.others).clone();
            }
        };
        let deadline = tokio::time::Instant::now() + cluster::ASK_WAIT;
        loop {
            let others = cluster.others().await;
            let answered = others
                .iter()
                .filter(|(_, report)| report.answered >= asked)
                .count();
            // This node heard it too.
            if answered + 1 >= heard || tokio::time::Instant::now() >= deadline {
                if answered + 1 < heard {
                    tracing::info!(
                        answered,
                        nodes = heard,
                        "not every node answered an admin's login in time"
                    );
                }
                *crate::locks::lock(&self.others) = others.clone();
                return others;
            }
            tokio::time::sleep(ASK_POLL).await;
        }
    }

    /// Answers a request for this node's report (an admin's login on another node).
    async fn answer(&self) {
        let Some(cluster) = &self.cluster else { return };
        let (_, report) = self.report(false);
        cluster.report(&report).await;
    }

    /// This node's `server_stats` (counted anew from here if `anew`) and its report.
    fn report(&self, anew: bool) -> (Value, cluster::Report) {
        let mine = Sockets::now(&self.lobby, &self.io);
        let stats = match anew {
            true => self.stats.now(&self.io, &self.settings.namespace, &mine),
            false => self.stats.peek(&self.io, &self.settings.namespace, &mine),
        };
        let report = cluster::Report {
            stats: stats.clone(),
            sockets: mine.0.values().map(sockets::Socket::to_json).collect(),
            answered: self.asked.load(Ordering::SeqCst),
        };
        (stats, report)
    }

    /// What the UI is told it may do and will be sent (`supportedFeatures`).
    ///
    /// `ALL_EVENTS` in both modes: the UI reads it only to show its sockets, rooms,
    /// clients and events pages (with `AGGREGATED_EVENTS` alone it shows the dashboard
    /// and servers only), and every socket event but the development mode's is sent in
    /// both.
    fn features(&self) -> Vec<&'static str> {
        let mut features = Vec::new();
        if !self.settings.readonly {
            features.push("DISCONNECT");
        }
        features.extend(["AGGREGATED_EVENTS", "ALL_EVENTS"]);
        features
    }

    fn development(&self) -> bool {
        self.settings.mode == AdminMode::Development
    }

    /// In development mode, the lobby's tap is on while an admin is connected.
    fn tap_while_watched(&self) {
        if self.development() {
            self.lobby.tap_on(self.admins.load(Ordering::SeqCst) > 0);
        }
    }

    fn emit_to(&self, socket: &SocketRef, event: &str, data: &impl serde::Serialize) {
        if let Err(e) = socket.emit(event, data) {
            tracing::debug!(admin = %socket.id, "cannot send {event}: {e}");
        }
    }

    /// `_disconnect(nsp, close, filter)`: throws out the member whose socket id is
    /// `filter` (every member of `/` without one), whatever its protocol.
    async fn disconnect<E: std::fmt::Display>(
        &self,
        admin: &SocketRef,
        args: Result<DisconnectArgs, E>,
    ) {
        let operator = admin.extensions.get::<Operator>();
        let user = operator
            .as_ref()
            .map_or("anyone", |operator| &*operator.user);
        let from = operator
            .as_ref()
            .and_then(|operator| operator.from)
            .map(|ip| ip.to_string());
        let from = from.as_deref().unwrap_or("unknown");
        if self.settings.readonly {
            tracing::warn!(admin = %admin.id, user, from, "admin disconnect refused: read-only");
            metrics::counter!(stats::ACTIONS, "action" => "disconnect", "result" => "readonly")
                .increment(1);
            return;
        }
        // Malformed, it does nothing: never everyone for want of a filter.
        let (nsp, _close, filter) = match args {
            Ok(args) => args,
            Err(e) => {
                tracing::warn!(admin = %admin.id, user, from, "admin disconnect malformed: {e}");
                return;
            }
        };
        let (nsp, filter) = (nsp.as_str(), filter.as_deref());
        if nsp != "/" {
            tracing::info!(admin = %admin.id, user, nsp, "admin disconnect of another namespace: nothing done");
            return;
        }
        let mut sockets = Sockets::now(&self.lobby, &self.io);
        let others = crate::locks::lock(&self.others).clone();
        for (node, report) in &others {
            sockets.add_remote(node, &report.sockets);
        }
        let targets: Vec<_> = sockets
            .0
            .values()
            .filter(|socket| filter.is_none_or(|filter| socket.id == filter))
            .collect();
        if targets.is_empty() {
            tracing::info!(admin = %admin.id, user, filter, "admin disconnect: no such member");
        }
        for target in targets {
            if let Some(node) = &target.node {
                self.order(node, target, user, from).await;
                continue;
            }
            self.throw_out(target, user, from, None);
        }
        self.wake.notify_one();
    }

    /// Throws `target`, a member of this node, out for operator `user` at `from` (on
    /// `node`, when the order came from another node's admin): logged and counted once,
    /// whoever asked and wherever.
    fn throw_out(&self, target: &sockets::Socket, user: &str, from: &str, node: Option<&str>) {
        if !self.lobby.throw_out(target.member) {
            return; // gone meanwhile
        }
        tracing::warn!(
            member = target.member,
            socket = %target.id,
            protocol = target.protocol.as_str(),
            name = target.name.as_deref(),
            user,
            from,
            node,
            "member thrown out by an operator"
        );
        metrics::counter!(stats::ACTIONS, "action" => "disconnect", "result" => "done")
            .increment(1);
    }

    /// Asks `node` to throw `target` out (at its next report).
    async fn order(&self, node: &str, target: &sockets::Socket, user: &str, from: &str) {
        let Some(cluster) = &self.cluster else { return };
        let order = cluster::Order {
            socket: target.id.clone(),
            user: user.to_owned(),
            from: from.to_owned(),
            by: cluster.node_id.clone(),
        };
        match cluster.order(node, &order).await {
            Ok(()) => {
                tracing::info!(socket = %target.id, %node, user, from, "node asked to throw a member out")
            }
            Err(e) => {
                tracing::warn!(socket = %target.id, %node, "cannot ask node to throw a member out: {e}")
            }
        }
    }

    /// Carries out the orders other nodes' operators gave this node.
    fn carry_out(&self, orders: Vec<cluster::Order>) {
        if orders.is_empty() {
            return;
        }
        let mine = Sockets::now(&self.lobby, &self.io);
        for order in orders {
            let Some(target) = mine.0.get(&order.socket) else {
                tracing::info!(socket = %order.socket, by = %order.by, "ordered to throw out a member gone already");
                continue;
            };
            self.throw_out(target, &order.user, &order.from, Some(&order.by));
        }
    }

    /// On a cluster, every 2 s: whether an admin is watching anywhere; if so, this
    /// node's orders, its report, and (with an admin here) the others' reports.
    async fn cluster_tick(&self, here: bool) -> Option<Value> {
        let cluster = self.cluster.as_ref()?;
        if !cluster.watching(here).await {
            crate::locks::lock(&self.others).clear();
            return None;
        }
        self.carry_out(cluster.orders().await);
        let (stats, report) = self.report(true);
        cluster.report(&report).await;
        let others = if here {
            cluster.others().await
        } else {
            Vec::new()
        };
        *crate::locks::lock(&self.others) = others;
        Some(stats)
    }

    /// Tells the admins what changed, and sends `server_stats` every 2 s, while any
    /// is connected.
    async fn watch(self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(STATS_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut presence = self.lobby.watch_presence();
        let mut known: Option<Sockets> = None;
        loop {
            let tick = tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => true,
                changed = presence.changed() => {
                    if changed.is_err() { return }
                    false
                }
                () = self.wake.notified() => false,
                () = self.report_now.notified() => {
                    self.answer().await;
                    continue;
                }
            };
            let here = self.admins.load(Ordering::SeqCst) > 0;
            self.tap_while_watched();
            let reported = if tick {
                self.cluster_tick(here).await
            } else {
                None
            };
            if !here {
                // The first stats an admin gets count from at most 2 s before.
                if tick && reported.is_none() {
                    self.stats.skip();
                }
                known = None;
                continue;
            }
            let mut now = Sockets::now(&self.lobby, &self.io);
            let others = crate::locks::lock(&self.others).clone();
            for (node, report) in &others {
                now.add_remote(node, &report.sockets);
            }
            if let Some(was) = &known {
                for (event, args) in was.changes(&now) {
                    self.stats.count_change(event);
                    self.broadcast(event, args).await;
                }
            }
            if tick {
                let stats = match reported {
                    Some(stats) => stats,
                    None => {
                        let mine = Sockets::now(&self.lobby, &self.io);
                        self.stats.now(&self.io, &self.settings.namespace, &mine)
                    }
                };
                self.broadcast("server_stats", vec![stats]).await;
                for (_, report) in others {
                    self.broadcast("server_stats", vec![report.stats]).await;
                }
            }
            known = Some(now);
        }
    }

    /// Sends `event` with `args` to every admin.
    pub(super) async fn broadcast(&self, event: &str, args: Vec<Value>) {
        let Some(admins) = self.io.of(&self.settings.namespace) else {
            return;
        };
        let sent = match args.as_slice() {
            [one] => admins.emit(event, one).await,
            [a, b] => admins.emit(event, &(a, b)).await,
            [a, b, c, d] => admins.emit(event, &(a, b, c, d)).await,
            _ => admins.emit(event, &args).await,
        };
        if let Err(e) = sent {
            tracing::debug!("cannot send {event} to the admins: {e}");
        }
    }
}
