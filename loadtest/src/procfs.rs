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

/// Reads every process of `pids`, in order; `what` names the moment in errors.
pub fn read_all(pids: &[u32], what: &str) -> Result<Vec<ProcSample>> {
    pids.iter()
        .map(|&pid| ProcSample::read(pid).with_context(|| format!("pid {pid}, {what}")))
        .collect()
}

/// The sum of several processes' samples (CPU ticks and RSS); `None` for none.
pub fn total(samples: &[ProcSample]) -> Option<ProcSample> {
    (!samples.is_empty()).then(|| ProcSample {
        cpu_ticks: samples.iter().map(|s| s.cpu_ticks).sum(),
        rss_kib: samples.iter().map(|s| s.rss_kib).sum(),
    })
}

/// CPU time of the whole machine, in clock ticks, from the `cpu` line of `/proc/stat`, and of
/// the kernel's softirq threads.
///
/// What others used during a run is `busy` minus the measured processes minus `softirqd`. With
/// tick-based accounting (Linux without `CONFIG_IRQ_TIME_ACCOUNTING`, as on the benchmark
/// machine) a tick spent in softirq counts as `softirq` in `/proc/stat` *and* in the utime/stime
/// of the task it interrupted: the loopback networking done in the server's or the client's
/// context is inside their CPU time, so `user + nice + system` alone would be smaller than the
/// processes' sum and hide other processes under load. The rest of the softirq work runs in
/// `ksoftirqd/N` (also this run's traffic, charged to neither side) or interrupts the idle task
/// (small; counted as others, which errs towards rerunning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxSample {
    /// Every non-idle tick: user + nice + system + irq + softirq + steal (time the hypervisor
    /// gave to other guests is a disturbance like any other process; guest time is inside user).
    pub busy_ticks: u64,
    /// irq + softirq: mostly the loopback traffic of this very run, partly inside the server's
    /// and client's CPU time (see above).
    pub irq_ticks: u64,
    /// utime + stime of the `ksoftirqd/N` kernel threads.
    pub softirqd_ticks: u64,
}

impl BoxSample {
    pub fn read() -> Result<BoxSample> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let mut sample = parse_box(&stat)?;
        sample.softirqd_ticks = softirqd_ticks();
        Ok(sample)
    }
}

/// CPU time of every `ksoftirqd/N` thread (0 where `/proc` lists none). Processes that vanish
/// while `/proc` is read are skipped.
fn softirqd_ticks() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(is_pid))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| command_name(stat).is_some_and(|c| c.starts_with("ksoftirqd/")))
        .filter_map(|stat| parse_cpu_ticks(&stat).ok())
        .sum()
}

fn is_pid(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// Field 2 of `/proc/PID/stat`, without its parentheses.
fn command_name(stat: &str) -> Option<&str> {
    let start = stat.find('(')? + 1;
    let end = stat.rfind(')')?;
    stat.get(start..end)
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
        busy_ticks: user + nice + system + irq + softirq + steal,
        irq_ticks: irq + softirq,
        softirqd_ticks: 0,
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
                busy_ticks: 161,
                irq_ticks: 5,
                softirqd_ticks: 0,
            }
        );
        assert!(parse_box("cpu 1 2 3\n").is_err());
        assert!(BoxSample::read().unwrap().busy_ticks > 0);
    }

    #[test]
    fn finds_command_names() {
        assert_eq!(
            command_name("15 (ksoftirqd/1) S 2 0 0 0 -1 69238848 0 0 0 0 0 91"),
            Some("ksoftirqd/1")
        );
        assert_eq!(command_name("1 (a (b)) S 0"), Some("a (b)"));
        assert_eq!(command_name("garbage"), None);
        assert!(is_pid("123") && !is_pid("self") && !is_pid(""));
    }

    #[test]
    fn reads_own_process() {
        let s = ProcSample::read(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
    }

    #[test]
    fn totals_add_up() {
        let a = ProcSample {
            cpu_ticks: 10,
            rss_kib: 100,
        };
        let b = ProcSample {
            cpu_ticks: 5,
            rss_kib: 50,
        };
        assert_eq!(
            total(&[a, b]),
            Some(ProcSample {
                cpu_ticks: 15,
                rss_kib: 150
            })
        );
        assert_eq!(total(&[]), None);
        let me = std::process::id();
        assert_eq!(read_all(&[me, me], "test").unwrap().len(), 2);
        assert!(read_all(&[u32::MAX], "test").is_err());
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
