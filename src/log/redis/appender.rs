//! The appender task: this node's entries and room requests, in the order the lobby
//! accepted them, to Redis on one connection ([`append_all`]): chat lines waiting
//! behind one another go in one call of the append script (a batch), joins and leaves
//! one a call; a call Redis does not answer is tried again until it does, while chat
//! lines are refused (see the parent module's doc).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::driver::{Append, Driver, Failure, Kind, RoomKind};
use super::shared::Shared;
use crate::locks::lock;
use crate::log::{BrokerHandler, SeatAnswer};

/// The longest pause between two tries of an append Redis did not answer.
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Appends Redis refused or that failed (each try).
const APPEND_FAILURES: &str = "chatterbox_cluster_append_failures_total";

/// A room request on its way to Redis.
pub(super) struct RoomRequest<S> {
    pub(super) seq: u64,
    pub(super) epoch: u64,
    pub(super) kind: RoomKind,
    pub(super) member: String,
    /// The member's id on this node.
    pub(super) id: u64,
    /// The room (a seat), or empty.
    pub(super) room: Arc<str>,
    /// The entry (a line), or empty.
    pub(super) json: String,
    /// The seat the answer is told to (a seat, a line).
    pub(super) told: Option<S>,
}

/// What the appender does next, in the node's order.
pub(super) enum Job<S> {
    Entry(Append),
    Room(RoomRequest<S>),
}

/// Runs the append script for each join and leave and for the chat lines waiting (a
/// batch per call), and the rooms script for each room request, in order, on one
/// connection; one Redis did not answer for is tried again until it
/// does (see the module doc).
pub(super) async fn append_all<T: 'static, S: 'static, D: Driver>(
    mut driver: D,
    mut jobs: mpsc::UnboundedReceiver<Job<S>>,
    shared: Arc<Shared<T>>,
    handler: Arc<dyn BrokerHandler<T, S>>,
    stop: CancellationToken,
) {
    // What ended the last batch (a room request, a join or leave, another epoch's
    // entry): the next job.
    let mut held = None;
    loop {
        let job = match held.take() {
            Some(job) => job,
            None => tokio::select! {
                () = stop.cancelled() => return,
                job = jobs.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
            },
        };
        match job {
            Job::Entry(first) => {
                // The chat lines waiting behind a line go in the same call, up to a
                // bound, in order: anything else (a join, a leave, a room request,
                // another epoch's entry) ends the batch. Joins and leaves go one a call:
                // a join storm is then paced by Redis's answers, as fast as the nodes'
                // writers can send each join to everyone (batched, the storm outran
                // them: docs/performance.md, "Batched appends").
                let mut bytes = first.json.len();
                let batching = first.kind == Kind::Line;
                let mut batch = vec![first];
                while batching && batch.len() < APPEND_BATCH_ENTRIES && bytes < APPEND_BATCH_BYTES {
                    match jobs.try_recv() {
                        Ok(Job::Entry(next))
                            if next.kind == Kind::Line && next.epoch == batch[0].epoch =>
                        {
                            bytes += next.json.len();
                            batch.push(next);
                        }
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let mut retry = Retry::new();
                let outcome = loop {
                    match driver.append(batch[0].epoch, &batch).await {
                        Err(Failure::Unreachable(e)) => {
                            if !retry.wait(&shared, &stop, &e).await {
                                return;
                            }
                        }
                        answer => break retry.answered(&shared, answer),
                    }
                };
                let answers = match outcome {
                    Ok(answers) => answers,
                    Err(e) => {
                        refused(&shared, batch[0].seq, &e);
                        Vec::new()
                    }
                };
                if !answers.is_empty() && answers.len() != batch.len() {
                    tracing::error!(
                        entries = batch.len(),
                        answers = answers.len(),
                        "the append script answered for another number of entries"
                    );
                }
                // An entry not in the log is relayed by nobody: its pending place goes,
                // so that the entries after it still match.
                let mut pending = None;
                for (at, append) in batch.iter().enumerate() {
                    if answers.get(at).is_none_or(|&answer| answer < -1) {
                        pending
                            .get_or_insert_with(|| lock(&shared.pending))
                            .remove(append.seq);
                    }
                }
                if pending.take().is_some() {
                    shared.drained.notify_all();
                }
            }
            Job::Room(request) => {
                if !matches!(request.kind, RoomKind::Unseat) {
                    shared.rooms_waiting.fetch_sub(1, Ordering::SeqCst);
                }
                let mut retry = Retry::new();
                let outcome = loop {
                    let answer = driver
                        .rooms(
                            &request.kind,
                            request.epoch,
                            request.seq,
                            &request.member,
                            &request.room,
                            &request.json,
                        )
                        .await;
                    match answer {
                        Err(Failure::Unreachable(e)) => {
                            if !retry.wait(&shared, &stop, &e).await {
                                return;
                            }
                        }
                        answer => break retry.answered(&shared, answer),
                    }
                };
                let answer = match (outcome, &request.kind) {
                    (Ok(0), RoomKind::Seat) => SeatAnswer::Full,
                    (Ok(0), _) => SeatAnswer::NotSeated,
                    // A room line sent: nothing to tell.
                    (Ok(_), RoomKind::Line) => continue,
                    (Ok(_), _) => SeatAnswer::Seated,
                    (Err(e), _) => {
                        refused(&shared, request.seq, &e);
                        continue;
                    }
                };
                if let Some(seat) = request.told {
                    handler.seat_answered(request.id, request.room, seat, answer);
                }
            }
        }
    }
}

/// The most chat lines one call of the append script takes: bounds the call's
/// arguments and how long Redis runs it (a few ms), while a node's waiting lines still
/// go in few round trips.
pub(super) const APPEND_BATCH_ENTRIES: usize = 64;

/// The most bytes of entries one call of the append script takes (it may pass this by
/// its last entry, of at most one line's size).
const APPEND_BATCH_BYTES: usize = 256 * 1024;

/// The pauses between the tries of a step Redis did not answer, marking Redis
/// unavailable meanwhile.
struct Retry {
    pause: Duration,
}

impl Retry {
    fn new() -> Self {
        Self {
            pause: Duration::from_millis(50),
        }
    }

    /// Counts a try Redis did not answer and waits before the next; false if the node
    /// stops meanwhile.
    async fn wait<T>(&mut self, shared: &Shared<T>, stop: &CancellationToken, e: &str) -> bool {
        metrics::counter!(APPEND_FAILURES).increment(1);
        if !shared.set_unavailable(true) {
            tracing::error!("Redis does not answer: chat lines are refused until it does ({e})");
        }
        tokio::select! {
            () = stop.cancelled() => return false,
            () = tokio::time::sleep(self.pause) => {}
        }
        self.pause = (self.pause * 2).min(RETRY_MAX);
        true
    }

    /// Redis answered: it is available.
    fn answered<T, R>(&self, shared: &Shared<T>, answer: Result<R, Failure>) -> Result<R, Failure> {
        shared.set_unavailable(false);
        answer
    }
}

/// An entry or request Redis refused: counted and logged; a lost lease is the lease
/// task's to handle.
fn refused<T>(shared: &Shared<T>, seq: u64, e: &Failure) {
    metrics::counter!(APPEND_FAILURES).increment(1);
    if *e == Failure::NoLease {
        tracing::warn!(seq, "cluster entry refused: this node's lease is lost");
        shared.lease_lost.notify_one();
    } else {
        tracing::error!(seq, "cluster append refused, entry not relayed: {e}");
    }
}
