//! The admin namespace's login, as the admin UI's `basic` authentication: the
//! handshake's `auth` is `{username, password}` (checked against the bcrypt hash), or
//! `{sessionId}` from an earlier login (the `session` event gives it, the UI keeps it).
//!
//! - A refused login gets exactly `invalid credentials` (the text the UI shows).
//! - More than [`MAX_FAILED_LOGINS`] failed logins from one address within
//!   [`FAILURE_WINDOW`] refuse every login from it, right or wrong, for
//!   [`LOCKOUT`]: `too many failed logins: try again later`.
//! - A session lasts [`SESSION_LIFETIME`]; at most [`MAX_SESSIONS`] are kept (the
//!   oldest goes first).
//! - The password is never logged nor kept: only whether it matched.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::settings::AdminAuth;

/// How long a session id stays valid.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Sessions kept at most.
pub(crate) const MAX_SESSIONS: usize = 1000;
/// Failed logins an address may make within [`FAILURE_WINDOW`].
pub(crate) const MAX_FAILED_LOGINS: u32 = 10;
/// The window failed logins are counted in.
pub(crate) const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long an address over [`MAX_FAILED_LOGINS`] is refused.
pub(crate) const LOCKOUT: Duration = Duration::from_secs(5 * 60);
/// Addresses whose failures are remembered at most (the oldest windows go first).
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// What the admin UI sends in the handshake's `auth`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Credentials {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
}

/// Why a login was refused: what the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LoginRefused {
    /// Wrong user, password or session.
    #[error("invalid credentials")]
    Invalid,
    /// Too many failures from this address.
    #[error("too many failed logins: try again later")]
    LockedOut,
}

/// A login that succeeded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LoggedIn {
    /// No login asked for (`--admin-no-auth`).
    Open,
    /// With a valid session id.
    Session,
    /// With the password: the new session's id, to send as the `session` event.
    NewSession(String),
}

/// The admin namespace's gate: its settings, the sessions, the failures.
#[derive(Clone)]
pub(crate) struct Gate {
    auth: AdminAuth,
    state: Arc<Mutex<State>>,
    /// Where sessions are shared with the cluster's other nodes.
    cluster: Option<super::cluster::Cluster>,
}

#[derive(Default)]
struct State {
    /// Session id → when it expires.
    sessions: HashMap<String, Instant>,
    failures: HashMap<IpAddr, Failures>,
}

struct Failures {
    window_start: Instant,
    count: u32,
    locked_until: Option<Instant>,
}

impl Gate {
    pub(crate) fn new(auth: AdminAuth, cluster: Option<super::cluster::Cluster>) -> Self {
        Self {
            auth,
            state: Arc::default(),
            cluster,
        }
    }

    /// The user a login is for: the configured one, or `anyone` without auth.
    pub(crate) fn user(&self) -> &str {
        match &self.auth {
            AdminAuth::Nobody => "anyone",
            AdminAuth::Basic { user, .. } => user,
        }
    }

    /// Checks a login from `from` (bcrypt runs on the blocking pool).
    pub(crate) async fn log_in(
        &self,
        credentials: Credentials,
        from: Option<IpAddr>,
    ) -> Result<LoggedIn, LoginRefused> {
        let AdminAuth::Basic { user, hash } = &self.auth else {
            return Ok(LoggedIn::Open);
        };
        let now = Instant::now();
        if self.locked_out(from, now) {
            return Err(LoginRefused::LockedOut);
        }
        if let Some(id) = &credentials.session_id {
            if self.session_valid(id, now) {
                return Ok(LoggedIn::Session);
            }
            // Given by another node of the cluster.
            if let Some(cluster) = &self.cluster
                && is_session_id(id)
                && cluster.session_exists(id).await
            {
                return Ok(LoggedIn::Session);
            }
        }
        let matches = match (credentials.username, credentials.password) {
            (Some(name), Some(password)) if &name == user => {
                let hash = hash.clone();
                tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
                    .await
                    .map_err(|e| tracing::error!("the password check did not finish: {e}"))
                    .is_ok_and(|verified| verified.unwrap_or(false))
            }
            _ => false,
        };
        if !matches {
            self.failed(from, Instant::now());
            return Err(LoginRefused::Invalid);
        }
        let id = self.new_session(Instant::now());
        if let Some(cluster) = &self.cluster
            && !id.is_empty()
        {
            cluster.save_session(&id, SESSION_LIFETIME).await;
        }
        Ok(LoggedIn::NewSession(id))
    }

    fn locked_out(&self, from: Option<IpAddr>, now: Instant) -> bool {
        let Some(from) = from else { return false };
        let state = crate::locks::lock(&self.state);
        state
            .failures
            .get(&from)
            .and_then(|failures| failures.locked_until)
            .is_some_and(|until| now < until)
    }

