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

use super::driver::Driver;
use super::settings::ClusterSettings;
use super::shared::Shared;
use crate::log::BrokerHandler;

/// Keeps the node's lease, and gives up the nodes that lost theirs, until `stop`.
pub(super) async fn keep<T: 'static, S: 'static, D: Driver>(
    mut driver: D,
    settings: ClusterSettings,
    shared: Arc<Shared<T>>,
    handler: Arc<dyn BrokerHandler<T, S>>,
    stop: CancellationToken,
) {
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
            match driver.id_block().await {
                Ok(block) => shared.ids.give(block),
                Err(e) => tracing::error!("cannot take more member ids: {e}"),
            }
        }
        let epoch = shared.epoch.load(Ordering::SeqCst);
        match driver.renew(epoch).await {
            Ok(true) => {
                shared.set_unavailable(false);
            }
            Ok(false) => {
                tracing::warn!(
                    node = %settings.node_id,
                    "this node's lease ran out (it was frozen or cut off from Redis): registering anew"
                );
                let registered = match driver.give_up(true).await {
                    Ok(_) => driver.register().await,
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
        match driver.give_up(false).await {
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
