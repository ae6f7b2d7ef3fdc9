//! The measured server's resources, read from `/proc`. A server may be
//! several processes (nginx: a master and one worker per core), so every
//! figure sums the given process and all its descendants.

use std::collections::HashMap;

/// Fields of `/proc/<pid>/stat` after the command name, which may itself
/// hold spaces and parentheses.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Field 3 (state) is a letter; keep the positions, parse the numbers.
    Some(rest.split_whitespace().map(|f| f.parse().unwrap_or(0)).collect())
}

/// `pid` and every process descended from it, `pid` first; empty when
/// `pid` is gone.
pub fn tree(pid: u32) -> Vec<u32> {
    if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
        return Vec::new();
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            // After the name: state, ppid, …
            if let Some(ppid) = stat_fields(child).and_then(|f| f.get(1).copied()) {
                children.entry(u32::try_from(ppid).unwrap_or(0)).or_default().push(child);
            }
        }
    }
    let mut all = vec![pid];
    let mut i = 0;
    // Bounded: a pid is never its own descendant, and /proc is finite.
    while i < all.len() && all.len() < 100_000 {
        if let Some(kids) = children.get(&all[i]) {
            all.extend(kids.iter().copied().filter(|k| *k != pid));
        }
        i += 1;
    }
    all
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resident memory of the process tree, in KiB (pages shared between its
/// processes count once per process, as `ps` shows them).
pub fn rss_kib(pid: u32) -> u64 {
    tree(pid).into_iter().map(|p| status_kib(p, "VmRSS:")).sum()
}

/// utime + stime of the process tree, in clock ticks (100 Hz on Linux).
pub fn cpu_ticks(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .filter_map(stat_fields)
        .map(|f| f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0))
        .sum()
}

/// Open file descriptors of the process tree.
pub fn open_fds(pid: u32) -> usize {
    tree(pid)
        .into_iter()
        .filter_map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).ok())
        .map(Iterator::count)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_holds_this_process_and_a_child_it_started() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep").arg("5").spawn().expect("sleep runs");
        let t = tree(me);
        assert_eq!(t.first(), Some(&me));
        assert!(t.contains(&child.id()), "{t:?} lacks {}", child.id());
        // The child's memory and descriptors add to this process's own.
        assert!(rss_kib(me) > status_kib(me, "VmRSS:"));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!tree(me).contains(&child.id()));
        assert!(open_fds(me) > 0);
        assert!(tree(u32::MAX).is_empty());
    }
}
