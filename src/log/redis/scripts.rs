//! The Lua scripts the cluster runs in Redis: each is one atomic step of the cluster's
//! state (the log, the history, who is present, which nodes are alive), so that no two
//! nodes ever see it half done. Keys are those of the parent module's table; `<c>` is
//! the `--cluster` prefix. Times are Redis's own clock (`TIME`), never a node's.
//!
//! An entry the scripts write themselves (a leave announced for a node whose lease ran
//! out) is JSON of the same format as a node's: `{"v":1,"node":"<the node that had the
//! member>","seq":0,"kind":"left","name":…,"members":…,"id":…}`; `seq` 0 marks it as
//! written by the cluster, not by the node.

/// A script's first lines: `ms`, the milliseconds of Redis's clock, and `add_to_log`,
/// which adds an entry to the log (trimmed to about `cap`) with its number in the log
/// as its field `n` (counted in `<log>-entries`): a reader that finds a number that
/// does not follow the last one it read knows it missed entries (trimmed while it was
/// away, or a Redis that lost its data).
const NOW: &str = "
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local function add_to_log(log, cap, ...)
  local n = redis.call('INCR', log .. '-entries')
  return redis.call('XADD', log, 'MAXLEN', '~', cap, '*', 'n', n, unpack({...}))
end
";

/// Appends entries of a node, in order, as one atomic step (a join or a leave, or the
/// chat lines waiting in the node when the appender takes them, at most
/// [`APPEND_BATCH_ENTRIES`](super::appender::APPEND_BATCH_ENTRIES)).
/// KEYS: 1 log, 2 line-id, 3 lines, 4 members, 5 nodes, 6 epochs, 7 seqs, 8 the node's
/// member set. ARGV: 1 the node, 2 its epoch, 3 the log's length cap, 4 the history's
/// length cap (0: none), then five for each entry: the entry (JSON), its kind (`line`,
/// `join`, `leave`), its seq, the member's key, the member as `members` keeps it (JSON;
/// joins, and lines that rename their sender, else empty).
///
/// Refused with `NOLEASE` (nothing appended) when the node's lease has run out or its
/// epoch is not the current one (it was frozen or cut off, and the cluster announced
/// its members as left). Returns one answer per entry: its line id (0: not a line),
/// `-1` for an entry already appended (a retry after a lost reply), `-2` for a line or
/// leave of a member the cluster no longer has (nothing appended).
pub(super) fn append() -> String {
    format!(
        "{NOW}
local node = ARGV[1]
local lease = redis.call('ZSCORE', KEYS[5], node)
if (not lease) or tonumber(lease) < ms or redis.call('HGET', KEYS[6], node) ~= ARGV[2] then
  return redis.error_reply('NOLEASE node ' .. node .. ' holds no lease')
end
local done = tonumber(redis.call('HGET', KEYS[7], node) or '0')
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local answers = {{}}
for i = 5, #ARGV, 5 do
  local entry, kind, seq, member, kept = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
  local answer = 0
  if seq <= done then
    answer = -1
  else
    done = seq
    if kind == 'line' then
      if redis.call('HEXISTS', KEYS[4], member) == 0 then
        answer = -2
      else
        if kept ~= '' then redis.call('HSET', KEYS[4], member, kept) end
        last = redis.call('INCR', KEYS[2])
        answer = last
        if ARGV[4] ~= '0' then
          redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], last .. '-0', 'e', entry)
        else
          redis.call('XADD', KEYS[3], last .. '-0', 'e', entry)
        end
      end
    elseif kind == 'join' then
      redis.call('HSET', KEYS[4], member, kept)
      redis.call('SADD', KEYS[8], member)
    elseif kind == 'leave' then
      if redis.call('HDEL', KEYS[4], member) == 0 then
        answer = -2
      else
        redis.call('SREM', KEYS[8], member)
      end
    end
    if answer >= 0 then
      local count = redis.call('HLEN', KEYS[4])
      add_to_log(KEYS[1], ARGV[3], 'e', entry, 'line', answer, 'last', last, 'count', count)
    end
  end
  answers[#answers + 1] = answer
end
redis.call('HSET', KEYS[7], node, done)
return answers
"
    )
}

/// Registers a node under a new epoch, with a lease of ARGV 2 ms. KEYS: 1 nodes,
/// 2 epochs, 3 seqs. ARGV: 1 the node, 2 the lease. Returns the epoch.
pub(super) fn register() -> String {
    format!(
        "{NOW}
local epoch = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
return epoch
"
    )
}

/// Renews a node's lease if it still holds it under its epoch. KEYS: 1 nodes,
/// 2 epochs. ARGV: 1 the node, 2 its epoch, 3 the lease in ms. Returns 1, or 0 when the
/// lease is lost.
pub(super) fn renew() -> String {
    format!(
        "{NOW}
local lease = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not lease) or tonumber(lease) < ms or redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[1])
return 1
"
    )
}

