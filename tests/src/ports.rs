//! Loopback ports for processes that must be told their port up front
//! (`redis-server`, Prometheus) rather than binding port 0 themselves.
//!
//! Every test runs in one process on parallel threads, and some restart a
//! child on the same port. A port taken with "bind port 0, read it,
//! release it" is free again the moment it is released: the kernel may hand
//! it to the next `bind(0)` or outgoing connection of any test, between the
//! release and the child's own bind (or while a child restarts). So ports
//! come from below the kernel's ephemeral range (which it never picks on its
//! own), each handed out once per process, each checked free when handed out.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out.
const FIRST: u32 = 10_000;

/// Where the kernel's own picks start when `ip_local_port_range` cannot be
/// read (Linux's default).
const DEFAULT_EPHEMERAL_START: u32 = 32_768;

/// Offset of the next port to try, within `FIRST..ephemeral start`.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The first port of the kernel's ephemeral range.
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

/// A loopback port that nothing listens on now, that no other caller in this
/// process has been given, and that the kernel will not hand to a
/// `bind(0)`.
///
/// Test processes running side by side start at different offsets (by
/// process id), and a port in use by anyone is skipped. Where the ephemeral
/// range leaves no room below it, this falls back to a port the kernel
/// picks (free now, but not reserved).
///
/// # Panics
/// When no loopback port can be bound at all.
pub fn free_port() -> u16 {
    let end = ephemeral_start().min(u32::from(u16::MAX));
    if end > FIRST + 100 {
        let span = end - FIRST;
        let base = std::process::id().wrapping_mul(7919) % span;
        for _ in 0..span {
            let offset = NEXT.fetch_add(1, Ordering::Relaxed);
            let Ok(port) = u16::try_from(FIRST + (base + offset) % span) else { continue };
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_outside_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
        for port in ports {
            assert!(u32::from(port) >= FIRST && u32::from(port) < ephemeral_start(), "{port}");
            assert!(TcpListener::bind(("127.0.0.1", port)).is_ok(), "{port} is free");
        }
    }
}
