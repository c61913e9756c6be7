//! The admin UI on a cluster (`--redis-url`): every node answers for the whole
//! cluster, through keys of the cluster's Redis under `<cluster>:admin:`:
//!
//! | key | what |
//! |---|---|
//! | `session:<id>` | an admin session, valid on every node, for a day (`EX`) |
//! | `watching` | set (for [`REPORT_TTL`]) by every node with an admin connected, renewed every 2 s |
//! | `node:<node id>` | while `watching` exists, each node's report every 2 s, for [`REPORT_TTL`]: `{stats, sockets}`, its `server_stats` and its members as sockets |
//! | `nodes` | the set of nodes that reported |
//! | `orders:<node id>` | a list of `_disconnect` orders for that node's members: `{socket, user, from, by}` |
//! | `asked` | a counter: the latest request for every node's report at once |
//! | `asked` (channel) | where each request's number is published; every node listens |
//!
//! An admin's login asks every node for its report at once (the next number of
//! `asked`, published on the channel of that name): every node answers with its report
//! (carrying the number it answers, `answered`), and the login's `all_sockets` waits
//! for as many answers as the channel had listeners, [`ASK_WAIT`] at most, so that it
//! lists every node's members at once.
//!
//! A node with an admin reads the others' reports every 2 s: its `all_sockets` and
//! socket events cover every node's members, and it relays each node's
//! `server_stats` (`serverId`: the node id). A `_disconnect` of a member of another
//! node is an order on that node's list, which the node carries out at its next
//! report (within 2 s); the member's leave goes through the cluster's log as any.
//! With no admin anywhere, a node asks Redis only whether one is watching, every 2 s,
//! and listens on the `asked` channel (a connection of its own).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::STATS_INTERVAL;

/// How long a node's report and the `watching` flag last unless renewed.
pub(crate) const REPORT_TTL: Duration = Duration::from_secs(6);

/// How long a login waits for the other nodes' answers at most.
pub(crate) const ASK_WAIT: Duration = Duration::from_secs(2);

/// Orders a node takes from its list at once, at most.
const MAX_ORDERS: usize = 100;

/// Where the cluster is, for the admin namespace.
#[derive(Debug, Clone)]
pub(crate) struct ClusterPlace {
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) node_id: String,
    pub(crate) response_timeout: Duration,
}

/// The admin namespace's connection to the cluster.
#[derive(Clone)]
pub(crate) struct Cluster {
    /// For the channel's own connection.
    client: redis::Client,
    connection: redis::aio::ConnectionManager,
    prefix: String,
    pub(crate) node_id: String,
}

/// Another node's report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) stats: Value,
    pub(crate) sockets: Vec<Value>,
    /// The latest request for reports (`asked`) the node had heard of.
    #[serde(default)]
    pub(crate) answered: u64,
}

/// An order to throw a member out, for the node it is on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Order {
    /// The member's socket id.
    pub(crate) socket: String,
    /// The operator's user and address.
    pub(crate) user: String,
    pub(crate) from: String,
    /// The node the operator is on.
    pub(crate) by: String,
}

impl Cluster {
    /// Connects to the cluster's Redis (a connection of the admin namespace's own).
    pub(crate) async fn connect(place: ClusterPlace) -> redis::RedisResult<Self> {
        let client = redis::Client::open(place.url.as_str())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(place.response_timeout.max(Duration::from_secs(1))))
            .set_response_timeout(Some(place.response_timeout));
        let connection = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            client,
            connection,
            prefix: format!("{}:admin", place.prefix),
            node_id: place.node_id,
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// Whether session `id` exists on the cluster.
    pub(crate) async fn session_exists(&self, id: &str) -> bool {
        let found: redis::RedisResult<bool> = redis::cmd("EXISTS")
            .arg(self.key(&format!("session:{id}")))
            .query_async(&mut self.connection.clone())
            .await;
        found.unwrap_or_else(|e| {
            tracing::warn!("cannot check an admin session in Redis: {e}");
            false
        })
    }

