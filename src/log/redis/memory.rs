//! The cluster's state in memory, for the tests: a [`Driver`] whose steps do in one
//! process what the Lua scripts do in Redis ([`super::scripts`]: the same keys, the same
//! answers, leases on the same clock), so that N lobbies in one process are a cluster
//! and its logic (order, presence, seats, leases, gaps) is tested without a
//! `redis-server`, as socketioxide-redis tests N servers on a stub driver. A test can
//! cut a node off ([`MemoryRedis::cut_off`]: every step of its fails as if Redis did not
//! answer) and take the whole Redis away ([`MemoryRedis::go_down`]). The real-Redis
//! tests (tests/cluster.rs, the scripts' own test) stay for what only Redis shows: the
//! scripts themselves, outages of a real server, signals.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::connect::{Connected, join};
use super::driver::{
    Append, Driver, Failure, Kind, LogEntry, Page, READ_BLOCK_MS, RoomKind, Snapshot,
};
use super::history::line_of;
use super::ids;
use super::settings::ClusterSettings;
use crate::chat::millis;
use crate::locks::lock;
use crate::log::seats::ROOM_SEATS;
use crate::log::{HistoryError, StoredLine};

/// One cluster's state, shared by every node of a test (see the module doc).
#[derive(Clone)]
pub(crate) struct MemoryRedis {
    state: Arc<Mutex<State>>,
    /// Bumped whenever an entry is added to the log (wakes the readers).
    added: watch::Sender<u64>,
}

/// What Redis would hold under the cluster's prefix (the keys of the parent module's
/// table), and who cannot reach it.
#[derive(Default)]
struct State {
    /// `<c>:log`: (stream number, entry).
    log: VecDeque<(u64, LogEntry)>,
    /// The last stream number given (never reused, as stream ids).
    stream: u64,
    /// `<c>:log-entries`.
    log_entries: u64,
    /// `<c>:line-id`.
    line_id: i64,
    /// `<c>:lines`: line id → entry JSON.
    lines: BTreeMap<i64, String>,
    /// `<c>:members`.
    members: HashMap<String, String>,
    /// `<c>:node:<node>`.
    node_members: HashMap<String, HashSet<String>>,
    /// `<c>:nodes`: node → when its lease runs out (ms).
    nodes: HashMap<String, i64>,
    /// `<c>:epochs`.
    epochs: HashMap<String, u64>,
    /// `<c>:seqs`.
    seqs: HashMap<String, u64>,
    /// `<c>:seats`: member → room.
    seats: HashMap<String, String>,
    /// `<c>:room:<room>`.
    rooms: HashMap<String, HashSet<String>>,
    /// `<c>:node-seats:<node>`.
    node_seats: HashMap<String, HashSet<String>>,
    /// `<c>:member-ids`.
    member_ids: u64,
    /// Nodes that cannot reach Redis.
    cut_off: HashSet<String>,
    /// Whether Redis is away for everyone.
    down: bool,
}

impl Default for MemoryRedis {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            added: watch::Sender::new(0),
        }
    }
}

impl MemoryRedis {
    /// Joins node `settings.node_id` to this cluster: registered, its first ids taken,
    /// presence read.
    pub(crate) async fn connect(&self, settings: ClusterSettings) -> Connected<MemoryDriver> {
        let driver = MemoryDriver {
            redis: self.clone(),
            settings: settings.clone(),
        };
        match join(driver, settings).await {
            Ok(connected) => connected,
            Err(e) => panic!("a node joins the cluster in memory: {e}"),
        }
    }

    /// Node `node` can no longer reach Redis (as if frozen, or its network cut): every
    /// step of its fails, until [`MemoryRedis::reconnect`].
    pub(crate) fn cut_off(&self, node: &str) {
        lock(&self.state).cut_off.insert(node.to_owned());
    }

    /// Node `node` reaches Redis again.
    pub(crate) fn reconnect(&self, node: &str) {
        lock(&self.state).cut_off.remove(node);
        self.added.send_modify(|n| *n += 1);
    }

