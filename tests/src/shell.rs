//! Running shell pipelines such as the log analysis guide's `jq` recipes.

use std::process::Command;

/// Whether `tool` is on the `PATH`.
pub fn has_tool(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether this run is under CI, where missing tools are failures.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Runs `script` with `sh -c`, `FILE` set to `file`; returns stdout.
///
/// # Panics
/// When the shell cannot run or the pipeline fails.
pub fn run_recipe(script: &str, file: &std::path::Path) -> String {
    let output = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("FILE", file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh: {e}"));
    assert!(
        output.status.success(),
        "recipe {script:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
