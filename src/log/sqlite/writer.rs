//! The writer: the [`Sequencer`], the lobby's one writer, on a thread of its own. It
//! takes what is queued, commits the chat lines that arrived while the previous commit
//! ran in one transaction (group commit), then hands the batch back in queue order;
//! a backlog goes back in parts, paced (see [`Sequencer::start`]). A checkpointer thread
//! copies the write-ahead log into the database file every [`CHECKPOINT_COMMITS`](super::upkeep::CHECKPOINT_COMMITS).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::reader::{Reader, read_page};
use super::store::Store;
use super::upkeep::{WAL_MAX_BYTES, cap_wal, count_commit, trim};
use crate::locks::lock;
use crate::log::error::HistoryError;
use crate::log::line::{Committed, QueueFull, Queued, StoredLine};
use crate::telemetry;

/// Pause before retrying a commit that failed (disk full, I/O error): the batch stays
/// queued meanwhile, nothing of it is relayed or dropped.
const COMMIT_RETRY: Duration = Duration::from_millis(500);

struct Queue<T> {
    items: VecDeque<Queued<T>>,
    /// Chat lines among `items`.
    lines: usize,
    closed: bool,
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    wake: Condvar,
    capacity_lines: usize,
    batch_items: usize,
}

/// The lobby's one writer: commits queued lines in batches, then hands every queued
/// item back in order (see the module doc).
pub(crate) struct Sequencer<T> {
    shared: Arc<Shared<T>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Reads pages for the API, beside the writer.
    reader: Reader,
}

impl<T: Send + 'static> Sequencer<T> {
    /// Starts the writer thread on `store`; `deliver` gets each committed batch, of at
    /// most `batch_items` items (at least one). At most `capacity_lines` lines wait for
    /// a commit at once.
    ///
    /// The lobby hands a whole batch to each member's queue at once, so a batch must fit
    /// in that queue: after a commit that stalled (the disk sometimes takes a tenth of a
    /// second for an fsync), thousands of lines may be waiting, and released in one
    /// batch they would overflow every member's queue and cut everyone off. Such a
    /// backlog goes out in parts, with a pause after each as long as its relay took.
    pub(crate) fn start(
        store: Store,
        capacity_lines: usize,
        batch_items: usize,
        deliver: impl FnMut(Vec<Committed<T>>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let reader = store.reader();
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                lines: 0,
                closed: false,
            }),
            wake: Condvar::new(),
            capacity_lines,
            batch_items: batch_items.max(1),
        });
        // The writer pokes the checkpointer every CHECKPOINT_COMMITS commits; a poke
        // that finds one waiting is not needed. The checkpointer ends with the writer.
        let (poke, pokes) = std::sync::mpsc::sync_channel::<()>(1);
        let checkpoints = Connection::open(&store.path).map_err(|e| {
            std::io::Error::other(format!("cannot open the history to checkpoint it: {e}"))
        })?;
        std::thread::Builder::new()
            .name("history-checkpoint".into())
            .spawn(move || {
                for () in pokes {
                    let started = Instant::now();
                    match checkpoints.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        Ok(()) => {
                            tracing::debug!(took = ?started.elapsed(), "history checkpointed")
                        }
                        Err(e) => tracing::warn!("cannot checkpoint the history: {e}"),
                    }
                }
            })?;
        // `deliver` runs in the runtime of whoever started the sequencer: relaying may
        // spawn tasks (socketioxide runs a socket's async disconnect handler as one).
        let runtime = tokio::runtime::Handle::try_current().ok();
        let thread = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn({
                let shared = shared.clone();
                move || {
                    let _runtime = runtime.as_ref().map(tokio::runtime::Handle::enter);
                    write_loop(&shared, store, deliver, &poke)
                }
            })?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
            reader,
        })
    }

    /// Queues `queued`. Refused only for a chat line, when the queue already holds
    /// `capacity_lines` lines; other items (presence) are bounded by the connections.
    pub(crate) fn push(&self, queued: Queued<T>) -> Result<(), QueueFull> {
        let mut queue = lock(&self.shared.queue);
        if queued.line.is_some() {
            // After `finish`, nothing would commit the line.
            if queue.lines >= self.shared.capacity_lines || queue.closed {
                return Err(QueueFull);
            }
            queue.lines += 1;
        }
        queue.items.push_back(queued);
        drop(queue);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Commits and hands back everything queued, then stops the writer. Blocking.
    pub(crate) fn finish(&self) {
        self.close();
        if let Some(thread) = lock(&self.thread).take()
            && thread.join().is_err()
        {
            tracing::error!("the history writer panicked");
        }
    }
}