    fn failed(&self, from: Option<IpAddr>, now: Instant) {
        let Some(from) = from else { return };
        let mut state = crate::locks::lock(&self.state);
        if state.failures.len() >= MAX_TRACKED_ADDRESSES && !state.failures.contains_key(&from) {
            state.failures.retain(|_, failures| {
                failures.locked_until.is_some_and(|until| now < until)
                    || now.duration_since(failures.window_start) < FAILURE_WINDOW
            });
            if state.failures.len() >= MAX_TRACKED_ADDRESSES
                && let Some(oldest) = state
                    .failures
                    .iter()
                    .min_by_key(|(_, failures)| failures.window_start)
                    .map(|(address, _)| *address)
            {
                state.failures.remove(&oldest);
            }
        }
        let failures = state.failures.entry(from).or_insert(Failures {
            window_start: now,
            count: 0,
            locked_until: None,
        });
        if now.duration_since(failures.window_start) >= FAILURE_WINDOW {
            failures.window_start = now;
            failures.count = 0;
        }
        failures.count += 1;
        if failures.count > MAX_FAILED_LOGINS {
            failures.locked_until = Some(now + LOCKOUT);
            failures.window_start = now;
            failures.count = 0;
            tracing::warn!(%from, "admin logins refused for {LOCKOUT:?}: too many failed logins");
        }
    }

    fn session_valid(&self, id: &str, now: Instant) -> bool {
        let mut state = crate::locks::lock(&self.state);
        match state.sessions.get(id) {
            Some(&expires) if now < expires => true,
            Some(_) => {
                state.sessions.remove(id);
                false
            }
            None => false,
        }
    }

    fn new_session(&self, now: Instant) -> String {
        let mut bytes = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut bytes) {
            // No randomness: a session id anyone could guess must not be given.
            tracing::error!("no random session id ({e}): the UI will log in again");
            return String::new();
        }
        let id: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        let mut state = crate::locks::lock(&self.state);
        state.sessions.retain(|_, &mut expires| now < expires);
        if state.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = state
                .sessions
                .iter()
                .min_by_key(|(_, expires)| **expires)
                .map(|(id, _)| id.clone())
        {
            state.sessions.remove(&oldest);
        }
        state.sessions.insert(id.clone(), now + SESSION_LIFETIME);
        id
    }

    #[cfg(test)]
    fn expire_sessions_at(&self, now: Instant) -> usize {
        let mut state = crate::locks::lock(&self.state);
        state.sessions.retain(|_, &mut expires| now < expires);
        state.sessions.len()
    }
}

/// Whether `id` can be a session id (32 hex digits): anything else is not looked up.
fn is_session_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|byte| byte.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bcrypt of "secret", cost 4.
    const HASH: &str = "$2a$04$vikFoDRv9fyd2Cgn6CRrn.kECiYiU4d2wXyMgLkJdShtYacXsxXyO";

    fn gate() -> Gate {
        Gate::new(
            AdminAuth::Basic {
                user: "op".into(),
                hash: HASH.into(),
            },
            None,
        )
    }

    fn login(user: &str, password: &str) -> Credentials {
        Credentials {
            username: Some(user.into()),
            password: Some(password.into()),
            session_id: None,
        }
    }

    #[tokio::test]
    async fn a_login_gives_a_session_that_expires_after_a_day() {
        let gate = gate();
        let from = Some(IpAddr::from([10, 0, 0, 1]));
        let Ok(LoggedIn::NewSession(id)) = gate.log_in(login("op", "secret"), from).await else {
            panic!("refused");
        };
        assert_eq!(id.len(), 32);
        let again = Credentials {
            session_id: Some(id.clone()),
            ..Credentials::default()
        };
        assert_eq!(gate.log_in(again, from).await, Ok(LoggedIn::Session));
        let made_up = Credentials {
            session_id: Some("0123".into()),
            ..Credentials::default()
        };
        assert_eq!(gate.log_in(made_up, from).await, Err(LoginRefused::Invalid));
        let later = Instant::now() + SESSION_LIFETIME;
        assert!(!gate.session_valid(&id, later));
        assert_eq!(gate.expire_sessions_at(later), 0);
    }

    #[tokio::test]
    async fn more_than_ten_failures_a_minute_lock_the_address_out() {
        let gate = gate();
        let (bad, other) = (
            Some(IpAddr::from([10, 0, 0, 2])),
            Some(IpAddr::from([10, 0, 0, 3])),
        );
        for _ in 0..MAX_FAILED_LOGINS {
            assert_eq!(
                gate.log_in(login("op", "guess"), bad).await,
                Err(LoginRefused::Invalid)
            );
        }
        assert_eq!(
            gate.log_in(login("root", "secret"), bad).await,
            Err(LoginRefused::Invalid)
        );
        // Locked out: even the right password is refused.
        assert_eq!(
            gate.log_in(login("op", "secret"), bad).await,
            Err(LoginRefused::LockedOut)
        );
        assert!(matches!(
            gate.log_in(login("op", "secret"), other).await,
            Ok(LoggedIn::NewSession(_))
        ));
        assert!(!gate.locked_out(bad, Instant::now() + LOCKOUT));
    }
}
