//! Member ids unique in the whole cluster: a node takes them from `<c>:member-ids` in
//! blocks of [`BLOCK`] (`INCRBY`), one in use and the next fetched ahead, when half of
//! the one in use is gone ([`super::lease`] fetches it). A member's guest name is
//! `guest-<id>`, so no two nodes give the same guest name. Should a node give out a
//! whole block before the next arrives (thousands of joins within one Redis round
//! trip), it goes on past the block's end, and says so: ids of two nodes may then meet.

use std::ops::Range;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::keys::Keys;
use crate::locks::lock;

/// Member ids a node takes at a time.
pub(super) const BLOCK: u64 = 10_000;

/// Takes the next block of ids from Redis.
pub(super) async fn block(
    connection: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
) -> redis::RedisResult<Range<u64>> {
    let end: u64 = redis::cmd("INCRBY")
        .arg(&keys.member_ids)
        .arg(BLOCK)
        .query_async(connection)
        .await?;
    Ok(end.saturating_sub(BLOCK) + 1..end + 1)
}

/// The ids a node gives out (see the module doc).
pub(super) struct MemberIds(Mutex<Blocks>);

struct Blocks {
    current: Range<u64>,
    next: Option<Range<u64>>,
    /// Whether the next block has been asked for.
    asked: bool,
}

impl MemberIds {
    pub(super) fn new(first: Range<u64>) -> Self {
        Self(Mutex::new(Blocks {
            current: first,
            next: None,
            asked: false,
        }))
    }

    /// The next id; wakes `refill` when the block in use is half gone.
    pub(super) fn next(&self, refill: &Notify) -> u64 {
        let mut blocks = lock(&self.0);
        if blocks.current.is_empty()
            && let Some(next) = blocks.next.take()
        {
            blocks.current = next;
            blocks.asked = false;
        }
        let id = blocks.current.start;
        if blocks.current.is_empty() && blocks.current.end == id {
            tracing::error!(
                id,
                "member ids given out faster than Redis gives them: going on past the block"
            );
        }
        blocks.current.start += 1;
        if blocks.current.end.saturating_sub(blocks.current.start) < BLOCK / 2
            && blocks.next.is_none()
            && !blocks.asked
        {
            blocks.asked = true;
            refill.notify_one();
        }
        id
    }

    /// Whether the next block is wanted.
    pub(super) fn wanted(&self) -> bool {
        let blocks = lock(&self.0);
        blocks.asked && blocks.next.is_none()
    }

    /// Keeps `block` as the next one.
    pub(super) fn give(&self, block: Range<u64>) {
        lock(&self.0).next = Some(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_the_block_then_the_next_and_a_refill_is_asked_at_half() {
        let refill = Notify::new();
        let ids = MemberIds::new(1..BLOCK + 1);
        for expected in 1..=BLOCK / 2 {
            assert_eq!(ids.next(&refill), expected);
        }
        assert!(!ids.wanted());
        assert_eq!(ids.next(&refill), BLOCK / 2 + 1);
        assert!(ids.wanted());
        ids.give(3 * BLOCK + 1..4 * BLOCK + 1);
        assert!(!ids.wanted());
        for expected in BLOCK / 2 + 2..=BLOCK {
            assert_eq!(ids.next(&refill), expected);
        }
        assert_eq!(ids.next(&refill), 3 * BLOCK + 1);
    }
}
