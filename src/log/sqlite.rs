//! The single-node [`Log`]: durable chat history in SQLite, and the sequencer that
//! commits every lobby chat line before it is relayed.
//!
//! Storage: one table, `lines(id, time_ms, name, protocol, text)`, in a SQLite file
//! (`rusqlite`, SQLite compiled in: nothing to install). The schema is created and
//! migrated at start (`PRAGMA user_version`). The file is in WAL mode; with
//! [`Durability::Full`] (the default, `synchronous = FULL`) a committed line survives a
//! crash of the process and of the machine, with [`Durability::Normal`] (`synchronous =
//! NORMAL`) a crash of the process only: a power cut may take the latest commits back,
//! and commits wait for no fsync.
//!
//! The [`Sequencer`] is the lobby's one writer: a thread of its own (SQLite is blocking;
//! no tokio worker ever waits for the disk) that takes what is queued, commits every
//! chat line that arrived while the previous commit ran in one transaction (group
//! commit: one fsync per batch, never one per line), and only then hands the batch, in
//! queue order, back to the lobby for relaying. Relay order is therefore commit order,
//! which is id order, and nothing is relayed that is not on disk. A batch holds at most
//! a set number of items: what piled up behind a slow commit is released in parts,
//! each of which every member's queue can take, paced so that the connections' writers
//! send one part out before the next comes (see [`Sequencer::start`]).
//!
//! Readers ([`Reader`]) open their own connections; WAL lets them read while the writer
//! commits. The log is copied into the database file by a checkpointer thread, and
//! emptied by the writer once it is past [`WAL_MAX_BYTES`] (see [`cap_wal`]).
//!
//! Retention ([`Retention`], off by default: every line is kept): the writer deletes the
//! lines past it after each commit (and, while no line comes, every [`RETENTION_IDLE`]),
//! in transactions of their own of at most [`TRIM_BATCH_ROWS`] lines, so that a commit
//! never waits long behind a deletion. Lines are deleted oldest first: by count, every id
//! but the newest `keep_lines` ones (ids are given without gaps, so that is the latest
//! `keep_lines` lines); by age, lines from the oldest on up to the first one still young
//! enough (a line stamped earlier than one before it, the clock having been set back,
//! waits for those before it). A file kept with retention is in `auto_vacuum =
//! INCREMENTAL` mode (an existing file is converted, one `VACUUM`, the first time it is
//! opened with retention) and gives back to the file system the pages a deletion frees
//! beyond [`FREE_PAGES_KEPT`].

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, params};

use super::{AppendRefusal, Committed, Log, NewLine, QueueFull, Queued, StoredLine};
use crate::locks::lock;
use crate::protocol::Protocol;
use crate::telemetry;

/// Commits between two checkpoints of the write-ahead log into the database file. The
/// checkpoint runs on a thread of its own: done by the writer (SQLite's default), its
/// fsync of the database file would hold up every line behind it, for hundreds of
/// milliseconds on a slow disk.
const CHECKPOINT_COMMITS: usize = 256;

/// Most lines one retention deletion removes, in a transaction of its own after a commit:
/// a few milliseconds of the writer's time (1,000 lines of 200 characters, the pages
/// they free given back: 4 to 32 ms, mostly 8, measured with `synchronous = FULL`), so
/// that the next commit never waits long. Lines coming steadily need far less: each
/// deletion removes about as many lines as the commit before it added.
/// A larger excess (retention just lowered) goes in several, one after each commit and
/// back to back while no line comes.
pub const TRIM_BATCH_ROWS: usize = 1_000;

/// How often a writer that gets no line checks for lines past their age.
pub const RETENTION_IDLE: Duration = Duration::from_secs(60);

/// Free pages a file kept with retention holds on to after a deletion, for the next
/// lines to fill (without it, every deletion would shrink the file and every commit grow
/// it again); the rest are given back to the file system (`PRAGMA incremental_vacuum`).
pub const FREE_PAGES_KEPT: i64 = 64;

/// Largest write-ahead log, in bytes: past it, the writer empties the log, lines
/// waiting meanwhile (see [`cap_wal`]).
pub const WAL_MAX_BYTES: u64 = 4 << 20;

/// Longest the writer waits, lines held up, for the checkpointer's copy to end and for
/// readers to leave the log before it empties it; if they do not, it tries again once
/// another [`WAL_MAX_BYTES`] of log has been written.
const WAL_CAP_WAIT: Duration = Duration::from_millis(200);