/// Announces every member of the nodes given up as left, once, frees their seats in the
/// two-person rooms, and forgets the nodes: ARGV 2 names one node (a node leaving at
/// shutdown, or one that found its lease lost), or is empty for every node whose lease
/// has run out. KEYS: 1 log, 2 line-id, 3 members, 4 nodes, 5 seqs, 6 seats. ARGV: 1
/// the cluster prefix, 2 the node or '', 3 the log's length cap. Returns the number of
/// leaves announced.
pub(super) fn give_up() -> String {
    format!(
        "{NOW}
local nodes
if ARGV[2] ~= '' then
  nodes = {{ARGV[2]}}
else
  nodes = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ms)
end
local announced = 0
for _, node in ipairs(nodes) do
  redis.call('ZREM', KEYS[4], node)
  redis.call('HDEL', KEYS[5], node)
  local set = ARGV[1] .. ':node:' .. node
  for _, key in ipairs(redis.call('SMEMBERS', set)) do
    local kept = redis.call('HGET', KEYS[3], key)
    if kept then
      redis.call('HDEL', KEYS[3], key)
      local ok, member = pcall(cjson.decode, kept)
      local name = (ok and type(member) == 'table' and member.name) or key
      local id = tonumber(string.match(key, '/(%d+)$')) or 0
      local count = redis.call('HLEN', KEYS[3])
      local last = tonumber(redis.call('GET', KEYS[2]) or '0')
      local entry = cjson.encode({{v = 1, node = node, seq = 0, kind = 'left',
        name = name, members = count, id = id}})
      add_to_log(KEYS[1], ARGV[3], 'e', entry, 'line', 0, 'last', last, 'count', count)
      announced = announced + 1
    end
  end
  redis.call('DEL', set)
  local seats = ARGV[1] .. ':node-seats:' .. node
  for _, key in ipairs(redis.call('SMEMBERS', seats)) do
    local room = redis.call('HGET', KEYS[6], key)
    if room then
      redis.call('SREM', ARGV[1] .. ':room:' .. room, key)
      redis.call('HDEL', KEYS[6], key)
    end
  end
  redis.call('DEL', seats)
end
return announced
"
    )
}

/// Where a node starts reading, and who is present there, at one instant. KEYS: 1 log,
/// 2 members. Returns `{the log's newest id ('0-0' if empty), {key, member, …}, the
/// number of the newest entry (0 if none)}`.
pub(super) const SNAPSHOT: &str = "
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local id = '0-0'
if newest[1] then id = newest[1][1] end
local entries = tonumber(redis.call('GET', KEYS[1] .. '-entries') or '0')
return {id, redis.call('HGETALL', KEYS[2]), entries}
";

