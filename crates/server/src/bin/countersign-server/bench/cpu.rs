//! Where the CPU went during a phase: the serve processes' own time per
//! round trip, and the whole machine's (`/proc/stat`), including the time
//! a hypervisor took for other guests ("stolen"). Runs on a machine that
//! loses much of its time that way do not compare with runs that do not
//! (docs/PERFORMANCE.md has one build measured twice, at twice the rate).

use std::time::Duration;

use super::Phase;

/// CPU counters read when a phase starts.
pub(super) struct Before {
    serve: Option<Duration>,
    machine: Option<Ticks>,
}

/// The machine's CPU time since boot, in clock ticks, summed over cores.
#[derive(Clone, Copy)]
struct Ticks {
    total: u64,
    /// Idle, or waiting for a disk.
    idle: u64,
    /// Taken by the hypervisor for other guests while this one could run.
    stolen: u64,
}

/// Reads the counters of the serve processes `pids` and of the machine.
pub(super) fn before(pids: &[u32]) -> Before {
    Before {
        serve: cpu_of(pids),
        machine: machine(),
    }
}

/// Prints the serve processes' CPU per round trip of `phase`, and how
/// busy the machine was and how much of its time was stolen, since
/// `before`.
pub(super) fn print(pids: &[u32], before: &Before, phase: &Phase) {
    let serve = cpu_of(pids).zip(before.serve);
    if let Some(cpu) = serve.map(|(a, b)| a.saturating_sub(b)) {
        let per = cpu.as_secs_f64() * 1000.0 / phase.latencies.len().max(1) as f64;
        println!(
            "  server CPU:          {per:.3} ms per round trip ({:.1} s in all)",
            cpu.as_secs_f64()
        );
    }
    if let Some((now, then)) = machine().zip(before.machine) {
        let total = now.total.saturating_sub(then.total).max(1) as f64;
        let idle = now.idle.saturating_sub(then.idle) as f64;
        let stolen = now.stolen.saturating_sub(then.stolen) as f64;
        let busy = (total - idle - stolen).max(0.0);
        println!(
            "  machine:             {:.0} % busy, {:.0} % stolen by the host{}",
            100.0 * busy / total,
            100.0 * stolen / total,
            if stolen / total >= 0.05 {
                " (figures from such a run do not compare with a quieter one's)"
            } else {
                ""
            }
        );
    }
}

/// CPU time the serve processes have used together.
pub(super) fn cpu_of(pids: &[u32]) -> Option<Duration> {
    pids.iter().map(|p| cpu_time(*p)).sum()
}

/// CPU time (user and system) the process `pid` has used: fields 14 and
/// 15 of `/proc/PID/stat`, in clock ticks of 1/100 s (Linux's fixed
/// USER_HZ).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The machine's counters: the first line of `/proc/stat`, "cpu user
/// nice system idle iowait irq softirq steal guest guest_nice" (guest
/// time is counted in user time already).
fn machine() -> Option<Ticks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    ticks(stat.lines().next()?)
}

fn ticks(line: &str) -> Option<Ticks> {
    let mut words = line.split_whitespace();
    if words.next()? != "cpu" {
        return None;
    }
    let n: Vec<u64> = words
        .take(8)
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = n.try_into().ok()?;
    Some(Ticks {
        total: user + nice + system + idle + iowait + irq + softirq + steal,
        idle: idle + iowait,
        stolen: steal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_line_is_read_by_its_fields_and_anything_else_refused() {
        let t = ticks("cpu  100 5 50 800 20 3 2 70 0 0").unwrap();
        assert_eq!((t.total, t.idle, t.stolen), (1050, 820, 70));
        assert!(ticks("cpu0 100 5 50 800 20 3 2 70 0 0").is_none());
        assert!(ticks("cpu  100 5 50").is_none());
        assert!(ticks("cpu  100 5 50 x 20 3 2 70").is_none());
    }
}
