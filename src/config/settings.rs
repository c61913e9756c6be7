//! What each part of the server is given of the flags: the lobby's limits, each
//! listener's policies, the time limits, the history and its retention, the cluster,
//! the admin UI; and the combinations of flags the server refuses to start with.

use std::time::Duration;

use super::Config;
use crate::http::origins::AllowedOrigins;
use crate::lobby::Limits;
use crate::lobby::backlog::SlowRule;
use crate::lobby::churn::JoinLimit;
use crate::lobby::rate::RateLimit;
use crate::log::sqlite::Retention;
use crate::net::Timeouts;
use crate::protocols::websocket;

/// Seconds in a day, for `--history-keep-days`.
const SECS_PER_DAY: u64 = 24 * 60 * 60;

impl Config {
    /// Web origins allowed to open Socket.IO and WebSocket connections.
    pub(crate) fn allowed_origins(&self) -> AllowedOrigins {
        AllowedOrigins::new(&self.allowed_origins)
    }

    /// The plain WebSocket listener's policies.
    pub(crate) fn websocket_policy(&self) -> websocket::Policy {
        websocket::Policy {
            allowed_origins: self.allowed_origins(),
            max_message_bytes: self.max_ws_message_bytes,
        }
    }

    /// The limits the lobby applies to every member.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_name_chars: self.max_name_chars,
            max_message_chars: self.max_message_chars,
            max_room_name_chars: self.max_room_name_chars,
            outbox_messages: self.outbox_messages,
            slow: SlowRule {
                max_bytes: self.outbox_bytes,
                max_behind: Duration::from_millis(self.outbox_behind_ms),
            },
            rate: RateLimit {
                lines_per_sec: self.rate_lines_per_sec,
                burst: self.rate_burst,
                strikes: self.rate_strikes,
            },
            joins: JoinLimit {
                per_min: self.rate_joins_per_min,
                burst: self.rate_join_burst,
            },
            history_queue_lines: self.history_queue_lines,
            replay_lines: self.replay,
            log_fold: Duration::from_secs(self.log_fold_secs),
        }
    }

    /// The time limits of the raw connection protocols.
    pub(crate) fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: millis(self.connect_timeout_ms),
            stall: millis(self.stall_timeout_ms),
            header: millis(self.header_timeout_ms),
        }
    }

    /// The HTTP header read timeout; `None`: none.
    pub(crate) fn header_timeout(&self) -> Option<Duration> {
        millis(self.header_timeout_ms)
    }

    /// Which lines the history keeps.
    pub fn retention(&self) -> Retention {
        Retention {
            keep_lines: self.history_keep_lines,
            keep_age: (self.history_keep_days > 0)
                .then(|| Duration::from_secs(self.history_keep_days.saturating_mul(SECS_PER_DAY))),
        }
    }

    /// Where the cluster is, when this is a cluster node (`--redis-url`).
    pub fn cluster(&self) -> Option<crate::log::redis::ClusterSettings> {
        let url = self.redis_url.clone()?;
        Some(crate::log::redis::ClusterSettings {
            url,
            cluster: self.cluster.clone(),
            node_id: self
                .node_id
                .clone()
                .unwrap_or_else(crate::log::redis::generated_node_id),
            lease: Duration::from_millis(self.node_lease_ms),
            response_timeout: Duration::from_millis(self.redis_timeout_ms),
            log_entries: self.cluster_log_entries,
            history_lines: self.history_keep_lines,
        })
    }

    /// The history file, unless the history is off.
    pub(crate) fn history_path(&self) -> Option<&std::path::Path> {
        (!self.no_history).then_some(self.db.as_path())
    }

    /// The admin namespace's settings; `None`: the admin UI is off.
    pub(crate) fn admin(
        &self,
    ) -> Result<Option<crate::admin::AdminSettings>, crate::admin::SettingsError> {
        crate::admin::AdminSettings::from_flags(
            self.admin_user.as_deref(),
            self.admin_password_hash.as_deref(),
            self.admin_no_auth,
            self.admin_readonly,
            &self.admin_namespace,
        )
        .map(|settings| {
            settings.map(|settings| crate::admin::AdminSettings {
                mode: self.admin_mode,
                ..settings
            })
        })
    }

    /// Engine.IO heartbeat interval.
    pub(crate) fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    /// Engine.IO heartbeat timeout.
    pub(crate) fn ping_timeout(&self) -> Duration {
        Duration::from_millis(self.ping_timeout_ms)
    }
}

