//! Test support, one file per protocol: [`server`] (a server on port 0, in the test
//! process or as the binary), [`redis`] (a redis-server of the test's own), [`http`], [`socketio`], [`tcp`], [`ws`], and [`crowd`] (a
//! chatting crowd of every protocol). Every receive is bounded by a timeout ([`WAIT`]).
// Each test binary uses its own part of this module (and of its re-exports).
#![allow(dead_code, unused_imports)]

pub mod crowd;
pub mod http;
pub mod redis;
pub mod server;
pub mod socketio;
pub mod tcp;
pub mod ws;

use std::time::Duration;

pub use http::*;
pub use server::*;
pub use socketio::*;
pub use tcp::*;
pub use ws::*;

/// How long a test waits for something it expects before failing.
pub const WAIT: Duration = Duration::from_secs(10);
