//! The history file: opened, its schema created and migrated (`PRAGMA user_version`),
//! its durability set ([`Durability`]), and lines committed to it in one transaction a
//! batch ([`Store`]); which lines it keeps ([`Retention`], applied by the writer, see
//! `upkeep`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};

use super::reader::Reader;
use crate::log::error::HistoryError;
use crate::log::line::NewLine;

/// How often a writer that gets no line checks for lines past their age.
pub(crate) const RETENTION_IDLE: Duration = Duration::from_secs(60);

/// The schema, one entry per version: `migrations[n]` takes a database from version `n`
/// to `n + 1`.
const MIGRATIONS: &[&str] = &["CREATE TABLE lines (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        name TEXT NOT NULL,
        protocol TEXT NOT NULL,
        text TEXT NOT NULL
    );"];

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
    pub(crate) keep_lines: u64,
    /// Keep the lines accepted at most this long ago; `None`: no limit.
    pub(crate) keep_age: Option<Duration>,
}

impl Retention {
    /// Whether every line is kept.
    pub(crate) fn keeps_everything(&self) -> bool {
        self.keep_lines == 0 && self.keep_age.is_none()
    }
}

/// The time retention by age counts from: [`SystemTime::now`] but in tests.
type Clock = Box<dyn Fn() -> SystemTime + Send>;

/// The history file, opened and migrated.
pub struct Store {
    pub(super) connection: Connection,
    pub(super) path: PathBuf,
    pub(super) retention: Retention,
    pub(super) clock: Clock,
    /// [`RETENTION_IDLE`] but in tests.
    pub(super) retention_idle: Duration,
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
    pub(crate) fn keeping(mut self, retention: Retention) -> Result<Self, HistoryError> {
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
    pub(super) fn append<'a>(
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
}

/// Milliseconds since the Unix epoch.
pub(super) fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::sqlite::testing::line;

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
