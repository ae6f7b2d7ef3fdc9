//! The `tandem` binary: `serve` (default), `token`, `check-config`.

use std::process::ExitCode;

/// jemalloc, with its background thread purging freed pages: after a load
/// spike an idle server gives the memory back (glibc's allocator kept it;
/// docs/benchmarks.md, "Memory after load").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    tandem_server::cli::main(None, || {})
}
