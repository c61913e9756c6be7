//! A member: one connection's place in the lobby, and everything it may ask of it.

use std::sync::Arc;

use bytes::Bytes;

use super::fanout::cut_off;
use super::names::{clean_name, clean_room_name};
use super::rate::Bucket;
use super::rooms::Seat;
use super::{Event, Lobby, LobbyError, Stored};
use crate::protocol::Protocol;

/// One connection's place in the lobby. Dropping it leaves the lobby (announced if the
/// member had a name), so presence cannot leak on any error path.
pub(crate) struct Member {
    pub(super) lobby: Lobby,
    pub(super) id: u64,
    pub(super) rate: Bucket,
}

impl Member {
    /// The member's id, unique for the life of the process.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Where its refusals are counted and logged.
    pub(crate) fn refusals(&self) -> &crate::refusals::Refusals {
        self.lobby.refusals()
    }

    /// Names (or renames) the member and announces its join under the cleaned name to
    /// everyone, the member included. Returns the name as stored.
    pub(crate) fn set_name(&self, raw: &str) -> Result<Arc<str>, LobbyError> {
        let name = clean_name(raw, self.lobby.inner.limits.max_name_chars);
        let cut = {
            let mut members = self.lobby.lock();
            let entry = members.get(&self.id).ok_or(LobbyError::Gone)?;
            // The first name is part of connecting; a rename is announced to everyone
            // like a line, and costs one.
            if entry.name.is_some() {
                self.rate.check()?;
            }
            let protocol = entry.protocol;
            let first = members.name(self.id, name.clone()).is_none();
            if first {
                self.lobby.inner.metrics.members[protocol.index()].increment(1.0);
            }
            tracing::info!(member = self.id, %name, protocol = protocol.as_str(), "joined");
            self.lobby.inner.metrics.joins[protocol.index()].increment(1);
            let replay_to = (first
                && protocol == Protocol::SocketIo
                && self.lobby.inner.limits.replay_lines > 0)
                .then_some(self.id);
            let event = Event::Joined {
                name: name.clone(),
                members: members.named(),
            };
            self.lobby.announce_presence(&mut members, event, replay_to)
        };
        self.lobby.presence_changed();
        cut_off(cut);
        Ok(name)
    }

    /// Relays a chat line under the member's stored name.
    pub(crate) fn say(&self, text: &str) -> Result<(), LobbyError> {
        self.relay(None, text, None, None)
    }

    /// [`Member::say`], then `stored` is told the line's history id (`None` without a
    /// history) where the line would be in the member's own stream: for a protocol that
    /// does not echo, whose client learns so which stored line is its own.
    pub(crate) fn say_then(&self, text: &str, stored: Stored) -> Result<(), LobbyError> {
        self.relay(None, text, None, Some(stored))
    }

    /// Relays a chat line under `claimed_name` (cleaned), for protocols whose clients
    /// send their name with every line: the member's stored name follows it silently.
    pub(crate) fn say_as(&self, claimed_name: &str, text: &str) -> Result<(), LobbyError> {
        self.relay(
            Some(clean_name(
                claimed_name,
                self.lobby.inner.limits.max_name_chars,
            )),
            text,
            None,
            None,
        )
    }

    /// Relays a raw chunk (TCP text): the bytes go as they are to other TCP text
    /// members, the text (lossily decoded, one line end trimmed) to everyone else.
    pub(crate) fn say_chunk(&self, chunk: Bytes) -> Result<(), LobbyError> {
        let decoded = String::from_utf8_lossy(&chunk);
        let text = decoded
            .strip_suffix('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .unwrap_or(&decoded);
        self.relay(None, text, Some(chunk.clone()), None)
    }

    fn relay(
        &self,
        rename: Option<Arc<str>>,
        text: &str,
        raw: Option<Bytes>,
        stored: Option<Stored>,
    ) -> Result<(), LobbyError> {
        self.rate.check()?;
        self.lobby.check_message(text)?;
        let cut = {
            let mut members = self.lobby.lock();
            let entry = members.get(&self.id).ok_or(LobbyError::Gone)?;
            let protocol = entry.protocol;
            let name = match &rename {
                Some(name) => name.clone(),
                None => entry.name.clone().ok_or(LobbyError::Unnamed)?,
            };
            let event = Event::Message {
                name,
                text: Arc::from(text),
                origin: protocol,
                raw,
            };
            let cut = self
                .lobby
                .announce(&mut members, event, Some(self.id), None, stored)?;
            self.lobby.inner.metrics.lines_in[protocol.index()].increment(1);
            if let Some(name) = rename {
                members.name(self.id, name);
            }
            cut
        };
        cut_off(cut);
        Ok(())
    }

    /// Takes a seat in the two-person room `room` (cleaned like a name), leaving the
    /// member's previous room. A full room leaves the member where it was.
    pub(crate) fn take_seat(&self, room: &str, seat: impl Seat) -> Result<Arc<str>, LobbyError> {
        let room = clean_room_name(room, self.lobby.inner.limits.max_room_name_chars)?;
        self.lobby
            .inner
            .rooms
            .take_seat(self.id, room.clone(), Arc::new(seat))?;
        Ok(room)
    }

    /// Sends a line to everyone in the member's room, the member included.
    pub(crate) fn say_in_room(&self, text: &str) -> Result<(), LobbyError> {
        self.rate.check()?;
        self.lobby.check_message(text)?;
        Ok(self.lobby.inner.rooms.say(self.id, text)?)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.lobby.leave(self.id);
    }
}