/// Pause before retrying a commit that failed (disk full, I/O error): the batch stays
/// queued meanwhile, nothing of it is relayed or dropped.
const COMMIT_RETRY: Duration = Duration::from_millis(500);

/// The schema, one entry per version: `migrations[n]` takes a database from version `n`
/// to `n + 1`.
const MIGRATIONS: &[&str] = &["CREATE TABLE lines (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        name TEXT NOT NULL,
        protocol TEXT NOT NULL,
        text TEXT NOT NULL
    );"];

/// Why the history cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file cannot be opened, is not a SQLite database, or cannot be written.
    #[error("cannot open the history database {path}: {cause}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said (in the message, so not also a `source`).
        cause: rusqlite::Error,
    },
    /// The file was written by a newer chatterbox.
    #[error(
        "the history database {path} has schema version {found}; this chatterbox knows up to {known}"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The newest version this build knows.
        known: usize,
    },
    /// A read failed.
    #[error("cannot read the history: {0}")]
    Read(rusqlite::Error),
    /// A read of the cluster's history in Redis failed.
    #[error("cannot read the history from Redis: {0}")]
    Redis(redis::RedisError),
}

/// What a commit waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Durability {
    /// The disk (an fsync per group commit): committed lines survive a power cut.
    #[default]
    Full,
    /// The operating system: committed lines survive a crash of chatterbox (`kill -9`),
    /// not of the machine; no fsync on the way of a line.
    Normal,
}

/// Which lines the history keeps; the default keeps every line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep the latest this many lines; 0: no limit.
    pub keep_lines: u64,
    /// Keep the lines accepted at most this long ago; `None`: no limit.
    pub keep_age: Option<Duration>,
}

impl Retention {
    /// Whether every line is kept.
    pub fn keeps_everything(&self) -> bool {
        self.keep_lines == 0 && self.keep_age.is_none()
    }
}

/// The time retention by age counts from: [`SystemTime::now`] but in tests.
type Clock = Box<dyn Fn() -> SystemTime + Send>;

/// The history file, opened and migrated.
pub struct Store {
    connection: Connection,
    path: PathBuf,
    retention: Retention,
    clock: Clock,
    /// [`RETENTION_IDLE`] but in tests.
    retention_idle: Duration,
}

