//! A member: everything one connection may ask of the lobby ([`Member`], its guard,
//! is the lobby's handle's: [`super::handle`]).

use std::sync::Arc;

use bytes::Bytes;

use super::error::{LobbyError, RoomError};
use super::event::Event;
use super::fanout::{Stored, cut_off};
use super::handle::Member;
use super::names::{Given, NameTaken, clean_name, clean_room_name};
use super::rooms::Seat;
use crate::chat::Someone;
use crate::log::RoomRefusal;
use crate::protocol::Protocol;

impl Member {
    /// The member's id, unique for the life of the process.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Where its refusals are counted and logged.
    pub(crate) fn refusals(&self) -> &crate::refusals::Refusals {
        self.lobby.refusals()
    }

    /// Hands the lobby's tap ([`super::tap`]) a request the member sent, `args()`
    /// (`[event, ...args]`) made only if it is on.
    pub(crate) fn tap_received(&self, args: impl FnOnce() -> serde_json::Value) {
        self.lobby.inner.tap.received(self.id, args);
    }

    /// Names (or renames) the member and announces its join under the name it is given
    /// to everyone, the member included. Returns the name given.
    #[cfg(test)]
    pub(crate) fn set_name(&self, raw: &str) -> Result<Arc<str>, LobbyError> {
        self.set_name_telling(raw, |_| {})
    }

    /// Names (or renames) the member: it asks for `raw` (cleaned) and is given that name
    /// or the nearest free one ([`names`](super::names)), under which its join is
    /// announced to everyone, the member included. When the name is not the one asked
    /// for, `tell` is called first, with the lobby's lock held (it must not block), so
    /// that the member hears why before its join. Returns the name given.
    pub(crate) fn set_name_telling(
        &self,
        raw: &str,
        tell: impl FnOnce(&NameTaken),
    ) -> Result<Arc<str>, LobbyError> {
        let asked = clean_name(raw, self.lobby.inner.limits.max_name_chars);
        let (name, cut) = {
            let mut members = self.lobby.lock();
            let entry = members.get(&self.id).ok_or(LobbyError::Gone)?;
            // The first name is part of connecting; a rename is announced to everyone
            // like a line, and costs one.
            let first = entry.someone.name.is_none();
            if !first {
                self.rate.check()?;
            }
            self.lobby.inner.churn.check(self.from)?;
            let protocol = entry.someone.protocol;
            let given = self.lobby.give_name(&members, self.id, asked);
            let name = given.name.clone();
            if let Some(taken) = given.taken() {
                tracing::info!(member = self.id, %taken, "name taken");
                tell(&taken);
            }
            if members.give(self.id, given) {
                self.lobby.inner.metrics.members[protocol.index()].increment(1.0);
            }
            self.lobby
                .log_presence_line(true, self.id, &name, protocol.as_str());
            self.lobby.inner.metrics.joins[protocol.index()].increment(1);
            let replay_to = (first
                && protocol == Protocol::SocketIo
                && self.lobby.inner.limits.replay_lines > 0)
                .then_some(self.id);
            let event = Event::Joined {
                name: name.clone(),
                members: members.named(),
            };
            let someone = members.get(&self.id).map(|entry| entry.someone.clone());
            let cut = match someone {
                Some(someone) => {
                    self.lobby
                        .announce_presence(&mut members, event, someone, replay_to)
                }
                None => Vec::new(),
            };
            (name, cut)
        };
        self.lobby.presence_changed();
        cut_off(cut);
        Ok(name)
    }

    /// Relays a chat line under the member's stored name.
    pub(crate) fn say(&self, text: &str) -> Result<(), LobbyError> {
        self.relay(None, text, None, None).map(drop)
    }

    /// [`Member::say`], then `stored` is told the line's history id (`None` without a
    /// history) where the line would be in the member's own stream: for a protocol that
    /// does not echo, whose client learns so which stored line is its own.
    pub(crate) fn say_then(&self, text: &str, stored: Stored) -> Result<(), LobbyError> {
        self.relay(None, text, None, Some(stored)).map(drop)
    }

