//! The command line: `tandem check-config` names bad keys and masks secrets.

use tandem_e2e::TestServerBuilder;
use tandem_e2e::server::{run_tandem, toml_string};

const SECRET: &str = "cli-test-secret-that-must-never-be-printed-0123";

fn check_config(builder: &TestServerBuilder) -> (bool, String, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = builder.write_config(dir.path());
    let path = path.to_string_lossy().into_owned();
    let output = run_tandem(&["check-config", "--config", &path]);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn invalid_value_is_named() {
    let builder = TestServerBuilder::new().set("transport", "outbound_queue_size", "0");
    let (ok, stdout, stderr) = check_config(&builder);
    assert!(!ok, "outbound_queue_size = 0 must be refused: {stdout}");
    assert!(stderr.contains("transport.outbound_queue_size"), "stderr must name the key: {stderr}");
}

#[test]
fn unknown_key_is_named() {
    let builder = TestServerBuilder::new().set("transport", "outbound_queue_sise", "8");
    let (ok, stdout, stderr) = check_config(&builder);
    assert!(!ok, "a misspelt key must be refused: {stdout}");
    assert!(stderr.contains("outbound_queue_sise"), "stderr must name the key: {stderr}");
}

#[test]
fn valid_config_is_printed_with_the_secret_masked() {
    let builder = TestServerBuilder::new().set("auth", "secret", &toml_string(SECRET)).set(
        "transport",
        "outbound_queue_size",
        "77",
    );
    let (ok, stdout, stderr) = check_config(&builder);
    assert!(ok, "valid config refused: {stderr}");
    assert!(stdout.contains("outbound_queue_size"), "{stdout}");
    assert!(stdout.contains("77"), "the effective value is shown: {stdout}");
    assert!(!stdout.contains(SECRET), "the secret is printed: {stdout}");
    assert!(!stderr.contains(SECRET), "the secret is printed: {stderr}");
}
