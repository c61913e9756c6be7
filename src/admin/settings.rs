//! The admin UI's settings, checked at start: who may log in (a user and a bcrypt
//! hash of the password, or explicitly nobody needs to), read-only, the namespace.

use std::fmt;
use std::str::FromStr;

pub(crate) use crate::config::AdminMode;

/// The admin namespace's default name, as the Node `instrument()`'s.
pub(crate) const DEFAULT_NAMESPACE: &str = "/admin";

/// How the admin UI is set up (`--admin-*`).
#[derive(Clone)]
pub(crate) struct AdminSettings {
    /// Who may log in.
    pub(crate) auth: AdminAuth,
    /// Watch only: operations are refused (and not advertised).
    pub(crate) readonly: bool,
    /// The Socket.IO namespace, `/admin` by default.
    pub(crate) namespace: String,
    /// The cluster this node is part of (`--redis-url`).
    pub(crate) cluster: Option<super::cluster::ClusterPlace>,
    /// Whether members' requests and events are sent too (`--admin-mode`).
    pub(crate) mode: AdminMode,
}

/// Who may log in to the admin namespace.
#[derive(Clone)]
pub(crate) enum AdminAuth {
    /// Anyone (`--admin-no-auth`).
    Nobody,
    /// The admin UI's `basic` authentication: this user, with a password whose bcrypt
    /// hash is this.
    Basic { user: String, hash: String },
}

impl fmt::Debug for AdminSettings {
    // The hash is not the password, but it is no one's business either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            AdminAuth::Nobody => "none".to_owned(),
            AdminAuth::Basic { user, .. } => format!("basic ({user})"),
        };
        f.debug_struct("AdminSettings")
            .field("auth", &auth)
            .field("readonly", &self.readonly)
            .field("namespace", &self.namespace)
            .field("cluster", &self.cluster)
            .field("mode", &self.mode)
            .finish()
    }
}

/// Why the admin settings cannot be used: the server does not start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    /// A user without a password hash.
    #[error(
        "--admin-user needs --admin-password-hash (a bcrypt hash of the password); to run the admin UI without a login, use --admin-no-auth instead"
    )]
    UserWithoutHash,
    /// A password hash without a user.
    #[error("--admin-password-hash needs --admin-user")]
    HashWithoutUser,
    /// A password hash that bcrypt cannot read.
    #[error(
        "--admin-password-hash is not a bcrypt hash (expected `$2b$<cost>$` and 53 characters, e.g. from `htpasswd -nbBC 12 \"\" <password>`)"
    )]
    NotBcrypt,
    /// A namespace that is not one.
    #[error("--admin-namespace must start with `/` and must not be `/` (the lobby's): got `{0}`")]
    Namespace(String),
}

impl AdminSettings {
    /// The settings the flags ask for; `Ok(None)`: the admin UI is off.
    pub(crate) fn from_flags(
        user: Option<&str>,
        hash: Option<&str>,
        no_auth: bool,
        readonly: bool,
        namespace: &str,
    ) -> Result<Option<Self>, SettingsError> {
        let auth = match (user, hash, no_auth) {
            (None, None, false) => return Ok(None),
            // clap refuses `--admin-no-auth` with the others.
            (_, _, true) => AdminAuth::Nobody,
            (Some(_), None, false) => return Err(SettingsError::UserWithoutHash),
            (None, Some(_), false) => return Err(SettingsError::HashWithoutUser),
            (Some(user), Some(hash), false) => {
                if bcrypt::HashParts::from_str(hash).is_err() {
                    return Err(SettingsError::NotBcrypt);
                }
                AdminAuth::Basic {
                    user: user.to_owned(),
                    hash: hash.to_owned(),
                }
            }
        };
        if !namespace.starts_with('/') || namespace == "/" {
            return Err(SettingsError::Namespace(namespace.to_owned()));
        }
        Ok(Some(Self {
            auth,
            readonly,
            namespace: namespace.to_owned(),
            cluster: None,
            mode: AdminMode::Production,
        }))
    }

    /// These settings on a node of `cluster`.
    pub(crate) fn on_cluster(self, cluster: Option<&crate::log::redis::ClusterSettings>) -> Self {
        let cluster = cluster.map(|cluster| super::cluster::ClusterPlace {
            url: cluster.url.clone(),
            prefix: cluster.cluster.clone(),
            node_id: cluster.node_id.clone(),
            response_timeout: cluster.response_timeout,
        });
        Self { cluster, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bcrypt of "secret", cost 4.
    const HASH: &str = "$2a$04$vikFoDRv9fyd2Cgn6CRrn.kECiYiU4d2wXyMgLkJdShtYacXsxXyO";

    #[test]
    fn off_unless_asked_and_a_hash_must_be_bcrypt() {
        let from =
            |user, hash, no_auth| AdminSettings::from_flags(user, hash, no_auth, false, "/admin");
        assert!(from(None, None, false).unwrap().is_none());
        assert_eq!(
            from(Some("op"), None, false).unwrap_err(),
            SettingsError::UserWithoutHash
        );
        assert_eq!(
            from(None, Some(HASH), false).unwrap_err(),
            SettingsError::HashWithoutUser
        );
        assert_eq!(
            from(Some("op"), Some("secret"), false).unwrap_err(),
            SettingsError::NotBcrypt
        );
        let on = from(Some("op"), Some(HASH), false).unwrap().unwrap();
        assert!(matches!(on.auth, AdminAuth::Basic { ref user, .. } if user == "op"));
        assert!(!format!("{on:?}").contains(HASH));
        assert!(matches!(
            from(None, None, true).unwrap().unwrap().auth,
            AdminAuth::Nobody
        ));
        assert_eq!(
            AdminSettings::from_flags(None, None, true, false, "/").unwrap_err(),
            SettingsError::Namespace("/".into())
        );
    }
}