impl Store {
    /// Opens (creating it if needed) and migrates the history file at `path`, with
    /// [`Durability::Full`].
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        Self::open_with(path, Durability::Full)
    }

    /// Opens (creating it if needed) and migrates the history file at `path`.
    pub(crate) fn open_with(path: &Path, durability: Durability) -> Result<Self, HistoryError> {
        let open_error = |cause| HistoryError::Open {
            path: path.to_owned(),
            cause,
        };
        let mut connection = Connection::open(path).map_err(open_error)?;
        // The first statement reads the file: a file that is not SQLite fails here.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(open_error)?;
        connection
            .pragma_update(
                None,
                "synchronous",
                match durability {
                    Durability::Full => "FULL",
                    Durability::Normal => "NORMAL",
                },
            )
            .map_err(open_error)?;
        // Checkpoints are the checkpointer thread's (see CHECKPOINT_COMMITS).
        connection
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(open_error)?;
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open_error)?;
        let known = MIGRATIONS.len();
        let start = usize::try_from(version).ok().filter(|v| *v <= known);
        let Some(start) = start else {
            return Err(HistoryError::TooNew {
                path: path.to_owned(),
                found: version,
                known,
            });
        };
        if start < known {
            let migrate = connection.transaction().map_err(open_error)?;
            for migration in &MIGRATIONS[start..] {
                migrate.execute_batch(migration).map_err(open_error)?;
            }
            migrate
                .pragma_update(None, "user_version", known as i64)
                .map_err(open_error)?;
            migrate.commit().map_err(open_error)?;
            tracing::info!(path = %path.display(), version = known, "history schema migrated");
        }
        Ok(Self {
            connection,
            path: path.to_owned(),
            retention: Retention::default(),
            clock: Box::new(SystemTime::now),
            retention_idle: RETENTION_IDLE,
        })
    }

    /// Keeps only what `retention` says from now on (the writer deletes the rest, see the
    /// module doc). A file kept with retention is converted to `auto_vacuum =
    /// INCREMENTAL` first: once, with a `VACUUM` that rewrites it (logged).
    pub fn keeping(mut self, retention: Retention) -> Result<Self, HistoryError> {
        self.retention = retention;
        if retention.keeps_everything() {
            return Ok(self);
        }
        let open_error = |cause| HistoryError::Open {
            path: self.path.clone(),
            cause,
        };
        // 2: INCREMENTAL. The mode of a file that has tables changes only with a VACUUM,
        // which runs outside any transaction.
        let mode: i64 = self
            .connection
            .pragma_query_value(None, "auto_vacuum", |row| row.get(0))
            .map_err(open_error)?;
        if mode != 2 {
            let started = Instant::now();
            self.connection
                .execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")
                .map_err(open_error)?;
            tracing::info!(path = %self.path.display(), took = ?started.elapsed(),
                "history converted to auto_vacuum = INCREMENTAL for retention");
        }
        Ok(self)
    }

    /// A reader of the same file, for the API.
    pub(crate) fn reader(&self) -> Reader {
        Reader {
            path: Arc::from(self.path.as_path()),
            idle: Arc::default(),
        }
    }

    /// Commits `lines` in one transaction; returns their ids, in order.
    fn append<'a>(
        &mut self,
        lines: impl Iterator<Item = &'a NewLine>,
    ) -> rusqlite::Result<Vec<i64>> {
        let transaction = self.connection.transaction()?;
        let mut ids = Vec::new();
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO lines (time_ms, name, protocol, text) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for line in lines {
                insert.execute(params![
                    unix_ms(line.time),
                    &*line.name,
                    line.protocol.as_str(),
                    &*line.text
                ])?;
                ids.push(transaction.last_insert_rowid());
            }
        }
        transaction.commit()?;
        Ok(ids)
    }

    /// Deletes at most [`TRIM_BATCH_ROWS`] of the oldest lines past the retention, in one
    /// transaction; returns how many it deleted.
    fn trim(&mut self) -> rusqlite::Result<usize> {
        if self.retention.keeps_everything() {
            return Ok(0);
        }
        let oldest_kept_ms = self
            .retention
            .keep_age
            .map(|age| unix_ms((self.clock)().checked_sub(age).unwrap_or(UNIX_EPOCH)));
        let transaction = self.connection.transaction()?;
        let deleted = {
            // Ids up to this one are past the count.
            let past_count = match i64::try_from(self.retention.keep_lines) {
                Ok(0) | Err(_) => 0,
                Ok(keep) => transaction
                    .query_row("SELECT ifnull(max(id), 0) FROM lines", [], |row| {
                        row.get::<_, i64>(0)
                    })?
                    .saturating_sub(keep),
            };
            let mut oldest =
                transaction.prepare_cached("SELECT id, time_ms FROM lines ORDER BY id LIMIT ?1")?;
            let mut rows = oldest.query([TRIM_BATCH_ROWS as i64])?;
            let mut last = None;
            while let Some(row) = rows.next()? {
                let (id, time_ms): (i64, i64) = (row.get(0)?, row.get(1)?);
                if id > past_count && oldest_kept_ms.is_none_or(|oldest| time_ms >= oldest) {
                    break;
                }
                last = Some(id);
            }
            drop(rows);
            match last {
                None => 0,
                Some(last) => {
                    let deleted = transaction
                        .prepare_cached("DELETE FROM lines WHERE id <= ?1")?
                        .execute([last])?;
                    let free: i64 =
                        transaction.query_row("PRAGMA freelist_count", [], |row| row.get(0))?;
                    if free > FREE_PAGES_KEPT {
                        // It frees one page per row it returns.
                        let mut vacuum = transaction.prepare(&format!(
                            "PRAGMA incremental_vacuum({})",
                            free - FREE_PAGES_KEPT
                        ))?;
                        let mut freed = vacuum.query([])?;
                        while freed.next()?.is_some() {}
                    }
                    deleted
                }
            }
        };
        transaction.commit()?;
        Ok(deleted)
    }
}

/// Reads pages of the history on connections of its own (cheap to clone).
#[derive(Clone)]
pub(crate) struct Reader {
    path: Arc<Path>,
    /// Connections kept for the next read.
    idle: Arc<Mutex<Vec<Connection>>>,
}

/// Connections a [`Reader`] keeps open between reads.
const IDLE_READERS: usize = 4;

