//! Names: how every protocol's member names and room names are cleaned, and which name
//! a member is given, so that nobody can pass for the server or for anyone present.
//!
//! Cleaning ([`clean_name`]): control characters (Unicode category Cc) and format
//! characters (Cf: zero-width spaces and joiners, bidi overrides and isolates, the BOM,
//! the soft hyphen) are removed, then surrounding white space is trimmed, then the name
//! is cut to `--max-name-chars`; an empty name becomes [`ANONYMOUS`].
//!
//! Giving (`Lobby::give_name`): two names are the same name when their [`fold`]s are
//! equal: Unicode's compatibility caseless match (NFKC and full case folding), so
//! `Victim`, `ＶＩＣＴＩＭ` and `victim` are one name. A member is not given
//! - [`SERVER`], the name of the server's own announcements, nor anything that folds to
//!   it (`Server`, `ＳＥＲＶＥＲ`, `ſerver`);
//! - `guest-<n>`, the name the server gives member n of a protocol without names, unless
//!   it is member n;
//! - a name another member present in the lobby holds (any protocol).
//!
//! A member asking for such a name is given the nearest free one instead:
//! `<name>-2`, `<name>-3`, … (the name cut so that the suffix fits `--max-name-chars`),
//! or, if none of those is free, its own `guest-<n>`. It is announced under that
//! name, its lines go out under it, and it is told once ([`NameTaken`]). A member asking
//! for the name it holds keeps it.
//!
//! The decision is made under the lobby's member lock, and stored under the same hold
//! ([`Table::give`](super::table::Table::give)), so two members racing for one name
//! cannot both get it. It scans the member table (once; a second time, into a set, when the name is taken):
//! names change far less often than lines are said. A cluster node also refuses the
//! names the members of the other nodes hold, as its log has announced them: a name
//! held on any node is taken on every node. Two members of two nodes asking for one
//! free name within the same few milliseconds (before either join has reached the other
//! node) can both get it; guest names cannot clash, member ids being the cluster's.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::error::{LobbyError, RoomError};

/// The name given to a member whose chosen name is empty: "anonymous", as the original
/// page sends when its prompt is left empty.
pub(crate) const ANONYMOUS: &str = "익명";

/// The name of the server's own announcements (the Socket.IO `update`s of joins and
/// leaves), as the original server sent it. No member is given it.
pub(crate) const SERVER: &str = "SERVER";

/// The [`fold`] of [`SERVER`].
const SERVER_FOLDED: &str = "server";

/// What the server's guest names start with: `guest-<n>`, n the member's number.
const GUEST: &str = "guest-";

/// The name the server gives member `id` of a protocol without names.
pub(crate) fn guest_name(id: u64) -> Arc<str> {
    Arc::from(format!("{GUEST}{id}"))
}

/// Cleans a name the way every protocol's names are cleaned: control and format
/// characters removed, surrounding white space trimmed, cut to `max_chars`, empty →
/// [`ANONYMOUS`].
pub(crate) fn clean_name(raw: &str, max_chars: usize) -> Arc<str> {
    let kept = without_invisible(raw);
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
    let kept = without_invisible(raw);
    let room = kept.trim();
    if room.is_empty() {
        return Err(LobbyError::Room(RoomError::EmptyName));
    }
    if room.chars().nth(max_chars).is_some() {
        return Err(LobbyError::Room(RoomError::NameTooLong { max: max_chars }));
    }
    Ok(Arc::from(room))
}

/// `raw` without control characters (Cc) and format characters (Cf).
fn without_invisible(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control() && c.general_category() != GeneralCategory::Format)
        .collect()
}

/// The form in which two names are compared: Unicode's compatibility caseless match
/// (D146: NFD, case fold, NFKD, case fold, NFKD), so names that differ only in case,
/// width or compatibility forms are one name.
pub(crate) fn fold(name: &str) -> Box<str> {
    let folded: String = name
        .chars()
        .nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkd()
        .collect();
    folded.into_boxed_str()
}

/// The name a member is given, and what it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Given {
    pub(super) name: Arc<str>,
    /// The name's [`fold`].
    pub(super) key: Box<str>,
    /// The name asked for (cleaned).
    pub(super) asked: Arc<str>,
}

impl Given {
    /// `name`, given as it was asked for (tests that need a decided name).
    #[cfg(test)]
    pub(super) fn as_asked(name: &str) -> Self {
        Self {
            name: name.into(),
            key: fold(name),
            asked: name.into(),
        }
    }

