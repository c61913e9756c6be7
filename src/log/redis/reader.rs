//! The reader task: reads `<c>:log` with `XREAD BLOCK` on a connection of its own, from
//! where the log was when the node started, applies each join and leave to the
//! [`roster`](super::roster), matches this node's own entries to its pending appends,
//! and hands each batch, in stream order, to the lobby's delivery ([`Reader::run`]).
//! A gap in the entries' numbers (the log trimmed past it, a Redis that lost its data)
//! is counted and presence read anew.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::connect::roster_of;
use super::driver::{Driver, READ_BLOCK_MS};
use super::entry::{Envelope, Record, decode, skipped};
use super::roster::member_key;
use super::shared::Shared;
use crate::locks::lock;
use crate::log::{BrokerHandler, Committed, StoredLine};

/// Times a node's reading found the log trimmed past where it was.
const LOG_GAPS: &str = "chatterbox_cluster_log_gaps_total";

/// The reader task: where it reads, from where, and where it hands what it read.
pub(super) struct Reader<T, S, D> {
    /// Its reads of the cluster's state, on a connection of its own.
    pub(super) driver: D,
    /// This node's id: its own entries are matched to its pending appends.
    pub(super) node: String,
    /// The entry to read after, and its number.
    pub(super) start: (String, u64),
    /// What the node's tasks and the lobby share.
    pub(super) shared: Arc<Shared<T>>,
    /// Where what is read goes: lobby events in batches, room lines to the seats.
    pub(super) handler: Arc<dyn BrokerHandler<T, S>>,
    /// The most lobby events handed over in one batch.
    pub(super) batch_items: usize,
    /// Ends the task.
    pub(super) stop: CancellationToken,
}

impl<T: Send + 'static, S: Send + 'static, D: Driver> Reader<T, S, D> {
    /// Reads the log from `start` (the entry and its number) on, applies joins and
    /// leaves to the roster and hands each batch to `relay`, in order; reconnects after
    /// a failure.
    pub(super) async fn run(self) {
        let Reader {
            mut driver,
            node,
            start,
            shared,
            handler,
            batch_items,
            stop,
        } = self;
        // The last entry read, and its number.
        let (mut last, mut read_entries) = start;
        let mut failed = false;
        loop {
            if failed {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(READ_BLOCK_MS)) => {}
                }
                match driver.reconnect().await {
                    Ok(()) => {
                        failed = false;
                        tracing::info!("reading the cluster log again");
                    }
                    Err(e) => {
                        tracing::debug!("cannot reach Redis to read the log: {e}");
                        continue;
                    }
                }
            }
            let reply = tokio::select! {
                () = stop.cancelled() => return,
                reply = driver.read(&last, batch_items) => reply,
            };
            let entries = match reply {
                Ok(entries) => entries,
                Err(e) => {
                    tracing::error!("cannot read the cluster log: {e}");
                    failed = true;
                    continue;
                }
            };
            let read_all_it_could = entries.len() >= batch_items;
            let mut batch = Vec::with_capacity(entries.len());
            for entry in entries {
                if let Some(n) = entry.n {
                    if n != read_entries + 1 {
                        read_presence_anew(&mut driver, &last, &shared).await;
                    }
                    read_entries = n;
                }
                last = entry.id.clone();
                let Some(envelope) = entry.entry.as_deref().and_then(decode) else {
                    skipped(&entry.id, "undecodable");
                    continue;
                };
                let line = entry.line.filter(|&id| id > 0);
                let count = entry.count.and_then(|count| usize::try_from(count).ok());
                apply(&shared, &envelope);
                let members = match envelope.record {
                    Record::Line { .. } => None,
                    _ => count,
                };
                // seq 0: written by the cluster itself (a node given up), never pending.
                if let Record::RoomLine { text } = envelope.record {
                    match &entry.room {
                        Some(room) => handler.relay_in_room(room, &Arc::from(text)),
                        None => skipped(&entry.id, "a room line without its room"),
                    }
                    continue;
                }
                if envelope.node != node || envelope.seq == 0 {
                    if let Some(item) = envelope.record.into_event().map(|e| handler.heard(e)) {
                        batch.push(Committed {
                            item,
                            id: line,
                            replayed: Vec::new(),
                            members,
                        });
                    }
                    continue;
                }
                let Some(mine) = shared.take_pending(envelope.seq) else {
                    skipped(&entry.id, "an entry of this node it is not waiting for");
                    continue;
                };
                let replayed = match (mine.replay, entry.last) {
                    (0, _) | (_, None | Some(0)) => Vec::new(),
                    (count, Some(last_line)) => replay(&mut driver, last_line, count).await,
                };
                batch.push(Committed {
                    item: mine.item,
                    id: line,
                    replayed,
                    members,
                });
            }
            if !batch.is_empty() {
                let delivering = Instant::now();
                handler.deliver(batch);
                if read_all_it_could {
                    // A backlog (a burst of the cluster's, or what piled up while this node
                    // was away): relaying only queues the events, the connections' writers
                    // still have to send them. The next part at once would overflow the
                    // queues of members that are keeping up; wait as long as this relay took.
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(delivering.elapsed()) => {}
                    }
                }
            }
        }
    }
}

/// Applies a join or leave to the roster.
fn apply<T>(shared: &Shared<T>, envelope: &Envelope) {
    match &envelope.record {
        Record::Joined { member, .. } => {
            lock(&shared.roster).joined(member_key(&envelope.node, member.id), member);
        }
        Record::Line {
            id,
            renamed: Some(someone),
            ..
        } => {
            lock(&shared.roster).joined(member_key(&envelope.node, *id), someone);
        }
        Record::Left { id, .. } => {
            lock(&shared.roster).left(&member_key(&envelope.node, *id));
        }
        _ => {}
    }
}

/// Presence read anew after the log lost entries this node had not read (trimmed while
/// it was away, or a Redis restarted without its data): they cannot be relayed, and
/// the gap is logged and counted. The snapshot may already hold what the entries read
/// next say; applying a join or leave twice changes nothing.
async fn read_presence_anew<T, D: Driver>(driver: &mut D, last: &str, shared: &Shared<T>) {
    tracing::warn!(
        after = last,
        "the cluster log lost entries this node had not read: presence read anew"
    );
    metrics::counter!(LOG_GAPS).increment(1);
    match driver.snapshot().await {
        Ok(snapshot) => *lock(&shared.roster) = roster_of(snapshot.members),
        Err(e) => tracing::error!("cannot read presence anew: {e}"),
    }
}

/// The latest `count` lines up to line `last`, oldest first (a replay); none if they
/// cannot be read.
async fn replay<D: Driver>(driver: &mut D, last: i64, count: usize) -> Vec<StoredLine> {
    match driver.replay(last, count).await {
        Ok(lines) => lines,
        Err(e) => {
            tracing::error!("cannot read the lines to replay: {e}");
            Vec::new()
        }
    }
}