    /// Redis is away for every node, until [`MemoryRedis::come_back`].
    pub(crate) fn go_down(&self) {
        lock(&self.state).down = true;
    }

    /// Redis answers again, with what it held.
    pub(crate) fn come_back(&self) {
        lock(&self.state).down = false;
        self.added.send_modify(|n| *n += 1);
    }

    /// The state, if `node` can reach it.
    fn reach(&self, node: &str) -> Result<std::sync::MutexGuard<'_, State>, Failure> {
        let state = lock(&self.state);
        if state.down || state.cut_off.contains(node) {
            return Err(Failure::Unreachable(format!("{node} cannot reach Redis")));
        }
        Ok(state)
    }
}

/// Redis's clock, in milliseconds.
fn now_ms() -> i64 {
    millis(SystemTime::now())
}

impl State {
    /// Adds an entry to the log, numbered, trimmed to `cap` entries.
    fn add_to_log(&mut self, cap: u64, mut entry: LogEntry) {
        self.log_entries += 1;
        self.stream += 1;
        entry.id = format!("{}-0", self.stream);
        entry.n = Some(self.log_entries);
        self.log.push_back((self.stream, entry));
        while self.log.len() as u64 > cap.max(1) {
            self.log.pop_front();
        }
    }

    /// Whether `node` holds its lease under `epoch`.
    fn holds_lease(&self, node: &str, epoch: u64) -> bool {
        self.nodes.get(node).is_some_and(|&until| until >= now_ms())
            && self.epochs.get(node) == Some(&epoch)
    }

    /// [`super::scripts::give_up`] for `nodes`.
    fn give_up(&mut self, nodes: Vec<String>, cap: u64) -> u64 {
        let mut announced = 0;
        for node in nodes {
            self.nodes.remove(&node);
            self.seqs.remove(&node);
            for key in self.node_members.remove(&node).unwrap_or_default() {
                let Some(kept) = self.members.remove(&key) else {
                    continue;
                };
                let name = serde_json::from_str::<serde_json::Value>(&kept)
                    .ok()
                    .and_then(|member| member["name"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| key.clone());
                let id: u64 = key
                    .rsplit_once('/')
                    .and_then(|(_, id)| id.parse().ok())
                    .unwrap_or(0);
                let count = self.members.len();
                let entry = serde_json::json!({"v": 1, "node": node, "seq": 0, "kind": "left",
                    "name": name, "members": count, "id": id});
                let entry = LogEntry {
                    entry: Some(entry.to_string()),
                    line: Some(0),
                    last: Some(self.line_id),
                    count: Some(count as i64),
                    ..LogEntry::default()
                };
                self.add_to_log(cap, entry);
                announced += 1;
            }
            for key in self.node_seats.remove(&node).unwrap_or_default() {
                if let Some(room) = self.seats.remove(&key)
                    && let Some(seated) = self.rooms.get_mut(&room)
                {
                    seated.remove(&key);
                }
            }
        }
        announced
    }

    /// A history page.
    fn lines(&self, page: Page, limit: usize) -> Vec<StoredLine> {
        let line = |(id, json): (&i64, &String)| line_of(&format!("{id}-0"), Some(json));
        match page {
            Page::Before(before) => self
                .lines
                .range(..before.unwrap_or(i64::MAX))
                .rev()
                .take(limit)
                .filter_map(line)
                .collect(),
            Page::After(after) => self
                .lines
                .range(after.saturating_add(1)..)
                .take(limit)
                .filter_map(line)
                .collect(),
        }
    }
}

/// One node's steps on a [`MemoryRedis`].
#[derive(Clone)]
pub(crate) struct MemoryDriver {
    redis: MemoryRedis,
    settings: ClusterSettings,
}

impl MemoryDriver {
    fn node(&self) -> &str {
        &self.settings.node_id
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX)
    }

    fn added(&self) {
        self.redis.added.send_modify(|n| *n += 1);
    }
}

