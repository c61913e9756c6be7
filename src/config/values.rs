//! The types of flag values of our own: a listener's port or `off`, a log format.

use std::fmt;
use std::str::FromStr;

/// A listener's port, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenPort {
    /// The listener is switched off.
    Off,
    /// Listen on this port (0: any free port).
    On(u16),
}

impl FromStr for ListenPort {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.eq_ignore_ascii_case("off") {
            return Ok(ListenPort::Off);
        }
        value
            .parse()
            .map(ListenPort::On)
            .map_err(|_| format!("expected a port number (0-65535) or `off`, got `{value}`"))
    }
}

impl fmt::Display for ListenPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenPort::Off => f.write_str("off"),
            ListenPort::On(port) => write!(f, "{port}"),
        }
    }
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// What the admin UI is sent besides the sockets, rooms and stats (`--admin-mode`), as
/// the Node `instrument()`'s `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AdminMode {
    /// No `event_received`/`event_sent`: nothing on the chat's path.
    Production,
    /// Also every request a member of this node sends (`event_received`) and every lobby
    /// event it is sent (`event_sent`), while an admin is connected.
    Development,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use clap::Parser;

    #[test]
    fn ports_parse_numbers_and_off() {
        assert_eq!("off".parse(), Ok(ListenPort::Off));
        assert_eq!("OFF".parse(), Ok(ListenPort::Off));
        assert_eq!("0".parse(), Ok(ListenPort::On(0)));
        assert_eq!("8001".parse(), Ok(ListenPort::On(8001)));
        assert!("70000".parse::<ListenPort>().is_err());
        let config = Config::parse_from(["chatterbox", "--ws-port", "off", "--tcp-text-port", "0"]);
        assert_eq!(config.ws_port, ListenPort::Off);
        assert_eq!(config.tcp_text_port, ListenPort::On(0));
        assert_eq!(config.tcp_json_port, ListenPort::On(5000));
    }
}
