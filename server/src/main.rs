//! The `tandem` binary: `serve` (default), `token`, `check-config`.

use std::process::ExitCode;

/// jemalloc, with its background thread purging freed pages: after a load
/// spike an idle server gives the memory back (glibc's allocator kept it;
/// docs/benchmarks.md, "Memory after load").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::Parser;
use tandem_server::cli::{self, Cli};
use tandem_server::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = cli::execute(&cli, &mut std::io::stdout(), &mut std::io::stderr()) {
        return ExitCode::from(code);
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            cli::report_error(&e, &mut std::io::stderr());
            return ExitCode::from(2);
        }
    };
    let _logs = match tandem_monitoring::logging::init(&config.logging) {
        Ok(guard) => guard,
        Err(e) => {
            cli::report_error(&e, &mut std::io::stderr());
            return ExitCode::from(2);
        }
    };
    match actix_web::rt::System::new().block_on(tandem_server::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(tandem_server::server::ServeError::Config(e)) => {
            tracing::error!(error = %e, "Tandem failed");
            cli::report_error(&e, &mut std::io::stderr());
            ExitCode::from(2)
        }
        Err(e) => {
            tracing::error!(error = %e, "Tandem failed");
            ExitCode::FAILURE
        }
    }
}
