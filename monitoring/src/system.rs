//! Process and system resource sampling.
//!
//! Reading `/proc` is cheap but not free, and process CPU usage only means
//! something as a difference between two readings, so a background loop
//! refreshes one [`SystemSampler`](crate::system::SystemSampler) and request handlers read its last
//! [`SystemSnapshot`](crate::system::SystemSnapshot) without touching the operating system.

use std::time::SystemTime;

use parking_lot::{Mutex, RwLock};
use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// The latest reading. Zeroes mean "not sampled yet / not available".
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SystemSnapshot {
    /// Memory available to this process: the cgroup limit when one is set
    /// and lower than the machine's memory, else the machine's memory.
    pub total_memory_bytes: u64,
    /// Memory in use within that total.
    pub used_memory_bytes: u64,
    /// Resident set size of this process.
    pub process_rss_bytes: u64,
    /// CPU used by this process since the previous refresh; 100 = one core.
    pub process_cpu_percent: f64,
    pub sampled_at: Option<SystemTime>,
}

const MIB: f64 = 1024.0 * 1024.0;

impl SystemSnapshot {
    pub fn total_mb(&self) -> f64 {
        self.total_memory_bytes as f64 / MIB
    }

    pub fn used_mb(&self) -> f64 {
        self.used_memory_bytes as f64 / MIB
    }

    pub fn process_rss_mb(&self) -> f64 {
        self.process_rss_bytes as f64 / MIB
    }

    /// Used share of the total, in percent (0 when the total is unknown).
    pub fn usage_percentage(&self) -> f64 {
        if self.total_memory_bytes == 0 {
            0.0
        } else {
            self.used_memory_bytes as f64 * 100.0 / self.total_memory_bytes as f64
        }
    }
}

/// Owns the `sysinfo` state; refreshed by the sampler loop and by health
/// checks, read by everyone else.
pub struct SystemSampler {
    system: Mutex<System>,
    pid: Option<Pid>,
    snapshot: RwLock<SystemSnapshot>,
}

impl std::fmt::Debug for SystemSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemSampler").field("snapshot", &*self.snapshot.read()).finish_non_exhaustive()
    }
}

impl Default for SystemSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemSampler {
    /// Creates the sampler and takes a first reading, so memory figures are
    /// meaningful from the start (CPU needs a second reading).
    pub fn new() -> Self {
        let sampler = Self {
            system: Mutex::new(System::new()),
            pid: sysinfo::get_current_pid().ok(),
            snapshot: RwLock::new(SystemSnapshot::default()),
        };
        sampler.refresh();
        sampler
    }

    /// A sampler that never reads the operating system and always reports
    /// `snapshot`: for tests of everything built on top of it.
    pub fn fixed(snapshot: SystemSnapshot) -> Self {
        Self { system: Mutex::new(System::new()), pid: None, snapshot: RwLock::new(snapshot) }
    }

    /// Reads memory and this process's CPU and RSS.
    pub fn refresh(&self) {
        let Some(pid) = self.pid else {
            return;
        };
        let snapshot = {
            let mut sys = self.system.lock();
            sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
            sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_cpu().with_memory(),
            );
            let (mut total, mut used) = (sys.total_memory(), sys.used_memory());
            if let Some(cg) = sys.cgroup_limits() {
                if cg.total_memory > 0 && cg.total_memory < total {
                    total = cg.total_memory;
                    used = cg.total_memory.saturating_sub(cg.free_memory);
                }
            }
            let (rss, cpu) =
                sys.process(pid).map(|p| (p.memory(), f64::from(p.cpu_usage()))).unwrap_or((0, 0.0));
            SystemSnapshot {
                total_memory_bytes: total,
                used_memory_bytes: used,
                process_rss_bytes: rss,
                process_cpu_percent: cpu,
                sampled_at: Some(SystemTime::now()),
            }
        };
        *self.snapshot.write() = snapshot;
    }

    pub fn snapshot(&self) -> SystemSnapshot {
        *self.snapshot.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_sampler_reads_memory_and_rss() {
        let s = SystemSampler::new();
        let snap = s.snapshot();
        assert!(snap.total_memory_bytes > 0);
        assert!(snap.process_rss_bytes > 0);
        assert!(snap.usage_percentage() > 0.0 && snap.usage_percentage() <= 100.0);
        assert!(snap.sampled_at.is_some());
    }

    #[test]
    fn fixed_sampler_never_changes() {
        let snap = SystemSnapshot {
            total_memory_bytes: 2048 * 1024 * 1024,
            used_memory_bytes: 512 * 1024 * 1024,
            process_rss_bytes: 64 * 1024 * 1024,
            process_cpu_percent: 12.5,
            sampled_at: None,
        };
        let s = SystemSampler::fixed(snap);
        s.refresh();
        assert_eq!(s.snapshot(), snap);
        assert_eq!(snap.usage_percentage(), 25.0);
        assert_eq!(snap.used_mb(), 512.0);
        assert_eq!(snap.total_mb(), 2048.0);
        assert_eq!(snap.process_rss_mb(), 64.0);
        assert_eq!(SystemSnapshot::default().usage_percentage(), 0.0);
    }
}