impl Reader {
    /// Up to `limit` lines before id `before` (the newest if `None`), oldest first.
    /// Blocking: call it from `spawn_blocking`.
    pub(crate) fn page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<StoredLine>, HistoryError> {
        self.read(Window::Before(before.unwrap_or(i64::MAX)), limit)
    }

    /// Up to `limit` lines after id `after` (the oldest of them), oldest first.
    /// Blocking: call it from `spawn_blocking`.
    pub(crate) fn page_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredLine>, HistoryError> {
        self.read(Window::After(after), limit)
    }

    fn read(&self, window: Window, limit: usize) -> Result<Vec<StoredLine>, HistoryError> {
        let connection = match lock(&self.idle).pop() {
            Some(connection) => connection,
            None => Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(HistoryError::Read)?,
        };
        let page = read_window(&connection, window, limit).map_err(HistoryError::Read)?;
        let mut idle = lock(&self.idle);
        if idle.len() < IDLE_READERS {
            idle.push(connection);
        }
        Ok(page)
    }
}

/// Which lines a page holds.
#[derive(Debug, Clone, Copy)]
enum Window {
    /// The latest with an id below this.
    Before(i64),
    /// The oldest with an id above this.
    After(i64),
}

fn read_page(
    connection: &Connection,
    before: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<StoredLine>> {
    read_window(
        connection,
        Window::Before(before.unwrap_or(i64::MAX)),
        limit,
    )
}

fn read_window(
    connection: &Connection,
    window: Window,
    limit: usize,
) -> rusqlite::Result<Vec<StoredLine>> {
    let (mut select, from) = match window {
        Window::Before(before) => (
            connection.prepare_cached(
                "SELECT id, time_ms, name, protocol, text FROM lines
                 WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )?,
            before,
        ),
        Window::After(after) => (
            connection.prepare_cached(
                "SELECT id, time_ms, name, protocol, text FROM lines
                 WHERE id > ?1 ORDER BY id ASC LIMIT ?2",
            )?,
            after,
        ),
    };
    let rows = select.query_map(params![from, limit as i64], |row| {
        Ok(StoredLine {
            id: row.get(0)?,
            time_ms: row.get(1)?,
            name: row.get(2)?,
            protocol: stored_protocol(row, 3)?,
            text: row.get(4)?,
        })
    })?;
    let mut page = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    if let Window::Before(_) = window {
        page.reverse();
    }
    Ok(page)
}

/// The protocol stored in column `index` (as [`Protocol::as_str`]); any other text is a
/// read error, not a guess.
fn stored_protocol(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Protocol> {
    let name: String = row.get(index)?;
    Protocol::parse(&name).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unknown protocol {name:?}").into(),
        )
    })
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

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

impl<T: Send + 'static> Log<T> for Sequencer<T> {
    fn append(&self, queued: Queued<T>) -> Result<(), AppendRefusal> {
        Ok(self.push(queued)?)
    }

    fn page(&self, before: Option<i64>, limit: usize) -> Result<Vec<StoredLine>, HistoryError> {
        self.reader.page(before, limit)
    }

    fn page_after(&self, after: i64, limit: usize) -> Result<Vec<StoredLine>, HistoryError> {
        self.reader.page_after(after, limit)
    }

    fn finish(&self) {
        Sequencer::finish(self);
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

/// Empties the write-ahead log if it is longer than `cap` ([`WAL_MAX_BYTES`], more after
/// a try that failed), the lines waiting meanwhile.
///
/// Why: the log starts again from its beginning only when a commit finds all of it
/// copied into the database file, which, with lines coming without a pause, the
/// checkpointer never lets it do (the writer commits while it copies): the log then only
/// grows, with retention or without (measured in docs/operations.md, "Retention"). The
/// checkpointer has copied most of it by now: emptying it costs the writer the rest and
/// an fsync of the database file, once per [`WAL_MAX_BYTES`] of log.
fn cap_wal(store: &Store, cap: &mut u64) {
    let mut wal = store.path.clone().into_os_string();
    wal.push("-wal");
    let length = std::fs::metadata(&wal).map_or(0, |m| m.len());
    if length <= *cap {
        return;
    }
    *cap = length + WAL_MAX_BYTES;
    let started = Instant::now();
    // Readers are waited for with the busy timeout; the checkpointer, in the loop.
    if let Err(e) = store.connection.busy_timeout(WAL_CAP_WAIT) {
        tracing::warn!("cannot set the history's busy timeout: {e}");
    }
    loop {
        // Busy (1): the checkpointer is copying, or a reader held on past the busy
        // timeout.
        match store
            .connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                row.get::<_, i64>(0)
            }) {
            Ok(0) => {
                tracing::debug!(length, took = ?started.elapsed(), "history log emptied");
                *cap = WAL_MAX_BYTES;
                return;
            }
            Ok(_) if started.elapsed() < WAL_CAP_WAIT => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(_) => {
                tracing::warn!(length, "cannot empty the history log: busy");
                return;
            }
            Err(e) => {
                tracing::warn!(length, "cannot empty the history log: {e}");
                return;
            }
        }
    }
}

