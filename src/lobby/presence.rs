//! Presence: who is in the lobby now, as `GET /api/members` and the Socket.IO `members`
//! event carry it: `{"count": N, "members": [{"name", "protocol", "since"}, …]}`, the
//! named members in the order they connected (`since`: RFC 3339, UTC, milliseconds).
//! Every change bumps a version that subscribers watch ([`Lobby::watch_presence`]).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::handle::Lobby;

/// The member list as the `members` event carries it, made once per presence change and
/// shared by every subscriber: each change is sent to every subscriber, and building the
/// list once per subscriber would cost subscribers × members per join.
#[derive(Clone, Default)]
pub(crate) struct SharedMemberList(Arc<Mutex<Option<MemberList>>>);

/// A member list and the presence version it was made at.
type MemberList = (u64, Arc<RawValue>);

impl SharedMemberList {
    /// The list as of presence `version` (see [`Lobby::watch_presence`]) or later.
    pub(crate) fn get(
        &self,
        lobby: &Lobby,
        version: u64,
    ) -> Result<Arc<RawValue>, serde_json::Error> {
        let mut cached = crate::locks::lock(&self.0);
        if let Some((made_at, list)) = &*cached
            && *made_at >= version
        {
            return Ok(list.clone());
        }
        let list: Arc<RawValue> = serde_json::value::to_raw_value(&members_json(lobby))?.into();
        *cached = Some((version, list.clone()));
        Ok(list)
    }
}

/// Who is in the lobby now, as `GET /api/members` and the `members` event carry it.
pub(crate) fn members_json(lobby: &Lobby) -> Value {
    let present = lobby.present();
    json!({
        "count": present.len(),
        "members": present
            .iter()
            .map(|member| json!({
                "name": member.name.as_deref(),
                "protocol": member.protocol.as_str(),
                "since": rfc3339(member.since),
            }))
            .collect::<Vec<_>>(),
    })
}

/// A time as the APIs write it: RFC 3339, UTC, milliseconds.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::{Delivery, Limits, Outbox, OutboxRefusal};
    use crate::protocol::Protocol;

    struct Nobody;

    impl Outbox for Nobody {
        fn offer(&self, _: &Arc<Delivery>) -> Result<(), OutboxRefusal> {
            Ok(())
        }
        fn queued(&self) -> usize {
            0
        }
        fn cut_off(&self) {}
    }

    fn names(list: &RawValue) -> Vec<String> {
        let list: Value = serde_json::from_str(list.get()).unwrap();
        list["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|member| member["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_member_list_is_made_once_per_presence_change() {
        let lobby = Lobby::new(Limits::default());
        let shared = SharedMemberList::default();
        let ann = lobby.join(Protocol::SocketIo, Nobody, None).unwrap();
        ann.set_name("ann").unwrap();
        let version = *lobby.watch_presence().borrow();
        let first = shared.get(&lobby, version).unwrap();
        assert_eq!(names(&first), ["ann"]);
        // Another subscriber at the same version gets the very same list.
        assert!(Arc::ptr_eq(&first, &shared.get(&lobby, version).unwrap()));

        let bob = lobby.join(Protocol::SocketIo, Nobody, None).unwrap();
        bob.set_name("bob").unwrap();
        let changed = *lobby.watch_presence().borrow();
        assert!(changed > version);
        let mut now = names(&shared.get(&lobby, changed).unwrap());
        now.sort();
        assert_eq!(now, ["ann", "bob"]);
    }
}