/// A combination of settings the server refuses to start with: a flag that would
/// otherwise be ignored without a word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A single node's history setting given to a cluster node.
    #[error(
        "--{flag} does not apply to a cluster node (--redis-url): its history is the cluster's, in Redis (see --history-keep-lines)"
    )]
    NotOnCluster {
        /// The flag, without its dashes.
        flag: &'static str,
    },
}

impl Config {
    /// Refuses the settings that would be ignored: every flag works on every kind of
    /// node, or the server does not start.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.redis_url.is_none() {
            return Ok(());
        }
        if self.no_history {
            return Err(ConfigError::NotOnCluster { flag: "no-history" });
        }
        if self.history_keep_days > 0 {
            return Err(ConfigError::NotOnCluster {
                flag: "history-keep-days",
            });
        }
        Ok(())
    }
}

/// `ms` milliseconds; `None` for 0 (no limit).
fn millis(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn history_settings_of_a_single_node_are_refused_on_a_cluster_node() {
        let parse = |args: &[&str]| Config::parse_from([&["chatterbox"], args].concat());
        assert_eq!(parse(&["--no-history"]).check(), Ok(()));
        assert_eq!(parse(&["--redis-url", "redis://r"]).check(), Ok(()));
        let refused = parse(&["--redis-url", "redis://r", "--no-history"]).check();
        assert_eq!(
            refused,
            Err(ConfigError::NotOnCluster { flag: "no-history" })
        );
        let refused = parse(&["--redis-url", "redis://r", "--history-keep-days", "3"]).check();
        assert_eq!(
            refused.map_err(|e| e.to_string()),
            Err("--history-keep-days does not apply to a cluster node (--redis-url): its history is the cluster's, in Redis (see --history-keep-lines)".to_owned())
        );
    }

    #[test]
    fn limits_have_their_defaults_and_zero_switches_them_off() {
        let config = Config::parse_from(["chatterbox"]);
        assert_eq!(
            (config.max_connections, config.max_connections_per_ip),
            (10_000, 256)
        );
        assert_eq!(config.limits().rate, RateLimit::default());
        let timeouts = config.timeouts();
        assert_eq!(timeouts.connect, Some(Duration::from_secs(30)));
        assert_eq!(timeouts.stall, Some(Duration::from_secs(10)));
        assert_eq!(config.header_timeout(), Some(Duration::from_secs(10)));

        let config = Config::parse_from([
            "chatterbox",
            "--rate-lines-per-sec",
            "0",
            "--connect-timeout-ms",
            "0",
            "--stall-timeout-ms",
            "250",
            "--header-timeout-ms",
            "0",
        ]);
        assert_eq!(config.limits().rate.lines_per_sec, 0);
        assert_eq!(config.timeouts().connect, None);
        assert_eq!(config.timeouts().stall, Some(Duration::from_millis(250)));
        assert_eq!(config.header_timeout(), None);
    }

    #[test]
    fn the_history_keeps_everything_unless_told() {
        let config = Config::parse_from(["chatterbox"]);
        assert!(config.retention().keeps_everything());
        let config = Config::parse_from([
            "chatterbox",
            "--history-keep-lines",
            "5000",
            "--history-keep-days",
            "30",
        ]);
        assert_eq!(
            config.retention(),
            Retention {
                keep_lines: 5000,
                keep_age: Some(Duration::from_secs(30 * 24 * 60 * 60)),
            }
        );
    }
}
