//! A process's CPU time and memory, read from Linux's /proc: `/proc/<pid>/stat` (user
//! and system time, in clock ticks) and `/proc/<pid>/status` (`VmRSS`, `VmHWM`, in KiB).
//! For the server (`--server-pid`) and for the generator itself (`self`).

use std::time::Duration;

/// A process's CPU time (user + system) and memory, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User and system time so far.
    pub cpu: Duration,
    /// Resident memory now.
    pub rss_kib: u64,
    /// The most resident memory so far.
    pub peak_rss_kib: u64,
}

/// The usage of process `pid` (a number, or `self`), if /proc has it.
pub fn usage(pid: &str) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state: utime and
    // stime are the 12th and 13th of them.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&hz| hz > 0)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(Usage {
        cpu: Duration::from_millis(ticks * 1000 / per_second),
        rss_kib: kib("VmRSS:")?,
        peak_rss_kib: kib("VmHWM:")?,
    })
}

/// The usage of the server, when its process id is known (`--server-pid`).
pub fn server_usage(pid: Option<u32>) -> Option<Usage> {
    pid.and_then(|pid| usage(&pid.to_string()))
}