/// A request about the two-person rooms, in the node's order with its other entries.
/// KEYS: 1 log, 2 seats, 3 nodes, 4 epochs, 5 seqs, 6 the node's seat set. ARGV: 1 the
/// request (`seat`, `unseat`, `line`), 2 the cluster prefix, 3 the node, 4 its epoch,
/// 5 the entry's seq, 6 the member's key, 7 the room (`seat`), 8 the entry (JSON;
/// `line`), 9 seats a room holds, 10 the log's length cap.
///
/// `seat` takes a seat in the room, leaving the member's previous one: 1, or 0 when the
/// room is full (the member keeps its seat). `line` adds a room line to the log, with
/// the member's room in its field `room`: 1, or 0 when the member holds no seat.
/// `unseat` frees the member's seat: 1. `seat` and `line` are refused with `NOLEASE`
/// when the node's lease is lost; a retried request returns -1.
pub(super) fn rooms() -> String {
    format!(
        "{NOW}
local kind = ARGV[1]
local member = ARGV[6]
local current = redis.call('HGET', KEYS[2], member)
local function room_set(room) return ARGV[2] .. ':room:' .. room end
if kind == 'unseat' then
  if current then
    redis.call('SREM', room_set(current), member)
    redis.call('HDEL', KEYS[2], member)
    redis.call('SREM', KEYS[6], member)
  end
  return 1
end
local lease = redis.call('ZSCORE', KEYS[3], ARGV[3])
if (not lease) or tonumber(lease) < ms or redis.call('HGET', KEYS[4], ARGV[3]) ~= ARGV[4] then
  return redis.error_reply('NOLEASE node ' .. ARGV[3] .. ' holds no lease')
end
local seq = tonumber(ARGV[5])
if seq <= tonumber(redis.call('HGET', KEYS[5], ARGV[3]) or '0') then return -1 end
redis.call('HSET', KEYS[5], ARGV[3], seq)
if kind == 'seat' then
  local room = ARGV[7]
  if current == room then return 1 end
  if redis.call('SCARD', room_set(room)) >= tonumber(ARGV[9]) then return 0 end
  if current then redis.call('SREM', room_set(current), member) end
  redis.call('SADD', room_set(room), member)
  redis.call('HSET', KEYS[2], member, room)
  redis.call('SADD', KEYS[6], member)
  return 1
end
if not current then return 0 end
add_to_log(KEYS[1], ARGV[10], 'e', ARGV[8], 'line', 0, 'room', current)
return 1
"
    )
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use redis::streams::StreamRangeReply;

    use super::*;

    /// A `redis-server` of this test's own on a unix socket in a directory of its own,
    /// killed when dropped.
    struct Redis {
        child: Child,
        connection: redis::Connection,
        _dir: tempfile::TempDir,
    }

    impl Redis {
        fn start() -> Self {
            let dir = tempfile::tempdir().expect("a directory for redis");
            let socket = dir.path().join("redis.sock");
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    "0",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--unixsocket",
                ])
                .arg(&socket)
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server runs (apt-get install redis-server)");
            let client = redis::Client::open(format!("redis+unix://{}", socket.display()))
                .expect("a redis URL");
            let deadline = Instant::now() + Duration::from_secs(10);
            let connection = loop {
                if let Ok(mut connection) = client.get_connection()
                    && redis::cmd("PING").query::<String>(&mut connection).is_ok()
                {
                    break connection;
                }
                assert!(Instant::now() < deadline, "redis-server did not answer");
                std::thread::sleep(Duration::from_millis(20));
            };
            Self {
                child,
                connection,
                _dir: dir,
            }
        }
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            if let Err(e) = self.child.kill().and_then(|()| self.child.wait().map(drop)) {
                eprintln!("cannot stop the test's redis-server: {e}");
            }
        }
    }

    /// `(e, n, line, count)` of each entry of stream `key`.
    fn entries(connection: &mut redis::Connection, key: &str) -> Vec<(String, u64, i64, i64)> {
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .query(connection)
            .expect("XRANGE");
        reply
            .ids
            .iter()
            .map(|entry| {
                (
                    entry.get("e").unwrap_or_default(),
                    entry.get("n").unwrap_or_default(),
                    entry.get("line").unwrap_or_default(),
                    entry.get("count").unwrap_or(-1),
                )
            })
            .collect()
    }

    #[test]
    fn a_batch_is_appended_in_order_once_and_only_under_the_nodes_lease() {
        let mut redis = Redis::start();
        let c = &mut redis.connection;
        let epoch: u64 = redis::Script::new(&register())
            .key("t:nodes")
            .key("t:epochs")
            .key("t:seqs")
            .arg("n1")
            .arg(60_000)
            .invoke(c)
            .expect("registered");
        let script = redis::Script::new(&append());
        let batch = |epoch: u64| {
            let mut invocation = script.prepare_invoke();
            for key in [
                "t:log",
                "t:line-id",
                "t:lines",
                "t:members",
                "t:nodes",
                "t:epochs",
                "t:seqs",
                "t:node:n1",
            ] {
                invocation.key(key);
            }
            invocation.arg("n1").arg(epoch).arg(1_000).arg(0);
            // ann joins and says a line; a member the cluster does not have says one;
            // ann leaves.
            for (seq, kind, member, kept) in [
                (1, "join", "n1/1", r#"{"name":"ann"}"#),
                (2, "line", "n1/1", ""),
                (3, "line", "n1/9", ""),
                (4, "leave", "n1/1", ""),
            ] {
                invocation
                    .arg(format!("entry {seq}"))
                    .arg(kind)
                    .arg(seq)
                    .arg(member)
                    .arg(kept);
            }
            invocation
        };

        let answers: Vec<i64> = batch(epoch).invoke(c).expect("appended");
        assert_eq!(answers, [0, 1, -2, 0]);
        let log = [
            ("entry 1".to_owned(), 1, 0, 1),
            ("entry 2".to_owned(), 2, 1, 1),
            ("entry 4".to_owned(), 3, 0, 0),
        ];
        assert_eq!(entries(c, "t:log"), log);
        let lines: StreamRangeReply = redis::cmd("XRANGE")
            .arg("t:lines")
            .arg("-")
            .arg("+")
            .query(c)
            .expect("XRANGE");
        let lines: Vec<(String, String)> = lines
            .ids
            .iter()
            .map(|l| (l.id.clone(), l.get("e").unwrap_or_default()))
            .collect();
        assert_eq!(lines, [("1-0".to_owned(), "entry 2".to_owned())]);

        // The same batch again (a retry after a lost reply): nothing appended twice.
        let answers: Vec<i64> = batch(epoch).invoke(c).expect("answered");
        assert_eq!(answers, [-1, -1, -1, -1]);
        assert_eq!(entries(c, "t:log"), log);

        // Under an epoch that is not the node's: refused whole.
        let refused = batch(epoch + 1).invoke::<Vec<i64>>(c).expect_err("refused");
        assert_eq!(refused.code(), Some("NOLEASE"));
        assert_eq!(entries(c, "t:log"), log);
    }
}
