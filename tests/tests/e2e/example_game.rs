//! The embedded tic-tac-toe example (`examples/tictactoe/embedded`, binary
//! `tictactoe`) as players see it: two clients join a room, play to a win,
//! get a refusal's code, and each receives every state the game published,
//! in order.
//!
//! `TANDEM_EXAMPLE_BIN` names a prebuilt `tictactoe`; otherwise it is built
//! once per test process with the tests' profile, as `tandem` is.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tandem_client::{CallError, Client, ClientOptions, Delivery, Mode, Status};
use tandem_e2e::{TestServerBuilder, WAIT};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// How long the example may take to say it listens.
const START_DEADLINE: Duration = Duration::from_secs(20);

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// The `tictactoe` executable, built on first use.
fn example_bin() -> &'static Path {
    BINARY.get_or_init(|| match std::env::var_os("TANDEM_EXAMPLE_BIN") {
        Some(path) => PathBuf::from(path),
        None => tandem_e2e::binary::build("tandem-example-tictactoe", "tictactoe"),
    })
}

/// A running `tictactoe` with the harness's config (loopback port 0,
/// development mode); killed when dropped.
struct Example {
    child: Child,
    base_url: String,
    printed: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Example {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Example {
    /// Starts it and waits for `Tandem listening` on stdout; checks the
    /// game said it is linked in first.
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = TestServerBuilder::new().write_config(dir.path());
        let mut cmd = Command::new(example_bin());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("TANDEM_") {
                cmd.env_remove(name);
            }
        }
        let mut child = cmd
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", example_bin().display()));
        let printed = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut stdout) = mpsc::unbounded_channel();
        for pipe in
            [child.stdout.take().map(Pipe::Out), child.stderr.take().map(Pipe::Err)].into_iter().flatten()
        {
            let (printed, tx) = (Arc::clone(&printed), tx.clone());
            std::thread::spawn(move || pipe.drain(&printed, &tx));
        }
        drop(tx);
        let mut example = Self { child, base_url: String::new(), printed, _dir: dir };
        let deadline = Instant::now() + START_DEADLINE;
        let mut announced = false;
        loop {
            let line = match timeout_at(deadline, stdout.recv()).await {
                Ok(Some(line)) => line,
                Ok(None) | Err(_) => {
                    panic!("tictactoe did not log \"Tandem listening\":\n{}", example.dump())
                }
            };
            let Ok(log) = serde_json::from_str::<Value>(&line) else { continue };
            announced |= log["message"] == "Tic-tac-toe handles commands in process";
            if log["message"] == "Tandem listening" {
                let addr = log["addr"].as_str().unwrap_or_else(|| panic!("no addr in {log}"));
                example.base_url = format!("http://{addr}");
                break;
            }
        }
        assert!(announced, "the game is linked in before Tandem listens:\n{}", example.dump());
        example
    }

    fn dump(&self) -> String {
        self.printed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).join("\n")
    }

    /// A WebSocket client for `player` (development mode), connected.
    async fn player(&self, player: &str, room: &str) -> (Client, mpsc::Receiver<Delivery>) {
        let client = Client::new(ClientOptions::new(&self.base_url).player_id(player).mode(Mode::WebSocket))
            .expect("client options");
        let states = client.on(room);
        client.connect();
        assert!(
            client.wait_status(WAIT, Status::is_connected).await.is_some(),
            "{player} connected: {:?}\n{}",
            client.status(),
            self.dump()
        );
        client.subscribe(room).await.unwrap_or_else(|e| panic!("{player} subscribes to {room}: {e}"));
        (client, states)
    }
}

/// The child's stdout (lines also go to the test) or stderr.
enum Pipe {
    Out(std::process::ChildStdout),
    Err(std::process::ChildStderr),
}

impl Pipe {
    fn drain(self, printed: &Mutex<Vec<String>>, tx: &mpsc::UnboundedSender<String>) {
        use std::io::{BufRead, BufReader};
        let (reader, to_test): (Box<dyn std::io::Read>, bool) = match self {
            Self::Out(p) => (Box::new(p), true),
            Self::Err(p) => (Box::new(p), false),
        };
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            printed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line.clone());
            if to_test {
                let _ = tx.send(line);
            }
        }
    }
}