impl<T> Sequencer<T> {
    /// Up to `limit` stored lines before id `before` (the newest if `None`), oldest
    /// first. Blocking.
    pub(crate) fn page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<StoredLine>, HistoryError> {
        self.reader.page(before, limit)
    }

    /// Up to `limit` stored lines after id `after`, oldest first. Blocking.
    pub(crate) fn page_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredLine>, HistoryError> {
        self.reader.page_after(after, limit)
    }
}

impl<T> Sequencer<T> {
    /// Lets the writer end once it has drained what is queued.
    fn close(&self) {
        lock(&self.shared.queue).closed = true;
        self.shared.wake.notify_one();
    }
}

impl<T> Drop for Sequencer<T> {
    fn drop(&mut self) {
        self.close();
    }
}

fn write_loop<T>(
    shared: &Shared<T>,
    mut store: Store,
    mut deliver: impl FnMut(Vec<Committed<T>>),
    checkpoint: &std::sync::mpsc::SyncSender<()>,
) {
    let mut commits = 0;
    // Whether lines past the retention may be left: at the start, after a deletion that
    // hit its limit, after a wait for lines that timed out (lines age).
    let mut trim_more = !store.retention.keeps_everything();
    let mut wal_cap = WAL_MAX_BYTES;
    loop {
        let (batch, backlog): (VecDeque<Queued<T>>, bool) = {
            let mut queue = lock(&shared.queue);
            while queue.items.is_empty() && !queue.closed && !trim_more {
                if store.retention.keeps_everything() {
                    queue = shared
                        .wake
                        .wait(queue)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                } else {
                    let (waited, timeout) = shared
                        .wake
                        .wait_timeout(queue, store.retention_idle)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    queue = waited;
                    trim_more = timeout.timed_out();
                }
            }
            if queue.items.is_empty() {
                if queue.closed {
                    return; // closed and drained
                }
                drop(queue);
                trim_more = trim(&mut store, &mut commits, checkpoint);
                continue;
            }
            // The lines stay counted until committed: the queue's bound covers them.
            // What stays is a new queue: it starts again small, not at the size of its
            // last burst.
            let take = queue.items.len().min(shared.batch_items);
            let rest = queue.items.split_off(take);
            let backlog = !rest.is_empty();
            (std::mem::replace(&mut queue.items, rest), backlog)
        };
        let ids = commit(shared, &mut store, &batch);
        let stored_lines = !ids.is_empty();
        if stored_lines {
            count_commit(&mut commits, checkpoint);
        }
        let mut ids = ids.into_iter().peekable();
        let committed = batch
            .into_iter()
            .map(|queued| {
                let id = queued.line.as_ref().and_then(|_| ids.next());
                // The whole batch is on disk by now: a replay stops before the first
                // line queued after its item, which its member will get live.
                let replayed = match queued.replay {
                    0 => Vec::new(),
                    n => read_page(&store.connection, ids.peek().copied(), n).unwrap_or_else(|e| {
                        tracing::error!("cannot read the history to replay: {e}");
                        Vec::new()
                    }),
                };
                Committed {
                    item: queued.item,
                    id,
                    replayed,
                    members: None,
                }
            })
            .collect();
        // A delivery that panics loses its own batch's relay, not the writer: every
        // later line would otherwise be refused until a restart.
        let delivering = Instant::now();
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| deliver(committed))) {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!("relaying a committed batch panicked: {why}");
        }
        if backlog {
            // Relaying only queues the events; the connections' writers, on the same
            // cores, still have to send them. Handing over the next part at once would
            // overflow the queues of members that are keeping up: wait as long as the
            // relay took, which gives the writers the time to send this part out.
            std::thread::sleep(delivering.elapsed());
        }
        if stored_lines {
            trim_more = trim(&mut store, &mut commits, checkpoint);
            cap_wal(&store, &mut wal_cap);
        }
    }
}

