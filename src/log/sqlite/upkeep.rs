//! Keeping the history file in bounds: retention (the writer deletes the lines past
//! it, at most [`TRIM_BATCH_ROWS`] a transaction, after each commit and every
//! [`RETENTION_IDLE`](super::store::RETENTION_IDLE) while no line comes; the pages freed beyond [`FREE_PAGES_KEPT`]
//! go back to the file system) and the write-ahead log, emptied past [`WAL_MAX_BYTES`]
//! ([`cap_wal`]).

use std::time::{Duration, Instant, UNIX_EPOCH};

use super::store::{Store, unix_ms};

/// Most lines one retention deletion removes, in a transaction of its own after a commit:
/// a few milliseconds of the writer's time (1,000 lines of 200 characters, the pages
/// they free given back: 4 to 32 ms, mostly 8, measured with `synchronous = FULL`), so
/// that the next commit never waits long. Lines coming steadily need far less: each
/// deletion removes about as many lines as the commit before it added.
/// A larger excess (retention just lowered) goes in several, one after each commit and
/// back to back while no line comes.
pub(crate) const TRIM_BATCH_ROWS: usize = 1_000;

/// Free pages a file kept with retention holds on to after a deletion, for the next
/// lines to fill (without it, every deletion would shrink the file and every commit grow
/// it again); the rest are given back to the file system (`PRAGMA incremental_vacuum`).
pub(crate) const FREE_PAGES_KEPT: i64 = 64;

/// Largest write-ahead log, in bytes: past it, the writer empties the log, lines
/// waiting meanwhile (see [`cap_wal`]).
pub(crate) const WAL_MAX_BYTES: u64 = 4 << 20;

/// Longest the writer waits, lines held up, for the checkpointer's copy to end and for
/// readers to leave the log before it empties it; if they do not, it tries again once
/// another [`WAL_MAX_BYTES`] of log has been written.
const WAL_CAP_WAIT: Duration = Duration::from_millis(200);

impl Store {
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

/// Empties the write-ahead log if it is longer than `cap` ([`WAL_MAX_BYTES`], more after
/// a try that failed), the lines waiting meanwhile.
///
/// Why: the log starts again from its beginning only when a commit finds all of it
/// copied into the database file, which, with lines coming without a pause, the
/// checkpointer never lets it do (the writer commits while it copies): the log then only
/// grows, with retention or without (measured in docs/operations.md, "Retention"). The
/// checkpointer has copied most of it by now: emptying it costs the writer the rest and
/// an fsync of the database file, once per [`WAL_MAX_BYTES`] of log.
pub(super) fn cap_wal(store: &Store, cap: &mut u64) {
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

/// Deletes a batch of lines past the retention (a commit too, for the checkpointer);
/// returns whether more may be left. A deletion that fails is logged and tried again
/// after the next commit.
pub(super) fn trim(
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

/// Commits between two checkpoints of the write-ahead log into the database file. The
/// checkpoint runs on a thread of its own: done by the writer (SQLite's default), its
/// fsync of the database file would hold up every line behind it, for hundreds of
/// milliseconds on a slow disk.
pub(super) const CHECKPOINT_COMMITS: usize = 256;

/// Counts a commit, and pokes the checkpointer every [`CHECKPOINT_COMMITS`].
pub(super) fn count_commit(commits: &mut usize, checkpoint: &std::sync::mpsc::SyncSender<()>) {
    *commits += 1;
    if commits.is_multiple_of(CHECKPOINT_COMMITS) {
        // Full: a checkpoint is waiting to run already.
        let _ = checkpoint.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    use rusqlite::Connection;

    use super::*;
    use crate::log::sqlite::testing::line;
    use crate::log::sqlite::{Durability, Retention, Sequencer};
    use crate::log::{Committed, MAX_PAGE_LINES, NewLine, Queued, StoredLine};

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
}
