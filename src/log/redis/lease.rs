//! A node's lease on its place in the cluster (`--node-lease-ms`), and the giving up of
//! nodes whose lease has run out (see the parent module's doc).
//!
//! Three times a lease the node renews its lease and gives up every node whose lease
//! has run out. It gives up others only once it has itself been in touch with Redis
//! for a whole lease: after Redis was away, every node gets one lease to renew before
//! anyone is given up. A node that finds its own lease lost gives itself up (announcing
//! whatever of its members the others have not), registers under a new epoch, and
//! drops every connection.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{ClusterSettings, Keys, Shared, ids, scripts};
use crate::log::BrokerHandler;

/// Registers `settings`' node under a new epoch; returns the epoch.
pub(super) async fn register(
    connection: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
    settings: &ClusterSettings,
) -> redis::RedisResult<u64> {
    redis::Script::new(&scripts::register())
        .key(&keys.nodes)
        .key(&keys.epochs)
        .key(&keys.seqs)
        .arg(&settings.node_id)
        .arg(lease_ms(settings))
        .invoke_async(connection)
        .await
}

fn lease_ms(settings: &ClusterSettings) -> u64 {
    u64::try_from(settings.lease.as_millis()).unwrap_or(u64::MAX)
}

/// Keeps the node's lease, and gives up the nodes that lost theirs, until `stop`.
pub(super) async fn keep<T: 'static, S: 'static>(
    mut connection: redis::aio::ConnectionManager,
    keys: Keys,
    settings: ClusterSettings,
    shared: Arc<Shared<T>>,
    handler: Arc<dyn BrokerHandler<T, S>>,
    stop: CancellationToken,
) {
    let renew = redis::Script::new(&scripts::renew());
    let every = settings.lease / 3;
    // Since when the node has been in touch with Redis without a failure.
    let mut in_touch_since = Instant::now();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
            () = shared.lease_lost.notified() => {}
            () = shared.refill.notified() => {}
        }
        if shared.ids.wanted() {
            match ids::block(&mut connection, &keys).await {
                Ok(block) => shared.ids.give(block),
                Err(e) => tracing::error!("cannot take more member ids: {e}"),
            }
        }
        let epoch = shared.epoch.load(Ordering::SeqCst);
        let renewed: redis::RedisResult<u8> = renew
            .key(&keys.nodes)
            .key(&keys.epochs)
            .arg(&settings.node_id)
            .arg(epoch)
            .arg(lease_ms(&settings))
            .invoke_async(&mut connection)
            .await;
        match renewed {
            Ok(1) => {
                shared.set_unavailable(false);
            }
            Ok(_) => {
                tracing::warn!(
                    node = %settings.node_id,
                    "this node's lease ran out (it was frozen or cut off from Redis): registering anew"
                );
                let given_up: redis::RedisResult<u64> =
                    give_up_script(&keys, &settings.node_id, settings.log_entries)
                        .invoke_async(&mut connection)
                        .await;
                let registered = match given_up {
                    Ok(_) => register(&mut connection, &keys, &settings).await,
                    Err(e) => Err(e),
                };
                match registered {
                    Ok(epoch) => {
                        shared.epoch.store(epoch, Ordering::SeqCst);
                        shared.set_unavailable(false);
                        handler.lost_place();
                    }
                    Err(e) => {
                        tracing::error!("cannot register anew: {e}");
                        in_touch_since = Instant::now();
                        continue;
                    }
                }
            }
            Err(e) => {
                if !shared.set_unavailable(true) {
                    tracing::error!(
                        "cannot renew this node's lease: chat lines are refused until Redis answers ({e})"
                    );
                }
                in_touch_since = Instant::now();
                continue;
            }
        }
        if in_touch_since.elapsed() < settings.lease {
            continue;
        }
        let given_up: redis::RedisResult<u64> = give_up_script(&keys, "", settings.log_entries)
            .invoke_async(&mut connection)
            .await;
        match given_up {
            Ok(0) => {}
            Ok(left) => tracing::warn!(
                members = left,
                "nodes whose lease ran out given up: their members announced as left"
            ),
            Err(e) => {
                tracing::error!("cannot give up the nodes whose lease ran out: {e}");
                in_touch_since = Instant::now();
            }
        }
    }
}

/// The give-up script for `node` ('' : every node whose lease has run out), ready to
/// invoke.
pub(super) fn give_up_script(
    keys: &Keys,
    node: &str,
    log_entries: u64,
) -> redis::ScriptInvocation<'static> {
    let script: &'static redis::Script = give_up_script_text();
    let mut invocation = script.prepare_invoke();
    invocation
        .key(&keys.log)
        .key(&keys.line_id)
        .key(&keys.members)
        .key(&keys.nodes)
        .key(&keys.seqs)
        .key(&keys.seats)
        .arg(&keys.prefix)
        .arg(node)
        .arg(log_entries);
    invocation
}

/// The give-up script, made once.
fn give_up_script_text() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(&scripts::give_up()))
}
