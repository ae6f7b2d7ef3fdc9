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

use tandem_example_tictactoe::Game;

fn main() -> ExitCode {
    tandem_server::cli::main(Some(Arc::new(Game::new())), || {
        tracing::info!(
            max_rooms = tandem_example_tictactoe::MAX_ROOMS,
            "Tic-tac-toe handles commands in process"
        );
    })
}
