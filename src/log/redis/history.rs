//! The cluster's history, `<c>:lines`, as `/api/history` and a replay read it: a
//! stream entry as a stored line.

use redis::streams::StreamId;

use super::entry::{Envelope, Record, decode, skipped};
use crate::log::StoredLine;

/// A history entry as a stored line; `None` (logged, counted) if it cannot be read.
pub(super) fn stored_line(entry: &StreamId) -> Option<StoredLine> {
    let id = entry
        .id
        .split_once('-')
        .and_then(|(id, _)| id.parse::<i64>().ok());
    let record = entry.get::<String>("e").and_then(|e| decode(&e));
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
            skipped(&entry.id, "not a chat line this build can read");
            None
        }
    }
}
