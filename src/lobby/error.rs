//! Why the lobby refused a member's request (and a two-person room its request): the
//! text is what the sender is told, the reason its metric label. A leaf of the lobby:
//! it imports none of its modules.

use crate::log::{AppendRefusal, QueueFull};

/// Why the lobby refused a member's request. The text is what the sender is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LobbyError {
    /// A chat line before the member named itself.
    #[error("choose a name before sending messages")]
    Unnamed,
    /// A chat line over [`Limits::max_message_chars`].
    #[error("message is longer than {max} characters")]
    MessageTooLong {
        /// The limit in force.
        max: usize,
    },
    /// The member was removed from the lobby (cut off as a slow consumer).
    #[error("you are no longer in the lobby")]
    Gone,
    /// A two-person room refused the request.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// Over the member's message rate ([`Limits::rate`]): this request is refused.
    #[error("too many messages: at most {lines_per_sec} a second")]
    RateLimited {
        /// The rate in force.
        lines_per_sec: u32,
    },
    /// Over the rate this many times in a row: the member is disconnected.
    #[error("too many messages refused in a row ({strikes}): disconnecting")]
    Flooding {
        /// Refusals in a row.
        strikes: u32,
    },
    /// Over the client address's joins and renames ([`Limits::joins`]): nothing was
    /// announced.
    #[error("too many joins and renames from your address: at most {per_min} a minute")]
    Churning {
        /// The rate in force.
        per_min: u32,
    },
    /// The history does not keep up with the lines coming in: the line was not sent.
    #[error("{0}")]
    Busy(#[from] QueueFull),
    /// The lobby's log cannot be reached (a cluster's Redis is down): the line was not
    /// sent.
    #[error("the lobby is unavailable: line not sent, try again")]
    Unavailable,
}

impl From<AppendRefusal> for LobbyError {
    fn from(refusal: AppendRefusal) -> Self {
        match refusal {
            AppendRefusal::Full(full) => LobbyError::Busy(full),
            AppendRefusal::Unavailable => LobbyError::Unavailable,
        }
    }
}

impl LobbyError {
    /// The refusal's reason as a metric label.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            LobbyError::Unnamed => "unnamed",
            LobbyError::MessageTooLong { .. } => "message_too_long",
            LobbyError::Gone => "gone",
            LobbyError::Room(RoomError::Full) => "room_full",
            LobbyError::Room(RoomError::NotSeated) => "not_seated",
            LobbyError::Room(RoomError::EmptyName | RoomError::NameTooLong { .. }) => "room_name",
            LobbyError::RateLimited { .. } => "rate",
            LobbyError::Flooding { .. } => "flood",
            LobbyError::Churning { .. } => "joins",
            LobbyError::Busy(_) => "busy",
            LobbyError::Unavailable => "unavailable",
        }
    }

    /// Whether the protocol must disconnect the member after telling it why.
    pub(crate) fn disconnects(&self) -> bool {
        matches!(self, LobbyError::Flooding { .. })
    }
}

/// Why a room request was refused. The text is what the sender is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The room already holds [`ROOM_SEATS`](crate::log::seats::ROOM_SEATS) members.
    #[error("the room is full")]
    Full,
    /// A room line from a member that holds no seat.
    #[error("join a room before sending chat messages")]
    NotSeated,
    /// A room name that is empty once cleaned.
    #[error("a room name must not be empty")]
    EmptyName,
    /// A room name over the limit.
    #[error("a room name is longer than {max} characters")]
    NameTooLong {
        /// The limit in force.
        max: usize,
    },
}