impl Driver for MemoryDriver {
    async fn append(&mut self, epoch: u64, batch: &[Append]) -> Result<Vec<i64>, Failure> {
        let node = self.node().to_owned();
        let (cap, history_cap) = (self.settings.log_entries, self.settings.history_lines);
        let mut state = self.redis.reach(&node)?;
        if !state.holds_lease(&node, epoch) {
            return Err(Failure::NoLease);
        }
        let mut done = state.seqs.get(&node).copied().unwrap_or(0);
        let mut last = state.line_id;
        let mut answers = Vec::with_capacity(batch.len());
        for append in batch {
            let mut answer = 0;
            if append.seq <= done {
                answers.push(-1);
                continue;
            }
            done = append.seq;
            match append.kind {
                Kind::Line => {
                    if !state.members.contains_key(&append.member) {
                        answer = -2;
                    } else {
                        if !append.member_json.is_empty() {
                            state
                                .members
                                .insert(append.member.clone(), append.member_json.clone());
                        }
                        state.line_id += 1;
                        last = state.line_id;
                        answer = last;
                        state.lines.insert(last, append.json.clone());
                        while history_cap > 0 && state.lines.len() as u64 > history_cap {
                            state.lines.pop_first();
                        }
                    }
                }
                Kind::Join => {
                    state
                        .members
                        .insert(append.member.clone(), append.member_json.clone());
                    state
                        .node_members
                        .entry(node.clone())
                        .or_default()
                        .insert(append.member.clone());
                }
                Kind::Leave => {
                    if state.members.remove(&append.member).is_none() {
                        answer = -2;
                    } else if let Some(set) = state.node_members.get_mut(&node) {
                        set.remove(&append.member);
                    }
                }
            }
            if answer >= 0 {
                let count = state.members.len() as i64;
                let entry = LogEntry {
                    entry: Some(append.json.clone()),
                    line: Some(answer),
                    last: Some(last),
                    count: Some(count),
                    ..LogEntry::default()
                };
                state.add_to_log(cap, entry);
            }
            answers.push(answer);
        }
        state.seqs.insert(node, done);
        drop(state);
        self.added();
        Ok(answers)
    }

    async fn rooms(
        &mut self,
        kind: &RoomKind,
        epoch: u64,
        seq: u64,
        member: &str,
        room: &str,
        json: &str,
    ) -> Result<i64, Failure> {
        let node = self.node().to_owned();
        let cap = self.settings.log_entries;
        let mut state = self.redis.reach(&node)?;
        let current = state.seats.get(member).cloned();
        if let RoomKind::Unseat = kind {
            if let Some(current) = current {
                if let Some(seated) = state.rooms.get_mut(&current) {
                    seated.remove(member);
                }
                state.seats.remove(member);
                if let Some(seats) = state.node_seats.get_mut(&node) {
                    seats.remove(member);
                }
            }
            return Ok(1);
        }
        if !state.holds_lease(&node, epoch) {
            return Err(Failure::NoLease);
        }
        if seq <= state.seqs.get(&node).copied().unwrap_or(0) {
            return Ok(-1);
        }
        state.seqs.insert(node.clone(), seq);
        match kind {
            RoomKind::Seat => {
                if current.as_deref() == Some(room) {
                    return Ok(1);
                }
                if state.rooms.get(room).map_or(0, HashSet::len) >= ROOM_SEATS {
                    return Ok(0);
                }
                if let Some(current) = current
                    && let Some(seated) = state.rooms.get_mut(&current)
                {
                    seated.remove(member);
                }
                state
                    .rooms
                    .entry(room.to_owned())
                    .or_default()
                    .insert(member.to_owned());
                state.seats.insert(member.to_owned(), room.to_owned());
                state
                    .node_seats
                    .entry(node)
                    .or_default()
                    .insert(member.to_owned());
                Ok(1)
            }
            RoomKind::Line => {
                let Some(current) = current else {
                    return Ok(0);
                };
                let entry = LogEntry {
                    entry: Some(json.to_owned()),
                    line: Some(0),
                    room: Some(current),
                    ..LogEntry::default()
                };
                state.add_to_log(cap, entry);
                drop(state);
                self.added();
                Ok(1)
            }
            RoomKind::Unseat => Ok(1),
        }
    }

