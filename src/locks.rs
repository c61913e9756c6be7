//! The one way chatterbox takes a lock. Every critical section in the server leaves its
//! data consistent (entries are inserted and removed whole, counts updated whole), so a
//! lock poisoned by a panic elsewhere is still safe to use: one panicking connection
//! must not make every later one panic on the same lock. A leaf: no crate imports.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
