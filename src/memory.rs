//! Gives the allocator's free memory back to the operating system after a storm of
//! connections.
//!
//! A storm of joins (thousands of clients reconnecting after a restart) fills every
//! member's queue with join notices for a while; once they are written, that memory is
//! free but glibc's allocator keeps most of it: it only returns the top of its heaps by
//! itself, and a freed page in the middle of a heap stays resident. After a storm has
//! calmed, [`trim_after_storms`] asks it (`malloc_trim(0)`, on a blocking thread) to
//! give every free page back. Measured with the benchmark's 5,000 idle members (see
//! docs/performance.md): several KiB per member.
//!
//! The rule: every [`TICK`], the lobby's connection count is read; the changes add up,
//! and once they reach `--trim-after-connections` (0: never) and the last tick changed
//! the count by less than a sixteenth of that (the storm has calmed), the allocator is
//! trimmed and the sum starts again. Trims are counted in
//! `chatterbox_memory_trims_total`. Other allocators and platforms: nothing is done.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::lobby::Lobby;
use crate::telemetry;

/// How often the connection count is read.
pub(crate) const TICK: Duration = Duration::from_millis(500);

/// The default of `--trim-after-connections`: joins and departures that make a storm.
pub const DEFAULT_TRIM_AFTER_CONNECTIONS: usize = 256;

/// Counts the changes of the lobby's connections and trims the allocator after each
/// storm of `after` of them (0: never), until `stop`.
pub(crate) async fn trim_after_storms(lobby: Lobby, after: usize, stop: CancellationToken) {
    if after == 0 || !trim_supported() {
        return;
    }
    let mut storm = Storm::new(after, lobby.connection_count());
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if storm.calmed(lobby.connection_count()) {
            match tokio::task::spawn_blocking(trim).await {
                Ok(released) => {
                    telemetry::memory_trimmed();
                    tracing::debug!(released, "allocator trimmed after a storm of connections");
                }
                Err(e) => tracing::warn!("the allocator's trim did not finish: {e}"),
            }
        }
    }
}

/// The changes of the connection count since the last trim.
struct Storm {
    after: usize,
    last: usize,
    changes: usize,
}

impl Storm {
    fn new(after: usize, count: usize) -> Self {
        Self {
            after,
            last: count,
            changes: 0,
        }
    }

    /// Takes this tick's count; true when a storm of changes is over (and starts
    /// counting the next).
    fn calmed(&mut self, count: usize) -> bool {
        let change = count.abs_diff(self.last);
        self.last = count;
        self.changes = self.changes.saturating_add(change);
        if self.changes >= self.after && change < self.after.div_ceil(16) {
            self.changes = 0;
            return true;
        }
        false
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_supported() -> bool {
    true
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_supported() -> bool {
    false
}

/// Gives every free page of the allocator back; true when some memory was released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> bool {
    // SAFETY: malloc_trim only walks glibc's own heaps, under their locks.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::Storm;

    #[test]
    fn a_storm_is_trimmed_once_it_calms() {
        let mut storm = Storm::new(256, 0);
        // 300 joins over three ticks: still storming.
        assert!(!storm.calmed(100));
        assert!(!storm.calmed(200));
        assert!(!storm.calmed(300));
        // A quiet tick (under 16 changes): trimmed, and the sum starts again.
        assert!(storm.calmed(310));
        assert!(!storm.calmed(310));
    }

    #[test]
    fn leaving_counts_as_much_as_joining() {
        let mut storm = Storm::new(256, 1000);
        assert!(!storm.calmed(800));
        assert!(!storm.calmed(700));
        assert!(storm.calmed(700));
    }

    #[test]
    fn steady_small_changes_add_up_without_a_storm_tick() {
        let mut storm = Storm::new(256, 0);
        // 15 a tick is calm: once 256 have added up, the next tick trims.
        for tick in 1..=17 {
            assert!(!storm.calmed(tick * 15), "tick {tick}");
        }
        assert!(storm.calmed(18 * 15));
    }
}