/// The published state within a reply: all but `seat`.
fn state_of(reply: &Value) -> Value {
    let mut state = reply.clone();
    if let Some(map) = state.as_object_mut() {
        map.remove("seat");
    }
    state
}

fn refusal_code(result: Result<Value, CallError>) -> String {
    match result {
        Err(CallError::Server { code, .. }) => code,
        other => panic!("expected the game's refusal, got {other:?}"),
    }
}

/// Reads `expected.len()` deliveries and checks each is the next state.
async fn assert_states(who: &str, states: &mut mpsc::Receiver<Delivery>, expected: &[Value]) {
    let deadline = Instant::now() + WAIT;
    for (i, want) in expected.iter().enumerate() {
        let got = timeout_at(deadline, states.recv())
            .await
            .unwrap_or_else(|_| panic!("{who}: state {i} of {} did not arrive in time", expected.len()))
            .unwrap_or_else(|| panic!("{who}: the listener closed"));
        assert_eq!((got.channel.as_str(), got.event.as_str()), ("room:t1", "state"), "{who}: delivery {i}");
        assert_eq!(&got.data, want, "{who}: state {i}");
    }
}

#[tokio::test]
async fn two_players_play_to_a_win_and_both_see_every_state() {
    let example = Example::start().await;
    let (alice, mut alice_states) = example.player("alice", "room:t1").await;
    let (bob, mut bob_states) = example.player("bob", "room:t1").await;
    let room = json!({"room": "t1"});
    let cell = |cell: u8| json!({"room": "t1", "cell": cell});
    let mut published = Vec::new();

    let joined = alice.call("join", room.clone()).await.expect("alice joins");
    assert_eq!(joined["seat"], "X", "{joined}");
    assert_eq!(joined["players"], json!({"X": "alice", "O": null}));
    assert_eq!(joined["board"], json!([null, null, null, null, null, null, null, null, null]));
    assert_eq!((&joined["turn"], &joined["winner"]), (&json!("X"), &Value::Null));
    published.push(state_of(&joined));
    let joined = bob.call("join", room.clone()).await.expect("bob joins");
    assert_eq!(joined["seat"], "O", "{joined}");
    assert_eq!(joined["players"], json!({"X": "alice", "O": "bob"}));
    published.push(state_of(&joined));

    assert_eq!(refusal_code(bob.call("move", cell(4)).await), "not_your_turn", "X moves first");

    // X takes the top row while O plays the middle one.
    let moves = [(&alice, 0, "O"), (&bob, 3, "X"), (&alice, 1, "O"), (&bob, 4, "X")];
    for (player, at, next) in moves {
        let reply = player.call("move", cell(at)).await.unwrap_or_else(|e| panic!("move on {at}: {e}"));
        assert_eq!((&reply["turn"], &reply["winner"]), (&json!(next), &Value::Null), "{reply}");
        assert!(reply.get("seat").is_none(), "{reply}");
        published.push(reply);
    }
    assert_eq!(refusal_code(alice.call("move", cell(3)).await), "cell_taken");
    let won = alice.call("move", cell(2)).await.expect("the winning move");
    assert_eq!(won["winner"], "X", "{won}");
    assert_eq!(won["board"], json!(["X", "X", "X", "O", "O", null, null, null, null]));
    published.push(won);
    assert_eq!(refusal_code(bob.call("move", cell(8)).await), "game_over");

    // A reset after the refusals: the next state either player receives
    // is this one, so no refused move published anything.
    let fresh = bob.call("reset", room.clone()).await.expect("bob resets");
    assert_eq!(fresh["board"], json!([null, null, null, null, null, null, null, null, null]));
    assert_eq!(fresh["players"], json!({"X": "alice", "O": "bob"}));
    published.push(fresh);

    assert_eq!(published.len(), 8);
    assert_states("alice", &mut alice_states, &published).await;
    assert_states("bob", &mut bob_states, &published).await;

    assert_eq!(refusal_code(alice.call("castle", room).await), "unknown_command");
    alice.close().await;
    bob.close().await;
}