/// Counts a commit, and pokes the checkpointer every [`CHECKPOINT_COMMITS`].
fn count_commit(commits: &mut usize, checkpoint: &std::sync::mpsc::SyncSender<()>) {
    *commits += 1;
    if commits.is_multiple_of(CHECKPOINT_COMMITS) {
        // Full: a checkpoint is waiting to run already.
        let _ = checkpoint.try_send(());
    }
}

/// Deletes a batch of lines past the retention (a commit too, for the checkpointer);
/// returns whether more may be left. A deletion that fails is logged and tried again
/// after the next commit.
fn trim(
    store: &mut Store,
    commits: &mut usize,
    checkpoint: &std::sync::mpsc::SyncSender<()>,
) -> bool {
    let started = Instant::now();
    match store.trim() {
        Ok(deleted) => {
            if deleted > 0 {
                tracing::debug!(deleted, took = ?started.elapsed(), "history trimmed");
                count_commit(commits, checkpoint);
            }
            deleted == TRIM_BATCH_ROWS
        }
        Err(e) => {
            tracing::error!(path = %store.path.display(), "cannot trim the history: {e}");
            false
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
    use super::*;
    use crate::log::MAX_PAGE_LINES;
    use std::sync::atomic::{AtomicI64, Ordering};

    fn line(text: &str) -> NewLine {
        NewLine {
            time: SystemTime::now(),
            name: "ann".into(),
            protocol: Protocol::SocketIo,
            text: text.into(),
        }
    }

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

    #[test]
    fn a_file_that_is_not_sqlite_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(
            &path,
            "these are not the droids you are looking for\n".repeat(100),
        )
        .unwrap();
        let error = Store::open(&path).err().unwrap().to_string();
        assert!(error.contains("notes.txt"), "{error}");
        assert!(error.contains("not a database"), "{error}");
    }

    #[test]
    fn durability_sets_what_a_commit_waits_for() {
        let dir = tempfile::tempdir().unwrap();
        for (durability, synchronous) in [(Durability::Full, 2), (Durability::Normal, 1)] {
            let store = Store::open_with(&dir.path().join("h.db"), durability).unwrap();
            let got: i64 = store
                .connection
                .pragma_query_value(None, "synchronous", |row| row.get(0))
                .unwrap();
            assert_eq!(got, synchronous, "{durability:?}");
        }
    }

    /// A store keeping what `retention` says, with a clock that reads `now` (ms).
    fn kept_store(path: &Path, retention: Retention, now: &Arc<AtomicI64>) -> Store {
        let mut store = Store::open(path).unwrap().keeping(retention).unwrap();
        let now = now.clone();
        store.clock =
            Box::new(move || UNIX_EPOCH + Duration::from_millis(now.load(Ordering::SeqCst) as u64));
        store
    }

    fn by_count(keep_lines: u64) -> Retention {
        Retention {
            keep_lines,
            keep_age: None,
        }
    }

    fn by_age(keep_age: Duration) -> Retention {
        Retention {
            keep_lines: 0,
            keep_age: Some(keep_age),
        }
    }

    fn texts(page: Vec<StoredLine>) -> Vec<String> {
        page.into_iter().map(|line| line.text).collect()
    }

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    #[test]
    fn retention_by_count_keeps_the_latest_lines() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicI64::new(0));
        let retention = by_count(3);
        let mut store = kept_store(&dir.path().join("h.db"), retention, &now);
        let lines: Vec<NewLine> = (1..=5).map(|n| line(&format!("line {n}"))).collect();
        store.append(lines.iter()).unwrap();
        assert_eq!(store.trim().unwrap(), 2);
        assert_eq!(store.trim().unwrap(), 0);
        let reader = store.reader();
        assert_eq!(
            texts(reader.page(None, 100).unwrap()),
            ["line 3", "line 4", "line 5"]
        );
        // A page asked for below the kept lines is empty.
        assert_eq!(reader.page(Some(3), 100).unwrap(), []);
    }

    #[test]
    fn retention_by_age_follows_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicI64::new(0));
        let retention = by_age(2 * DAY);
        let mut store = kept_store(&dir.path().join("h.db"), retention, &now);
        let day_ms = DAY.as_millis() as i64;
        for day in 0..4 {
            let said = NewLine {
                time: UNIX_EPOCH + DAY * day,
                ..line(&format!("day {day}"))
            };
            store.append([said].iter()).unwrap();
        }
        // On day 3, day 1 is exactly two days old: kept.
        now.store(3 * day_ms, Ordering::SeqCst);
        assert_eq!(store.trim().unwrap(), 1);
        assert_eq!(
            texts(store.reader().page(None, 10).unwrap()),
            ["day 1", "day 2", "day 3"]
        );
        now.store(3 * day_ms + 1, Ordering::SeqCst);
        assert_eq!(store.trim().unwrap(), 1);
        now.store(10 * day_ms, Ordering::SeqCst);
        assert_eq!(store.trim().unwrap(), 2);
        assert_eq!(store.reader().page(None, 10).unwrap(), []);
    }

    #[test]
    fn a_deletion_takes_at_most_a_batch_and_the_writer_does_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let now = Arc::new(AtomicI64::new(0));
        let mut store = Store::open(&path).unwrap();
        let lines: Vec<NewLine> = (0..2 * TRIM_BATCH_ROWS + 10)
            .map(|n| line(&format!("line {n}")))
            .collect();
        store.append(lines.iter()).unwrap();
        drop(store);
        let retention = by_count(5);
        let mut store = kept_store(&path, retention, &now);
        assert_eq!(store.trim().unwrap(), TRIM_BATCH_ROWS);
        let reader = store.reader();
        assert_eq!(
            reader.page(None, MAX_PAGE_LINES).unwrap().len(),
            MAX_PAGE_LINES
        );
        // The writer goes on on its own, with no line coming.
        let sequencer = Sequencer::start(store, 10, 10, |_: Vec<Committed<u32>>| {}).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while reader.page(None, 100).unwrap().len() > 5 {
            assert!(Instant::now() < deadline, "the rest was not deleted");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            texts(reader.page(None, 100).unwrap()),
            (2 * TRIM_BATCH_ROWS + 5..2 * TRIM_BATCH_ROWS + 10)
                .map(|n| format!("line {n}"))
                .collect::<Vec<_>>()
        );
        sequencer.finish();
    }

    /// Polls `done` until it holds, for at most 10 s.
    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not in time");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn an_idle_writer_deletes_lines_as_they_age() {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicI64::new(0));
        let retention = by_age(DAY);
        let mut store = kept_store(&dir.path().join("h.db"), retention, &now);
        store.retention_idle = Duration::from_millis(10);
        let said = NewLine {
            time: UNIX_EPOCH,
            ..line("day 0")
        };
        store.append([said].iter()).unwrap();
        let reader = store.reader();
        let sequencer = Sequencer::start(store, 10, 10, |_: Vec<Committed<u32>>| {}).unwrap();
        // Still young enough after the writer's first look.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(texts(reader.page(None, 10).unwrap()), ["day 0"]);
        // A day and a millisecond later, no line having come meanwhile.
        now.store(DAY.as_millis() as i64 + 1, Ordering::SeqCst);
        wait_until("the aged line deleted", || {
            reader.page(None, 10).unwrap().is_empty()
        });
        sequencer.finish();
    }

    #[test]
    fn lowering_the_retention_gives_the_room_back() {
        const KEEP: u64 = 100;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        // Written with every line kept, as before retention: no auto_vacuum.
        let mut store = Store::open_with(&path, Durability::Normal).unwrap();
        let text = "x".repeat(200);
        let lines: Vec<NewLine> = (0..20_000).map(|_| line(&text)).collect();
        store.append(lines.iter()).unwrap();
        drop(store);
        let full = std::fs::metadata(&path).unwrap().len();
        let store = Store::open_with(&path, Durability::Normal)
            .unwrap()
            .keeping(by_count(KEEP))
            .unwrap();
        let mode: i64 = store
            .connection
            .pragma_query_value(None, "auto_vacuum", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, 2, "converted to auto_vacuum = INCREMENTAL");
        let reader = store.reader();
        let sequencer = Sequencer::start(store, 10, 10, |_: Vec<Committed<u32>>| {}).unwrap();
        wait_until("the excess deleted", || {
            reader.page(None, 1000).unwrap().len() == KEEP as usize
        });
        sequencer.finish();
        drop(reader);
        // What is still in the log is the file's too.
        Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let kept = std::fs::metadata(&path).unwrap().len();
        eprintln!(
            "{} lines, keep {KEEP}: db {full} bytes before, {kept} after",
            lines.len()
        );
        // The lines kept take a few pages (200 bytes each: 20 to a page); the file holds
        // on to FREE_PAGES_KEPT free ones, and a few for the schema and the page map.
        let bound = (KEEP / 20 + FREE_PAGES_KEPT as u64 + 10) * page_size(&path);
        assert!(
            kept <= bound,
            "{kept} bytes kept of {full}, more than {bound}"
        );
    }

    fn page_size(path: &Path) -> u64 {
        let size: i64 = Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .unwrap();
        size as u64
    }

    /// The database file and its write-ahead log, in bytes.
    fn file_size(path: &Path) -> u64 {
        let wal = path.with_extension("db-wal");
        [path, wal.as_path()]
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum()
    }

    /// Lines written through the sequencer in [`the_file_stays_bounded_while_lines_keep_coming`];
    /// `CHATTERBOX_RETENTION_LINES` sets another number (the measurement in docs/operations.md).
    fn lines_to_write() -> usize {
        std::env::var("CHATTERBOX_RETENTION_LINES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(20_000)
    }

    #[test]
    fn the_file_stays_bounded_while_lines_keep_coming() {
        const KEEP: u64 = 1_000;
        const PER_COMMIT: usize = 10;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let retention = by_count(KEEP);
        // Normal: the test measures sizes, not fsyncs.
        let store = Store::open_with(&path, Durability::Normal)
            .unwrap()
            .keeping(retention)
            .unwrap();
        let reader = store.reader();
        let (tx, rx) = std::sync::mpsc::channel();
        let sequencer = Sequencer::start(store, 100, 1000, move |batch: Vec<Committed<u32>>| {
            let _ = tx.send(batch.len());
        })
        .unwrap();
        let text = "x".repeat(200);
        let total = lines_to_write();
        let mut largest = 0;
        for _ in 0..total / PER_COMMIT {
            for _ in 0..PER_COMMIT {
                let queued = Queued {
                    item: 0,
                    line: Some(line(&text)),
                    replay: 0,
                };
                sequencer.push(queued).unwrap();
            }
            // One commit's worth at a time, each delivered before the next is queued.
            let mut delivered = 0;
            while delivered < PER_COMMIT {
                delivered += rx.recv().unwrap();
            }
            largest = largest.max(file_size(&path));
        }
        let db_at_end = std::fs::metadata(&path).unwrap().len();
        sequencer.finish();
        let page_size = page_size(&path);
        assert_eq!(
            reader.page(None, 2 * KEEP as usize).unwrap().len(),
            KEEP as usize
        );
        eprintln!(
            "{total} lines, keep {KEEP}: db + wal at most {largest} bytes; db {db_at_end} at the end"
        );
        // The file: the lines kept (and those of one commit), about 250 bytes each with
        // their name and stamp; the free pages it holds on to; a few for the schema, the
        // page map and the tree's inner pages. The log: up to its cap, and the frames of
        // the one commit and deletion that take it past (a few pages each, 64 is ample).
        let file = (KEEP + PER_COMMIT as u64) * 250 / page_size + FREE_PAGES_KEPT as u64 + 10;
        let bound = file * page_size + WAL_MAX_BYTES + 64 * (page_size + 24);
        assert!(largest <= bound, "{largest} bytes, more than {bound}");
    }

    #[test]
    fn reopening_keeps_lines_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let mut store = Store::open(&path).unwrap();
        store.append([line("kept")].iter()).unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        let page = store.reader().page(None, 10).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].text, "kept");
    }
}