/// Commits the batch's lines, retrying until the disk takes them: what was accepted is
/// never dropped. Returns their ids.
fn commit<T>(shared: &Shared<T>, store: &mut Store, batch: &VecDeque<Queued<T>>) -> Vec<i64> {
    let lines = batch.iter().filter_map(|queued| queued.line.as_ref());
    let count = lines.clone().count();
    if count == 0 {
        return Vec::new();
    }
    loop {
        let started = Instant::now();
        match store.append(lines.clone()) {
            Ok(ids) => {
                telemetry::history_committed(count, started.elapsed());
                lock(&shared.queue).lines -= count;
                return ids;
            }
            Err(e) => {
                telemetry::history_commit_failed();
                tracing::error!(
                    path = %store.path.display(),
                    lines = count,
                    "cannot commit to the history, retrying: {e}"
                );
                std::thread::sleep(COMMIT_RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::log::line::NewLine;
    use crate::log::sqlite::testing::line;

    async fn within<T>(received: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), received)
            .await
            .expect("received in time")
    }

    #[tokio::test]
    async fn deliveries_may_spawn_tasks_and_a_panicking_one_stops_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.db")).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let sequencer = Sequencer::start(store, 100, 1000, move |batch: Vec<Committed<u32>>| {
            for done in batch {
                seen_tx.send(done.item).unwrap();
                assert_ne!(done.item, 1, "a relay that panics");
                // As socketioxide does when it runs a disconnect handler.
                let tx = tx.clone();
                tokio::spawn(async move { tx.send(done.item).unwrap() });
            }
        })
        .unwrap();
        for item in 0..3 {
            let line = Some(line(&format!("line {item}")));
            let queued = Queued {
                item,
                line,
                replay: 0,
            };
            sequencer.push(queued).unwrap();
            // One batch each: the panic takes its own batch only.
            assert_eq!(within(seen.recv()).await, Some(item));
        }
        assert_eq!(within(rx.recv()).await, Some(0));
        assert_eq!(within(rx.recv()).await, Some(2));
        tokio::task::spawn_blocking(move || sequencer.finish())
            .await
            .unwrap();
    }

    #[test]
    fn batches_come_back_in_order_with_ids_after_their_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let store = Store::open(&path).unwrap();
        let reader = store.reader();
        let (tx, rx) = std::sync::mpsc::channel();
        let sequencer = Sequencer::start(store, 100, 1000, move |batch: Vec<Committed<u32>>| {
            for done in batch {
                tx.send((done.item, done.id, done.replayed.len())).unwrap();
            }
        })
        .unwrap();
        for n in 0..50u32 {
            let line = (n % 5 != 0).then(|| line(&format!("line {n}")));
            let replay = if n == 49 { 10 } else { 0 };
            sequencer
                .push(Queued {
                    item: n,
                    line,
                    replay,
                })
                .unwrap();
        }
        sequencer.finish();
        let got: Vec<_> = rx.iter().collect();
        assert_eq!(got.len(), 50);
        let mut last_id = 0;
        for (n, (item, id, replayed)) in got.into_iter().enumerate() {
            assert_eq!(item, n as u32);
            assert_eq!(id.is_some(), n % 5 != 0);
            if let Some(id) = id {
                assert!(id > last_id);
                last_id = id;
            }
            assert_eq!(replayed, if n == 49 { 10 } else { 0 });
        }
        let page = reader.page(None, 1000).unwrap();
        assert_eq!(page.len(), 40);
        assert_eq!(page[0].text, "line 1");
        assert_eq!(page[39].text, "line 49");
        let older = reader.page(Some(page[2].id), 2).unwrap();
        let newer = reader.page_after(page[0].id, 2).unwrap();
        assert_eq!(newer, page[1..3]);
        assert_eq!(reader.page_after(page[page.len() - 1].id, 2).unwrap(), []);
        assert_eq!(older, page[..2].to_vec());
    }

    /// A sequencer whose deliveries report each batch (as `report` makes of it) and then
    /// wait for a `go`: items pushed meanwhile queue behind the held delivery. Dropping
    /// the `go` sender lets every later delivery through.
    fn held_sequencer<R: Send + 'static>(
        dir: &Path,
        capacity_lines: usize,
        batch_items: usize,
        report: impl Fn(Vec<Committed<u32>>) -> R + Send + 'static,
    ) -> (
        Sequencer<u32>,
        std::sync::mpsc::Receiver<R>,
        std::sync::mpsc::Sender<()>,
    ) {
        let store = Store::open(&dir.join("h.db")).unwrap();
        let (in_tx, in_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let sequencer = Sequencer::start(store, capacity_lines, batch_items, move |batch| {
            let _ = in_tx.send(report(batch));
            let _ = go_rx.recv();
        })
        .unwrap();
        (sequencer, in_rx, go_tx)
    }

    #[test]
    fn a_replay_ends_before_the_lines_queued_after_it() {
        let dir = tempfile::tempdir().unwrap();
        // The first delivery is held: the next three items commit as one batch.
        let (sequencer, in_rx, go_tx) = held_sequencer(dir.path(), 100, 1000, |batch| {
            let replays: Vec<(u32, Vec<String>)> = batch
                .into_iter()
                .map(|done| {
                    (
                        done.item,
                        done.replayed.into_iter().map(|l| l.text).collect(),
                    )
                })
                .collect();
            replays
        });
        let queued = |item, line: Option<NewLine>, replay| Queued { item, line, replay };
        sequencer.push(queued(0, Some(line("first")), 0)).unwrap();
        assert_eq!(in_rx.recv().unwrap(), [(0, vec![])]);
        sequencer.push(queued(1, Some(line("a")), 0)).unwrap();
        sequencer.push(queued(2, None, 5)).unwrap();
        sequencer.push(queued(3, Some(line("b")), 0)).unwrap();
        go_tx.send(()).unwrap();
        assert_eq!(
            in_rx.recv().unwrap(),
            [
                (1, vec![]),
                (2, vec!["first".to_string(), "a".to_string()]),
                (3, vec![]),
            ]
        );
        drop(go_tx);
        sequencer.finish();
    }

    #[test]
    fn what_piles_up_behind_a_slow_commit_comes_back_in_batches_of_the_set_size() {
        let dir = tempfile::tempdir().unwrap();
        // The first delivery is held while 10 more items queue behind it.
        let (sequencer, in_rx, go_tx) = held_sequencer(dir.path(), 100, 4, |batch| {
            batch.into_iter().map(|done| done.item).collect::<Vec<_>>()
        });
        let queued = |item: u32| Queued {
            item,
            line: item
                .is_multiple_of(2)
                .then(|| line(&format!("line {item}"))),
            replay: 0,
        };
        sequencer.push(queued(0)).unwrap();
        assert_eq!(in_rx.recv().unwrap(), [0]);
        for item in 1..=10 {
            sequencer.push(queued(item)).unwrap();
        }
        drop(go_tx);
        assert_eq!(in_rx.recv().unwrap(), [1, 2, 3, 4]);
        assert_eq!(in_rx.recv().unwrap(), [5, 6, 7, 8]);
        assert_eq!(in_rx.recv().unwrap(), [9, 10]);
        sequencer.finish();
        let texts: Vec<String> = Store::open(&dir.path().join("h.db"))
            .unwrap()
            .reader()
            .page(None, 100)
            .unwrap()
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(
            texts,
            ["line 0", "line 2", "line 4", "line 6", "line 8", "line 10"]
        );
    }

    #[test]
    fn each_part_of_a_backlog_is_followed_by_a_pause_as_long_as_its_relay() {
        const RELAY: Duration = Duration::from_millis(50);
        let dir = tempfile::tempdir().unwrap();
        // Every relay takes RELAY; the first is held while three items queue behind it,
        // which then come back one per batch: two parts of a backlog, then the last.
        let (sequencer, in_rx, go_tx) = held_sequencer(dir.path(), 100, 1, |batch| {
            let started = Instant::now();
            std::thread::sleep(RELAY);
            (batch[0].item, started)
        });
        let queued = |item| Queued {
            item,
            line: None,
            replay: 0,
        };
        sequencer.push(queued(0)).unwrap();
        assert_eq!(in_rx.recv().unwrap().0, 0);
        for item in 1..=3 {
            sequencer.push(queued(item)).unwrap();
        }
        drop(go_tx);
        let started: Vec<(u32, Instant)> = (0..3).map(|_| in_rx.recv().unwrap()).collect();
        assert_eq!(
            started.iter().map(|(item, _)| *item).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        // Relay, then a pause at least as long, before the next part.
        for pair in started.windows(2) {
            let gap = pair[1].1 - pair[0].1;
            assert!(gap >= 2 * RELAY, "{gap:?} between parts");
        }
        sequencer.finish();
    }

    #[test]
    fn a_full_queue_refuses_lines_but_not_presence() {
        let dir = tempfile::tempdir().unwrap();
        // Each delivery says it has begun, then waits for `go`: the queue fills behind it.
        let (sequencer, in_rx, go_tx) = held_sequencer(dir.path(), 2, 1000, |_| ());
        let queued = |line: Option<NewLine>| Queued {
            item: 0,
            line,
            replay: 0,
        };
        sequencer.push(queued(Some(line("first")))).unwrap();
        in_rx.recv().unwrap(); // committed, and its delivery is held
        sequencer.push(queued(Some(line("a")))).unwrap();
        sequencer.push(queued(Some(line("b")))).unwrap();
        assert_eq!(sequencer.push(queued(Some(line("c")))), Err(QueueFull));
        sequencer.push(queued(None)).unwrap();
        go_tx.send(()).unwrap();
        in_rx.recv().unwrap(); // a, b and the presence item committed together
        assert_eq!(sequencer.push(queued(Some(line("c")))), Ok(()));
        drop(go_tx);
        sequencer.finish();
    }
}
