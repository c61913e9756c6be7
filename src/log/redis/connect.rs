//! Joining the cluster: connecting to its Redis, registering the node, taking its first
//! member ids and reading who is present at one instant ([`connect`]); the settings
//! and errors of a cluster node; the reading connection, which has no response timeout
//! (for `XREAD BLOCK`).

use std::sync::{Arc, Mutex};

use super::driver::{CONNECT_TIMEOUT, Driver, Failure, RedisDriver, reading_connection};
use super::entry::SKIPPED;
use super::keys::Keys;
use super::roster::Roster;
use super::settings::ClusterSettings;

/// Why the cluster cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL is not one the client understands.
    #[error("--redis-url {url}: {cause}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        cause: redis::RedisError,
    },
    /// Redis does not answer.
    #[error("cannot reach Redis at {url}: {cause}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What failed.
        cause: String,
    },
}

/// A node connected to its cluster's Redis (or, in tests, to the cluster in memory) and
/// registered, not yet reading.
pub(crate) struct Connected<D = RedisDriver> {
    pub(super) settings: ClusterSettings,
    /// Its steps on the cluster's state.
    pub(super) driver: D,
    /// The log's newest entry, and its number, when presence was read: the node relays
    /// what comes after.
    pub(super) start: (String, u64),
    /// Who was present then.
    pub(super) roster: Roster,
    /// The epoch the node registered under.
    pub(super) epoch: u64,
    /// The first block of member ids.
    pub(super) ids: std::ops::Range<u64>,
}

/// Connects to Redis, checks that it answers, logs what its persistence means for
/// the lines relayed, registers the node and reads who is present. Fails within
/// [`CONNECT_TIMEOUT`] if Redis does not answer.
pub(crate) async fn connect(settings: ClusterSettings) -> Result<Connected, ClusterError> {
    let url = settings.url.clone();
    let client = redis::Client::open(url.as_str()).map_err(|cause| ClusterError::Url {
        url: url.clone(),
        cause,
    })?;
    let unreachable = |cause: String| ClusterError::Unreachable {
        url: url.clone(),
        cause,
    };
    let keys = Keys::new(&settings.cluster);
    let connecting = async {
        let mut reads = reading_connection(&client).await?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(settings.response_timeout));
        let appends = client
            .get_connection_manager_with_config(manager_config)
            .await?;
        let _: String = redis::cmd("PING").query_async(&mut reads).await?;
        let appendonly: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query_async(&mut reads)
            .await?;
        let appendfsync: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendfsync")
            .query_async(&mut reads)
            .await?;
        let driver = RedisDriver {
            keys,
            settings: settings.clone(),
            client: client.clone(),
            appends,
            reads,
            blocking: Arc::new(Mutex::new(None)),
        };
        Ok::<_, redis::RedisError>((driver, appendonly, appendfsync))
    };
    let joining = async {
        let (driver, appendonly, appendfsync) = connecting.await.map_err(Failure::from)?;
        let connected = join(driver, settings.clone()).await?;
        Ok::<_, Failure>((connected, appendonly, appendfsync))
    };
    let (connected, appendonly, appendfsync) =
        match tokio::time::timeout(CONNECT_TIMEOUT, joining).await {
            Err(_) => return Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Ok(Ok(connected)) => connected,
        };
    let setting = |pair: &[String]| pair.get(1).cloned().unwrap_or_default();
    let (appendonly, appendfsync) = (setting(&appendonly), setting(&appendfsync));
    tracing::info!(
        node = %settings.node_id,
        cluster = %settings.cluster,
        appendonly = %appendonly,
        appendfsync = %appendfsync,
        "cluster log in Redis: {}",
        durability(&appendonly, &appendfsync)
    );
    Ok(connected)
}

/// Joins the cluster through `driver`: registers the node, takes its first member ids
/// and reads who is present, with where the log is, at one instant.
pub(super) async fn join<D: Driver>(
    mut driver: D,
    settings: ClusterSettings,
) -> Result<Connected<D>, Failure> {
    let epoch = driver.register().await?;
    let ids = driver.id_block().await?;
    let snapshot = driver.snapshot().await?;
    Ok(Connected {
        settings,
        driver,
        start: (snapshot.newest, snapshot.entries),
        roster: roster_of(snapshot.members),
        epoch,
        ids,
    })
}

/// The roster of a snapshot's members, counting those it cannot read.
pub(super) fn roster_of(members: Vec<(String, String)>) -> Roster {
    let (roster, unreadable) = Roster::from_snapshot(members);
    if unreadable > 0 {
        metrics::counter!(SKIPPED).increment(unreadable as u64);
    }
    roster
}

/// What Redis's persistence promises for a line once it is relayed.
fn durability(appendonly: &str, appendfsync: &str) -> &'static str {
    match (appendonly, appendfsync) {
        ("yes", "always") => {
            "every relayed line is on Redis's disk first (survives kill -9 of Redis and a power cut)"
        }
        ("yes", "everysec") => {
            "a relayed line reaches Redis's disk within a second (a crash of the Redis machine may lose the last second)"
        }
        ("yes", _) => {
            "Redis leaves fsync to its operating system (a crash of the Redis machine may lose recent lines)"
        }
        _ => {
            "Redis keeps no append-only file: relayed lines are in its memory only (a restart of Redis may lose them)"
        }
    }
}
