//! The cluster's history, `<c>:lines`, as `/api/history` and a replay read it: a
//! stream entry as a stored line.

use redis::streams::StreamId;

use super::entry::{Envelope, Record, decode, skipped};
use crate::log::StoredLine;

/// A history entry as a stored line; `None` (logged, counted) if it cannot be read.
pub(super) fn stored_line(entry: &StreamId) -> Option<StoredLine> {
    line_of(&entry.id, entry.get::<String>("e").as_deref())
}

/// The history entry `entry_id` (`<line id>-0`), whose field `e` is `json`, as a stored
/// line; `None` (logged, counted) if it cannot be read.
pub(super) fn line_of(entry_id: &str, json: Option<&str>) -> Option<StoredLine> {
    let id = entry_id
        .split_once('-')
        .and_then(|(id, _)| id.parse::<i64>().ok());
    let record = json.and_then(decode);
    match (id, record) {
        (
            Some(id),
            Some(Envelope {
                record:
                    Record::Line {
                        name,
                        protocol,
                        text,
                        time_ms,
                        ..
                    },
                ..
            }),
        ) => Some(StoredLine {
            id,
            time_ms,
            name,
            protocol,
            text,
        }),
        _ => {
            skipped(entry_id, "not a chat line this build can read");
            None
        }
    }
}
