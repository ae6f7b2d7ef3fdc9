//! Running shell pipelines such as the log analysis guide's `jq` recipes.

use std::process::Command;

/// Fails the test when `tool` is not on the `PATH`: a test that cannot run
/// its tool has not passed (`scripts/test.sh` installs every tool).
///
/// # Panics
/// When the tool is missing.
pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(found, "`{tool}` is not installed: run scripts/test.sh, which installs it");
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