    /// What the member is told when it did not get the name it asked for.
    pub(super) fn taken(&self) -> Option<NameTaken> {
        (self.name != self.asked).then(|| NameTaken {
            asked: self.asked.clone(),
            given: self.name.clone(),
        })
    }
}

/// A member asked for a name that is taken (by the server or by another member) and was
/// given another. Not a refusal: the request went through under the given name. The
/// text is what the member is told, in its protocol's error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NameTaken {
    /// The name asked for, cleaned.
    pub(crate) asked: Arc<str>,
    /// The name given.
    pub(crate) given: Arc<str>,
}

impl fmt::Display for NameTaken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let NameTaken { asked, given } = self;
        write!(f, "the name \"{asked}\" is taken: you are \"{given}\"")
    }
}

/// The names held on other nodes of a cluster, for [`decide`].
pub(super) struct Elsewhere<'a> {
    /// Whether a member of another node holds the name folding to this.
    pub(super) held: &'a dyn Fn(&str) -> bool,
    /// At most how many names they hold.
    pub(super) count: usize,
}

/// The name member `id` is given when it asks for `asked` (`Lobby::give_name`), `others`
/// the folds of the names the other members of this node hold.
pub(super) fn decide<'a, I: Iterator<Item = &'a str>>(
    asked: Arc<str>,
    id: u64,
    max_chars: usize,
    others: impl Fn() -> I,
    elsewhere: Elsewhere<'_>,
) -> Given {
    let own_guest = fold(&guest_name(id));
    let kept_for_others = |key: &str| {
        key == SERVER_FOLDED || (is_guest(key) && key != &*own_guest) || (elsewhere.held)(key)
    };
    let key = fold(&asked);
    if !kept_for_others(&key) && !others().any(|other| other == &*key) {
        return Given {
            name: asked.clone(),
            key,
            asked,
        };
    }
    let held: HashSet<&str> = others().collect();
    // Each candidate folds to a different name, and each other member holds one: one
    // of the first `held.len() + 1` is free, unless they are all guest names.
    for n in 2..=held.len() + elsewhere.count + 2 {
        let suffix = format!("-{n}");
        let room = max_chars.saturating_sub(suffix.chars().count());
        let base: String = asked.chars().take(room).collect();
        let base = base.trim_end();
        if base.is_empty() {
            break; // the limit leaves no room for a name before the suffix
        }
        let name = format!("{base}{suffix}");
        let key = fold(&name);
        if !kept_for_others(&key) && !held.contains(&*key) {
            return Given {
                name: Arc::from(name),
                key,
                asked,
            };
        }
    }
    // Kept for this member alone: always free.
    Given {
        name: guest_name(id),
        key: own_guest,
        asked,
    }
}