    /// Relays a chat line for a protocol whose clients send their name with every line:
    /// a `claimed_name` (cleaned) other than the one the member claimed last renames it
    /// silently, to that name or the nearest free one ([`names`](super::names)), which it
    /// then keeps for as long as it claims the same. Returns what the member must be
    /// told when it was given another name than it claimed (once: at that line).
    pub(crate) fn say_as(
        &self,
        claimed_name: &str,
        text: &str,
    ) -> Result<Option<NameTaken>, LobbyError> {
        let claim = clean_name(claimed_name, self.lobby.inner.limits.max_name_chars);
        self.relay(Some(claim), text, None, None)
    }

    /// Relays a raw chunk (TCP text): the bytes go as they are to other TCP text
    /// members, the text (lossily decoded, one line end trimmed) to everyone else.
    pub(crate) fn say_chunk(&self, chunk: Bytes) -> Result<(), LobbyError> {
        let decoded = String::from_utf8_lossy(&chunk);
        let text = decoded
            .strip_suffix('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .unwrap_or(&decoded);
        self.relay(None, text, Some(chunk.clone()), None).map(drop)
    }

    /// Relays a line under the member's stored name, or under the name it is given for
    /// `claim`; returns what it must be told about that name.
    fn relay(
        &self,
        claim: Option<Arc<str>>,
        text: &str,
        raw: Option<Bytes>,
        stored: Option<Stored>,
    ) -> Result<Option<NameTaken>, LobbyError> {
        self.rate.check()?;
        self.lobby.check_message(text)?;
        let (cut, taken) = {
            let mut members = self.lobby.lock();
            let entry = members.get(&self.id).ok_or(LobbyError::Gone)?;
            let protocol = entry.someone.protocol;
            let given = match claim {
                Some(claim) if !entry.asked_for(&claim) => {
                    // A rename (a first name is given on connect for these protocols).
                    self.lobby.inner.churn.check(self.from)?;
                    Some(self.lobby.give_name(&members, self.id, claim))
                }
                _ => None,
            };
            let name = match &given {
                Some(given) => given.name.clone(),
                None => entry.someone.name.clone().ok_or(LobbyError::Unnamed)?,
            };
            let event = Event::Message {
                name,
                text: Arc::from(text),
                origin: protocol,
                raw,
            };
            // A line that renames its sender tells presence (a cluster's) the new name.
            let renamed = given.as_ref().map(|given| Someone {
                name: Some(given.name.clone()),
                key: Some(given.key.clone()),
                ..entry.someone.clone()
            });
            let cut =
                self.lobby
                    .announce(&mut members, event, Some(self.id), None, stored, renamed)?;
            self.lobby.inner.metrics.lines_in[protocol.index()].increment(1);
            let taken = given.as_ref().and_then(Given::taken);
            if let Some(taken) = &taken {
                tracing::info!(member = self.id, %taken, "name taken");
            }
            if let Some(given) = given {
                members.give(self.id, given);
            }
            (cut, taken)
        };
        cut_off(cut);
        Ok(taken)
    }

    /// Takes a seat in the two-person room `room` (cleaned like a name), leaving the
    /// member's previous room. A full room leaves the member where it was, and is told
    /// through `seat` ([`Seat::refused`]): at once, or, for a cluster's rooms, once
    /// Redis has answered.
    pub(crate) fn take_seat(&self, room: &str, seat: impl Seat) -> Result<Arc<str>, LobbyError> {
        let room = clean_room_name(room, self.lobby.inner.limits.max_room_name_chars)?;
        let seat: Arc<dyn Seat> = Arc::new(seat);
        self.lobby
            .inner
            .broker
            .take_seat(self.id, room.clone(), seat)?;
        Ok(room)
    }

    /// Sends a line to everyone in the member's room, the member included. For a
    /// cluster's rooms, the member holding no seat is told through `seat` once Redis
    /// has answered.
    pub(crate) fn say_in_room(&self, text: &str, seat: impl Seat) -> Result<(), LobbyError> {
        self.rate.check()?;
        self.lobby.check_message(text)?;
        let seat: Arc<dyn Seat> = Arc::new(seat);
        match self.lobby.inner.broker.say_in_room(self.id, text, seat) {
            Ok(()) => Ok(()),
            Err(RoomRefusal::NotSeated) => Err(RoomError::NotSeated.into()),
            Err(RoomRefusal::Refused(refusal)) => Err(refusal.into()),
        }
    }
}
