//! The roster: every connection of this node as an operator sees it (the admin UI,
//! `crate::admin`): its id, protocol, name, arrival, address and room; and the
//! operator's way to throw a member out.

use std::net::IpAddr;
use std::sync::Arc;

use crate::chat::Someone;

/// One connection of this node's lobby, named or not.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Listed {
    /// Who it is.
    pub(crate) someone: Someone,
    /// Its address, if known.
    pub(crate) from: Option<IpAddr>,
    /// The two-person room it sits in.
    pub(crate) room: Option<Arc<str>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::tests::{Recorder, joined};
    use crate::lobby::{Limits, Lobby};
    use crate::protocol::Protocol;

    #[test]
    fn a_member_thrown_out_is_announced_as_left_and_cut_off() {
        let lobby = Lobby::new(Limits::default());
        let (stays, goes) = (Recorder::default(), Recorder::default());
        let s = lobby.join(Protocol::SocketIo, stays.clone(), None).unwrap();
        s.set_name("ann").unwrap();
        let from = Some(IpAddr::from([10, 0, 0, 7]));
        let g = lobby.join(Protocol::TcpText, goes.clone(), from).unwrap();
        assert_eq!(
            stays.take_when(2),
            [joined("ann", 1), joined(&format!("guest-{}", g.id()), 2)]
        );
        let roster = lobby.roster();
        assert_eq!(roster.len(), 2);
        assert_eq!(
            (
                roster[1].someone.id,
                roster[1].someone.protocol,
                roster[1].from
            ),
            (g.id(), Protocol::TcpText, from)
        );

        assert!(lobby.throw_out(g.id()));
        assert_eq!(goes.wait_cut(1), 1);
        let left = crate::lobby::Event::Left {
            name: format!("guest-{}", g.id()).into(),
            members: 1,
        };
        assert_eq!(stays.take_when(1), [left]);
        assert!(!lobby.throw_out(g.id()));
        drop(g); // its guard leaves again: nothing more is announced
        assert_eq!(lobby.roster().len(), 1);
        assert_eq!(lobby.member_count(), 1);
    }
}