/// Whether a folded name is a guest name, `guest-<n>`.
fn is_guest(key: &str) -> bool {
    key.strip_prefix(GUEST)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
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
    fn format_characters_are_removed_before_the_trim_and_the_cut() {
        let clean = |raw| clean_name(raw, 6);
        // Zero-width space, non-joiner, joiner, word joiner, BOM, soft hyphen.
        assert_eq!(
            &*clean("S\u{200b}E\u{200c}R\u{200d}V\u{2060}E\u{feff}R\u{ad}"),
            "SERVER"
        );
        // Bidi embeddings, overrides and isolates.
        assert_eq!(&*clean("\u{202e}REVRES\u{202c}"), "REVRES");
        assert_eq!(
            &*clean("\u{2066}\u{2067}\u{2068}ab\u{2069}\u{200f}\u{200e}"),
            "ab"
        );
        // Removed first, then trimmed: the space the format character hid is trimmed.
        assert_eq!(&*clean("\u{200b} kim \u{200b}"), "kim");
        // Removed first, then cut: invisible characters take no room.
        assert_eq!(&*clean("\u{200b}\u{200b}\u{200b}abcdefgh"), "abcdef");
        assert_eq!(&*clean("\u{200b}\u{feff}"), ANONYMOUS);
    }

    #[test]
    fn room_names_are_cleaned_and_refused_when_empty_or_long() {
        assert_eq!(clean_room_name(" a\u{7}b ", 3).as_deref(), Ok("ab"));
        assert_eq!(clean_room_name("a\u{200b}bc", 3).as_deref(), Ok("abc"));
        assert_eq!(
            clean_room_name("\t\u{200b}", 3),
            Err(LobbyError::Room(RoomError::EmptyName))
        );
        assert_eq!(
            clean_room_name("abcd", 3),
            Err(LobbyError::Room(RoomError::NameTooLong { max: 3 }))
        );
    }

    #[test]
    fn names_fold_over_case_width_and_compatibility_forms() {
        assert_eq!(&*fold(SERVER), SERVER_FOLDED);
        for server in ["Server", "server", "ＳＥＲＶＥＲ", "ſerver", "SERVEＲ"] {
            assert_eq!(&*fold(server), SERVER_FOLDED, "{server}");
        }
        assert_eq!(fold("Straße"), fold("STRASSE"));
        assert_eq!(fold("ｖｉｃｔｉｍ"), fold("Victim"));
        // Composed and decomposed forms are one name.
        assert_eq!(fold("é"), fold("e\u{301}"));
        assert_ne!(fold("REVRES"), fold(SERVER));
        assert_ne!(fold("SERVER-2"), fold(SERVER));
    }

    fn given(asked: &str, id: u64, max_chars: usize, others: &[&str]) -> (String, Option<String>) {
        let folds: Vec<Box<str>> = others.iter().map(|name| fold(name)).collect();
        let nowhere = Elsewhere {
            held: &|_| false,
            count: 0,
        };
        let given = decide(
            Arc::from(asked),
            id,
            max_chars,
            || folds.iter().map(|key| &**key),
            nowhere,
        );
        let told = given.taken().map(|taken| taken.to_string());
        (given.name.to_string(), told)
    }

    /// What a member asking for `asked` and given `given` is told.
    fn told(asked: &str, given: &str) -> (String, Option<String>) {
        let told = format!("the name \"{asked}\" is taken: you are \"{given}\"");
        (given.to_owned(), Some(told))
    }

    #[test]
    fn a_free_name_is_given_as_asked() {
        assert_eq!(
            given("victim", 1, 32, &["ann", "bob"]),
            ("victim".into(), None)
        );
        // The member's own guest name is its own.
        assert_eq!(
            given("guest-7", 7, 32, &["guest-8"]),
            ("guest-7".into(), None)
        );
        // Names around the kept ones are ordinary names.
        for free in [
            "SERVER-2",
            "REVRES",
            "guest",
            "guest-",
            "guest-7-2",
            "guest-x",
        ] {
            assert_eq!(given(free, 1, 32, &[]), (free.into(), None));
        }
    }

    #[test]
    fn the_servers_names_are_not_given() {
        for server in ["SERVER", "Server", "ＳＥＲＶＥＲ"] {
            let name = format!("{server}-2");
            assert_eq!(given(server, 1, 32, &[]), told(server, &name));
        }
        // Another member's guest name, present or not.
        assert_eq!(
            given("guest-7", 3, 32, &["guest-7"]),
            told("guest-7", "guest-7-2")
        );
        assert_eq!(
            given("GUEST-９", 3, 32, &[]),
            told("GUEST-９", "GUEST-９-2")
        );
    }

    #[test]
    fn a_name_held_by_another_member_gets_the_nearest_free_one() {
        assert_eq!(
            given("victim", 2, 32, &["victim"]),
            told("victim", "victim-2")
        );
        // Held in another case or width, or with its suffixes held too.
        assert_eq!(given("victim", 2, 32, &["ＶＩＣＴＩＭ"]).0, "victim-2");
        assert_eq!(
            given("Victim", 5, 32, &["victim", "VICTIM-2", "victim-3"]).0,
            "Victim-4"
        );
        assert_eq!(given("SERVER", 4, 32, &["server-2"]).0, "SERVER-3");
        assert_eq!(given(ANONYMOUS, 4, 32, &[ANONYMOUS]).0, "익명-2");
        // The name is cut so that the suffix fits the limit.
        assert_eq!(given("abcdef", 2, 6, &["abcdef"]).0, "abcd-2");
        assert_eq!(given("ab cdef", 2, 5, &["ab cdef"]).0, "ab-2");
        let many: Vec<String> = ["abcdef".to_owned()]
            .into_iter()
            .chain((2..10).map(|n| format!("abcd-{n}")))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(given("abcdef", 2, 6, &many).0, "abc-10");
    }

    #[test]
    fn with_no_free_name_near_the_member_is_its_guest() {
        // Every `guest-<n>` is kept for member n.
        assert_eq!(
            given("guest", 30, 32, &["guest"]),
            told("guest", "guest-30")
        );
        // A limit that leaves no room before the suffix.
        assert_eq!(given("ab", 9, 2, &["ab"]).0, "guest-9");
    }

    mod in_the_lobby {
        use crate::lobby::tests::Recorder;
        use crate::lobby::{Event, Limits, Lobby};
        use crate::protocol::Protocol;

        /// What `heard` says of names: `+X` (X joined), `-X` (X left), `X: line`.
        fn heard(watcher: &Recorder) -> Vec<String> {
            let heard = watcher.take().into_iter().map(|event| match event {
                Event::Joined { name, .. } => format!("+{name}"),
                Event::Left { name, .. } => format!("-{name}"),
                Event::Message { name, text, .. } => format!("{name}: {text}"),
            });
            heard.collect()
        }

        #[test]
        fn members_racing_for_one_name_never_both_get_it() {
            let lobby = Lobby::new(Limits::default());
            // Each racer stays a member until every name is decided.
            let mut names: Vec<String> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..8)
                    .map(|_| {
                        scope.spawn(|| {
                            let member = lobby
                                .join(Protocol::SocketIo, Recorder::default(), None)
                                .unwrap();
                            let name = member.set_name("victim").unwrap().to_string();
                            (member, name)
                        })
                    })
                    .collect();
                let held: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
                held.into_iter().map(|(_member, name)| name).collect()
            });
            names.sort();
            let expected: Vec<String> = ["victim".to_owned()]
                .into_iter()
                .chain((2..=8).map(|n| format!("victim-{n}")))
                .collect();
            assert_eq!(names, expected);
        }

        #[test]
        fn a_rename_to_its_own_name_keeps_it_and_a_left_name_is_free_again() {
            let lobby = Lobby::new(Limits::default());
            let watcher = Recorder::default();
            let _w = lobby
                .join(Protocol::SocketIo, watcher.clone(), None)
                .unwrap();
            let victim = lobby
                .join(Protocol::SocketIo, Recorder::default(), None)
                .unwrap();
            assert_eq!(&*victim.set_name("victim").unwrap(), "victim");
            assert_eq!(&*victim.set_name("Victim").unwrap(), "Victim");
            let other = lobby
                .join(Protocol::TcpJson, Recorder::default(), None)
                .unwrap();
            let mut told = None;
            let name = other
                .set_name_telling("victim", |taken| told = Some(taken.to_string()))
                .unwrap();
            assert_eq!((name.to_string(), told), super::told("victim", "victim-2"));
            drop(victim);
            assert_eq!(&*other.set_name("victim").unwrap(), "victim");
            assert_eq!(
                heard(&watcher),
                ["+victim", "+Victim", "+victim-2", "-Victim", "+victim"]
            );
        }

        #[test]
        fn a_claimed_name_keeps_the_name_given_for_it_and_is_told_once() {
            let lobby = Lobby::new(Limits::default());
            let watcher = Recorder::default();
            let _w = lobby
                .join(Protocol::SocketIo, watcher.clone(), None)
                .unwrap();
            let victim = lobby
                .join(Protocol::SocketIo, Recorder::default(), None)
                .unwrap();
            victim.set_name("victim").unwrap();
            let ws = lobby
                .join(Protocol::WebSocket, Recorder::default(), None)
                .unwrap();
            let taken = ws.say_as("victim", "one").unwrap().map(|t| t.to_string());
            assert_eq!(taken, super::told("victim", "victim-2").1);
            assert_eq!(ws.say_as("victim", "two"), Ok(None));
            // Still `victim-2` once `victim` has left: its claim has not changed.
            drop(victim);
            assert_eq!(ws.say_as("victim", "three"), Ok(None));
            // A new claim is decided anew.
            assert_eq!(ws.say_as("kim", "four"), Ok(None));
            assert_eq!(ws.say_as("victim", "five"), Ok(None));
            assert_eq!(
                heard(&watcher),
                [
                    "+victim",
                    "+guest-3",
                    "victim-2: one",
                    "victim-2: two",
                    "-victim",
                    "victim-2: three",
                    "kim: four",
                    "victim: five",
                ]
            );
        }
    }
}
