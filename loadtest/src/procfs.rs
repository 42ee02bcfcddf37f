//! CPU time and resident memory of a process, read from `/proc` (Linux only).

use anyhow::{anyhow, bail, Context, Result};
use std::time::Duration;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSample {
    /// utime + stime of every thread, in clock ticks.
    pub cpu_ticks: u64,
    /// VmRSS in KiB.
    pub rss_kib: u64,
}

impl ProcSample {
    pub fn read(pid: u32) -> Result<ProcSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        Ok(ProcSample {
            cpu_ticks: parse_cpu_ticks(&stat)?,
            rss_kib: parse_vm_rss_kib(&status)?,
        })
    }
}

/// CPU time of the whole machine, in clock ticks, from the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxSample {
    /// user + nice + system (guest time is inside user): what processes ran, ours included.
    pub process_ticks: u64,
    /// Time the hypervisor gave to other guests: a disturbance like any other process.
    pub steal_ticks: u64,
    /// irq + softirq. Mostly the loopback traffic of this very run, which the kernel does not
    /// charge to the server or the client.
    pub irq_ticks: u64,
}

impl BoxSample {
    pub fn read() -> Result<BoxSample> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        parse_box(&stat)
    }
}

fn parse_box(stat: &str) -> Result<BoxSample> {
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("no cpu line in /proc/stat"))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().context("/proc/stat cpu field"))
        .collect::<Result<_>>()?;
    let [user, nice, system, _idle, _iowait, irq, softirq, steal] = v[..] else {
        bail!("/proc/stat cpu line has fewer than 8 fields");
    };
    Ok(BoxSample {
        process_ticks: user + nice + system,
        steal_ticks: steal,
        irq_ticks: irq + softirq,
    })
}

/// CPU time between two samples.
pub fn cpu_between(before: ProcSample, after: ProcSample, ticks_per_sec: u64) -> Duration {
    let ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks);
    Duration::from_nanos(ticks * 1_000_000_000 / ticks_per_sec.max(1))
}

/// Clock ticks per second (`getconf CLK_TCK`); 100, Linux's value everywhere that matters, when
/// `getconf` is missing.
pub fn clock_ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// utime (field 14) + stime (field 15) of `/proc/PID/stat`. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Result<u64> {
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow!("no ')' in /proc/PID/stat"))?
        .1;
    // rest starts at field 3 (state), so field N is at index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Result<u64> {
        fields
            .get(n - 3)
            .ok_or_else(|| anyhow!("/proc/PID/stat has no field {n}"))?
            .parse::<u64>()
            .with_context(|| format!("/proc/PID/stat field {n}"))
    };
    Ok(field(14)? + field(15)?)
}

fn parse_vm_rss_kib(status: &str) -> Result<u64> {
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS in /proc/PID/status"))?;
    line.trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .context("VmRSS value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_name() {
        let stat = "1234 (we ird) name)) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 3 0 100 12345678 900 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat).unwrap(), 325);
    }

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tnode\nVmPeak:\t  999 kB\nVmRSS:\t   53124 kB\nThreads:\t7\n";
        assert_eq!(parse_vm_rss_kib(status).unwrap(), 53124);
    }

    #[test]
    fn parses_box_stat() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(
            parse_box(stat).unwrap(),
            BoxSample {
                process_ticks: 155,
                steal_ticks: 1,
                irq_ticks: 5,
            }
        );
        assert!(parse_box("cpu 1 2 3\n").is_err());
        assert!(BoxSample::read().unwrap().process_ticks > 0);
    }

    #[test]
    fn reads_own_process() {
        let s = ProcSample::read(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
    }

    #[test]
    fn cpu_between_converts_ticks() {
        let a = ProcSample {
            cpu_ticks: 10,
            rss_kib: 0,
        };
        let b = ProcSample {
            cpu_ticks: 60,
            rss_kib: 0,
        };
        assert_eq!(cpu_between(a, b, 100), Duration::from_millis(500));
        assert_eq!(cpu_between(b, a, 100), Duration::ZERO);
    }
}