    async fn register(&mut self) -> Result<u64, Failure> {
        let node = self.node().to_owned();
        let lease = self.lease_ms();
        let mut state = self.redis.reach(&node)?;
        let epoch = state.epochs.entry(node.clone()).or_default();
        *epoch += 1;
        let epoch = *epoch;
        state.seqs.remove(&node);
        state.nodes.insert(node, now_ms() + lease);
        Ok(epoch)
    }

    async fn renew(&mut self, epoch: u64) -> Result<bool, Failure> {
        let node = self.node().to_owned();
        let lease = self.lease_ms();
        let mut state = self.redis.reach(&node)?;
        if !state.holds_lease(&node, epoch) {
            return Ok(false);
        }
        state.nodes.insert(node, now_ms() + lease);
        Ok(true)
    }

    async fn give_up(&mut self, own: bool) -> Result<u64, Failure> {
        let node = self.node().to_owned();
        let mut state = self.redis.reach(&node)?;
        let nodes = match own {
            true => vec![node],
            false => {
                let now = now_ms();
                let mut ran_out: Vec<String> = state
                    .nodes
                    .iter()
                    .filter(|(_, until)| **until < now)
                    .map(|(node, _)| node.clone())
                    .collect();
                ran_out.sort();
                ran_out
            }
        };
        let announced = state.give_up(nodes, self.settings.log_entries);
        drop(state);
        self.added();
        Ok(announced)
    }

    async fn id_block(&mut self) -> Result<Range<u64>, Failure> {
        let mut state = self.redis.reach(self.node())?;
        state.member_ids += ids::BLOCK;
        let end = state.member_ids;
        Ok(end.saturating_sub(ids::BLOCK) + 1..end + 1)
    }

    async fn read(&mut self, after: &str, count: usize) -> Result<Vec<LogEntry>, Failure> {
        let after: u64 = after
            .split_once('-')
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or(0);
        let mut added = self.redis.added.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(READ_BLOCK_MS);
        loop {
            {
                let state = self.redis.reach(self.node())?;
                let entries: Vec<LogEntry> = state
                    .log
                    .iter()
                    .filter(|(n, _)| *n > after)
                    .take(count)
                    .map(|(_, entry)| entry.clone())
                    .collect();
                if !entries.is_empty() {
                    return Ok(entries);
                }
                added.borrow_and_update();
            }
            if tokio::time::timeout_at(deadline, added.changed())
                .await
                .is_err()
            {
                return Ok(Vec::new());
            }
        }
    }

    async fn reconnect(&mut self) -> Result<(), Failure> {
        self.redis.reach(self.node()).map(drop)
    }

    async fn snapshot(&mut self) -> Result<Snapshot, Failure> {
        let state = self.redis.reach(self.node())?;
        Ok(Snapshot {
            newest: state
                .log
                .back()
                .map_or_else(|| "0-0".to_owned(), |(_, entry)| entry.id.clone()),
            members: state
                .members
                .iter()
                .map(|(key, kept)| (key.clone(), kept.clone()))
                .collect(),
            entries: state.log_entries,
        })
    }

    async fn replay(&mut self, last: i64, count: usize) -> Result<Vec<StoredLine>, Failure> {
        let state = self.redis.reach(self.node())?;
        let mut lines = state.lines(Page::Before(Some(last.saturating_add(1))), count);
        lines.reverse();
        Ok(lines)
    }

    fn lines(&self, page: Page, limit: usize) -> Result<Vec<StoredLine>, HistoryError> {
        let state = lock(&self.redis.state);
        Ok(state.lines(page, limit))
    }

    fn give_up_now(&self) -> Result<u64, Failure> {
        let node = self.node().to_owned();
        let mut state = self.redis.reach(&node)?;
        let announced = state.give_up(vec![node], self.settings.log_entries);
        drop(state);
        self.added();
        Ok(announced)
    }
}
