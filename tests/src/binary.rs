//! Locating the executables under test (`tandem`, the example game).
//!
//! `TANDEM_BIN` names a prebuilt one; otherwise it is built once per test
//! process with the same profile as the tests themselves, so `cargo test`
//! alone always tests the current server code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// The path of the `tandem` binary, building it on first use.
///
/// # Panics
/// When the build fails or does not report the executable: no test can run
/// without it.
pub fn tandem_bin() -> &'static Path {
    BINARY.get_or_init(|| match std::env::var_os("TANDEM_BIN") {
        Some(path) => PathBuf::from(path),
        None => build("tandem-server", "tandem"),
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Builds `bin` of `package` with the tests' profile and returns its path.
///
/// # Panics
/// When the build fails or does not report the executable.
pub fn build(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace_root();
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args(["build", "-p", package, "--bin", bin])
        .arg("--message-format=json")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"));
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {cargo:?} to build {bin}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let messages: Vec<Value> =
        stdout.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()).collect();
    if !output.status.success() {
        // With JSON output the compiler's diagnostics are on stdout.
        let diagnostics: Vec<&str> = messages
            .iter()
            .filter(|m| m["reason"] == "compiler-message")
            .filter_map(|m| m["message"]["rendered"].as_str())
            .collect();
        panic!(
            "building {bin} failed ({}):\n{}\n{}",
            output.status,
            diagnostics.join("\n"),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    messages
        .into_iter()
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == bin)
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo build reported no {bin} executable:\n{stdout}"))
}
