//! `tictactoe`: Tandem with the tic-tac-toe game linked in. The same
//! command line and configuration as `tandem` (built-in defaults, then
//! `--config FILE`, then `TANDEM_<SECTION>__<KEY>` variables; `token` and
//! `check-config` work too), with commands answered in process by
//! [`Game`] instead of `backend.command_url`.

use std::process::ExitCode;
use std::sync::Arc;

/// jemalloc, as the `tandem` binary: freed pages go back to the system.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::Parser;
use tandem_example_tictactoe::Game;
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
            return ExitCode::from(cli::EXIT_CONFIG);
        }
    };
    let _logs = match tandem_monitoring::logging::init(&config.logging) {
        Ok(guard) => guard,
        Err(e) => {
            cli::report_error(&e, &mut std::io::stderr());
            return ExitCode::from(cli::EXIT_CONFIG);
        }
    };
    let game = Game::new();
    tracing::info!(
        max_rooms = tandem_example_tictactoe::MAX_ROOMS,
        "Tic-tac-toe handles commands in process"
    );
    let served = tandem_server::server::run_with(config, Some(Arc::new(game)));
    match actix_web::rt::System::new().block_on(served) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Tandem failed");
            ExitCode::FAILURE
        }
    }
}