    /// Saves session `id` for `lifetime`.
    pub(crate) async fn save_session(&self, id: &str, lifetime: Duration) {
        let saved: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.key(&format!("session:{id}")))
            .arg(1)
            .arg("EX")
            .arg(lifetime.as_secs())
            .query_async(&mut self.connection.clone())
            .await;
        if let Err(e) = saved {
            tracing::warn!("cannot save an admin session in Redis (valid on this node only): {e}");
        }
    }

    /// Whether an admin is connected anywhere; `here`: one is connected to this node
    /// (which says so for [`REPORT_TTL`]).
    pub(crate) async fn watching(&self, here: bool) -> bool {
        let mut connection = self.connection.clone();
        let key = self.key("watching");
        let answer: redis::RedisResult<bool> = if here {
            redis::cmd("SET")
                .arg(&key)
                .arg(&self.node_id)
                .arg("PX")
                .arg(millis(REPORT_TTL))
                .query_async::<()>(&mut connection)
                .await
                .map(|()| true)
        } else {
            redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut connection)
                .await
        };
        answer.unwrap_or_else(|e| {
            tracing::debug!("cannot tell whether an admin is watching: {e}");
            here
        })
    }

    /// Reports this node's stats and members for [`REPORT_TTL`].
    pub(crate) async fn report(&self, report: &Report) {
        let Ok(json) = serde_json::to_string(report) else {
            return;
        };
        let reported: redis::RedisResult<()> = redis::pipe()
            .cmd("SET")
            .arg(self.key(&format!("node:{}", self.node_id)))
            .arg(json)
            .arg("PX")
            .arg(millis(REPORT_TTL))
            .ignore()
            .cmd("SADD")
            .arg(self.key("nodes"))
            .arg(&self.node_id)
            .ignore()
            .query_async(&mut self.connection.clone())
            .await;
        if let Err(e) = reported {
            tracing::debug!("cannot report to the cluster's admins: {e}");
        }
    }

    /// The other nodes' latest reports, by node id.
    pub(crate) async fn others(&self) -> Vec<(String, Report)> {
        let mut connection = self.connection.clone();
        let nodes: Vec<String> = match redis::cmd("SMEMBERS")
            .arg(self.key("nodes"))
            .query_async(&mut connection)
            .await
        {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::debug!("cannot read the other nodes' reports: {e}");
                return Vec::new();
            }
        };
        let nodes: Vec<String> = nodes
            .into_iter()
            .filter(|node| *node != self.node_id)
            .collect();
        if nodes.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = nodes
            .iter()
            .map(|node| self.key(&format!("node:{node}")))
            .collect();
        let reports: Vec<Option<String>> = match redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await
        {
            Ok(reports) => reports,
            Err(e) => {
                tracing::debug!("cannot read the other nodes' reports: {e}");
                return Vec::new();
            }
        };
        let mut found = Vec::new();
        for (node, report) in nodes.into_iter().zip(reports) {
            match report.map(|json| serde_json::from_str::<Report>(&json)) {
                Some(Ok(report)) => found.push((node, report)),
                Some(Err(e)) => tracing::warn!(%node, "unreadable admin report: {e}"),
                // Gone (stopped, or no admin for a while): out of the set.
                None => {
                    let removed: redis::RedisResult<()> = redis::cmd("SREM")
                        .arg(self.key("nodes"))
                        .arg(&node)
                        .query_async(&mut connection)
                        .await;
                    if let Err(e) = removed {
                        tracing::debug!("cannot forget node {node}'s report: {e}");
                    }
                }
            }
        }
        found
    }

    /// Asks every node for its report at once (and says an admin is watching): the
    /// request's number, and how many nodes heard it (this one included, if it listens).
    pub(crate) async fn ask_reports(&self) -> redis::RedisResult<(u64, usize)> {
        self.watching(true).await;
        let mut connection = self.connection.clone();
        let asked: u64 = redis::cmd("INCR")
            .arg(self.key("asked"))
            .query_async(&mut connection)
            .await?;
        let heard: usize = redis::cmd("PUBLISH")
            .arg(self.key("asked"))
            .arg(asked)
            .query_async(&mut connection)
            .await?;
        Ok((asked, heard))
    }

    /// Listens for requests for reports: calls `heard` with each one's number, until
    /// `stop`; a lost connection is made anew every second.
    pub(crate) async fn listen(
        &self,
        heard: impl Fn(u64),
        stop: tokio_util::sync::CancellationToken,
    ) {
        use futures_util::StreamExt;
        loop {
            let connected = tokio::select! {
                () = stop.cancelled() => return,
                connected = self.client.get_async_pubsub() => connected,
            };
            match connected {
                Ok(mut pubsub) => match pubsub.subscribe(self.key("asked")).await {
                    Ok(()) => {
                        // The sink stays here: the subscription lasts while it does.
                        let (_sink, mut messages) = pubsub.split();
                        loop {
                            tokio::select! {
                                () = stop.cancelled() => return,
                                message = messages.next() => match message {
                                    Some(message) => heard(message.get_payload().unwrap_or(0)),
                                    None => break,
                                },
                            }
                        }
                        tracing::debug!("the admin UI's channel in Redis closed: listening again");
                    }
                    Err(e) => tracing::debug!("cannot listen for admins' requests: {e}"),
                },
                Err(e) => tracing::debug!("cannot listen for admins' requests: {e}"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Gives `node` an order.
    pub(crate) async fn order(&self, node: &str, order: &Order) -> redis::RedisResult<()> {
        let json = serde_json::to_string(order).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Client, "order", e.to_string()))
        })?;
        redis::cmd("RPUSH")
            .arg(self.key(&format!("orders:{node}")))
            .arg(json)
            .query_async(&mut self.connection.clone())
            .await
    }

    /// Takes this node's orders.
    pub(crate) async fn orders(&self) -> Vec<Order> {
        let taken: redis::RedisResult<Option<Vec<String>>> = redis::cmd("LPOP")
            .arg(self.key(&format!("orders:{}", self.node_id)))
            .arg(MAX_ORDERS)
            .query_async(&mut self.connection.clone())
            .await;
        match taken {
            Ok(orders) => orders
                .unwrap_or_default()
                .iter()
                .filter_map(|json| {
                    serde_json::from_str(json)
                        .map_err(|e| tracing::warn!("unreadable admin order: {e}"))
                        .ok()
                })
                .collect(),
            Err(e) => {
                tracing::debug!("cannot read this node's admin orders: {e}");
                Vec::new()
            }
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

// The reports must outlive a missed renewal or two.
const _: () = assert!(REPORT_TTL.as_secs() >= 3 * STATS_INTERVAL.as_secs());
