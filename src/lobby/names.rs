//! Names: how every protocol's member names and room names are cleaned before the
//! lobby stores them.

use std::sync::Arc;

use crate::lobby::error::LobbyError;
use crate::lobby::rooms::RoomError;

/// The name given to a member whose chosen name is empty: "anonymous", as the original
/// page sends when its prompt is left empty.
pub(crate) const ANONYMOUS: &str = "익명";

/// Cleans a name the way every protocol's names are cleaned: control characters
/// removed, surrounding white space trimmed, cut to `max_chars`, empty → [`ANONYMOUS`].
pub(crate) fn clean_name(raw: &str, max_chars: usize) -> Arc<str> {
    let kept = without_control(raw);
    let cut: String = kept.trim().chars().take(max_chars).collect();
    let name = cut.trim();
    if name.is_empty() {
        Arc::from(ANONYMOUS)
    } else {
        Arc::from(name)
    }
}

/// Cleans a room name like a member name, but refuses instead of cutting or renaming:
/// a room is found by its exact name.
pub(crate) fn clean_room_name(raw: &str, max_chars: usize) -> Result<Arc<str>, LobbyError> {
    let kept = without_control(raw);
    let room = kept.trim();
    if room.is_empty() {
        return Err(LobbyError::Room(RoomError::EmptyName));
    }
    if room.chars().nth(max_chars).is_some() {
        return Err(LobbyError::Room(RoomError::NameTooLong { max: max_chars }));
    }
    Ok(Arc::from(room))
}

fn without_control(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_trimmed_and_cut() {
        let clean = |raw| clean_name(raw, 5);
        assert_eq!(&*clean("  ann\u{7}ie \n"), "annie");
        assert_eq!(&*clean("\t \u{1b}"), ANONYMOUS);
        assert_eq!(&*clean(""), ANONYMOUS);
        assert_eq!(&*clean("가나다라마바사"), "가나다라마");
        assert_eq!(&*clean("ab   cdef"), "ab");
    }

    #[test]
    fn room_names_are_cleaned_and_refused_when_empty_or_long() {
        assert_eq!(clean_room_name(" a\u{7}b ", 3).as_deref(), Ok("ab"));
        assert_eq!(
            clean_room_name("\t", 3),
            Err(LobbyError::Room(RoomError::EmptyName))
        );
        assert_eq!(
            clean_room_name("abcd", 3),
            Err(LobbyError::Room(RoomError::NameTooLong { max: 3 }))
        );
    }
}
