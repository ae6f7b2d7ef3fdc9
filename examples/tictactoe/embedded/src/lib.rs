//! Tic-tac-toe as an embedded Tandem game: a [`CommandHandler`] that runs
//! in the Tandem process, the same game as `../node-backend` without HTTP
//! between Tandem and the game.
//!
//! Commands (`client.call(name, data)`):
//!
//! | `name` | `data` | reply | refusals |
//! |---|---|---|---|
//! | `join` | `{room}` | the state and `seat` (`"X"`, `"O"`, `"spectator"`) | `bad_request`, `too_many_rooms` |
//! | `move` | `{room, cell}` | the state | `bad_request`, `bad_move`, `not_seated`, `game_over`, `not_your_turn`, `cell_taken` |
//! | `reset` | `{room}` | the state | `bad_request`, `not_seated` |
//! | other | | | `unknown_command` |
//!
//! Every success publishes the room's state `{board, turn, players: {X, O},
//! winner}` to `room:<room>` (event `state`) before the reply; `join` does
//! even when nothing changed, so whoever just subscribed gets the board.
//! Publishes of one room go out in the order the states were made (the
//! room's lock is held across the publish).
//!
//! Rooms live in memory, at most [`MAX_ROOMS`]: a `join` that would make
//! one more first forgets the rooms untouched for [`ROOM_IDLE`], then
//! answers `too_many_rooms` if none was.

pub mod rules;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;
use tandem_server::backend::{Command, CommandError, CommandHandler, Hub};

use rules::{Refusal, Seat, State};

/// The most rooms held at once.
pub const MAX_ROOMS: usize = 10_000;
/// A room untouched this long may be forgotten to make space for a new one.
pub const ROOM_IDLE: Duration = Duration::from_secs(30 * 60);
/// The longest room name; with `room:` it stays a valid channel name.
pub const MAX_ROOM_LEN: usize = 96;

/// Where the game's states go: Tandem's [`Hub`] in the server, a recorder
/// in tests.
pub trait Broadcast: Send + Sync {
    /// Publishes `data` to `channel` as `event`; returns the publication id.
    fn publish(&self, channel: &str, event: &str, data: &Value) -> Result<String, CommandError>;
}

impl Broadcast for Hub {
    fn publish(&self, channel: &str, event: &str, data: &Value) -> Result<String, CommandError> {
        Hub::publish(self, channel, event, data)
    }
}

struct Room {
    state: State,
    touched: Instant,
}

/// The game: one [`State`] per room, at most `max_rooms` of them.
pub struct Game {
    rooms: Mutex<HashMap<String, Arc<Mutex<Room>>>>,
    max_rooms: usize,
    idle: Duration,
}

impl std::fmt::Debug for Game {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Game")
            .field("rooms", &self.rooms())
            .field("max_rooms", &self.max_rooms)
            .finish_non_exhaustive()
    }
}

impl Default for Game {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl CommandHandler for Game {
    async fn handle(&self, command: Command, hub: Hub) -> Result<Value, CommandError> {
        self.run(&command, &hub)
    }
}

impl Game {
    /// [`MAX_ROOMS`] rooms, forgettable after [`ROOM_IDLE`].
    pub fn new() -> Self {
        Self::with_limits(MAX_ROOMS, ROOM_IDLE)
    }

    /// At most `max_rooms` rooms; one untouched for `idle` may be forgotten
    /// when a new one needs its place.
    pub fn with_limits(max_rooms: usize, idle: Duration) -> Self {
        Self { rooms: Mutex::new(HashMap::new()), max_rooms, idle }
    }

    /// How many rooms are held.
    pub fn rooms(&self) -> usize {
        self.rooms.lock().len()
    }

    /// Runs one command: the reply, or the refusal the client gets.
    /// States go to `out`; a failed publish is logged, not refused (the
    /// change is made, and the reply carries the state).
    pub fn run(&self, command: &Command, out: &dyn Broadcast) -> Result<Value, CommandError> {
        let player = command.player_id.as_str();
        let data = &command.data;
        match command.name.as_str() {
            "join" => self.apply(room_of(data)?, out, |s| Ok(Some(s.join(player)))),
            "move" => {
                let room = room_of(data)?;
                let cell = cell_of(data).ok_or_else(|| refused(Refusal::BadMove))?;
                self.apply(room, out, |s| s.play(player, cell).map(|()| None))
            }
            "reset" => self.apply(room_of(data)?, out, |s| s.reset(player).map(|()| None)),
            other => Err(CommandError::new("unknown_command", format!("no command {other:?}"))),
        }
    }

    /// Applies `action` to `room`'s state, publishes the new state and
    /// answers it (with `seat` when the action gives one). A room that does
    /// not exist yet is made only when the action succeeds on a new game,
    /// so refused moves into unknown rooms hold no memory.
    fn apply(
        &self,
        room: &str,
        out: &dyn Broadcast,
        action: impl Fn(&mut State) -> Result<Option<Seat>, Refusal>,
    ) -> Result<Value, CommandError> {
        let entry = match self.existing(room) {
            Some(entry) => entry,
            None => {
                action(&mut State::new()).map_err(refused)?;
                self.create(room)?
            }
        };
        let mut entry = entry.lock();
        let seat = action(&mut entry.state).map_err(refused)?;
        entry.touched = Instant::now();
        let mut state = serde_json::to_value(&entry.state)
            .map_err(|e| CommandError::new("internal", format!("state not serialisable: {e}")))?;
        let channel = format!("room:{room}");
        if let Err(e) = out.publish(&channel, "state", &state) {
            tracing::warn!(channel = %channel, code = %e.code, error = %e.message, "Tic-tac-toe state not published");
        }
        drop(entry);
        if let (Some(seat), Value::Object(map)) = (seat, &mut state) {
            map.insert("seat".to_owned(), serde_json::to_value(seat).unwrap_or(Value::Null));
        }
        Ok(state)
    }

    fn existing(&self, room: &str) -> Option<Arc<Mutex<Room>>> {
        self.rooms.lock().get(room).map(Arc::clone)
    }

    /// The room, made if need be: past `max_rooms`, idle rooms are
    /// forgotten first, then `too_many_rooms`.
    fn create(&self, room: &str) -> Result<Arc<Mutex<Room>>, CommandError> {
        let mut rooms = self.rooms.lock();
        if let Some(entry) = rooms.get(room) {
            return Ok(Arc::clone(entry));
        }
        if rooms.len() >= self.max_rooms {
            let idle = self.idle;
            // A room locked right now is in use: kept, and not waited for.
            rooms.retain(|_, r| r.try_lock().is_none_or(|r| r.touched.elapsed() < idle));
            if rooms.len() >= self.max_rooms {
                return Err(CommandError::new(
                    "too_many_rooms",
                    format!("this server holds {} rooms already; try again later", self.max_rooms),
                ));
            }
        }
        let entry = Arc::new(Mutex::new(Room { state: State::new(), touched: Instant::now() }));
        rooms.insert(room.to_owned(), Arc::clone(&entry));
        Ok(entry)
    }
}

fn refused(r: Refusal) -> CommandError {
    CommandError::new(r.code(), r.message())
}

/// Whether `room` may follow `room:` in a channel name.
pub fn is_valid_room(room: &str) -> bool {
    (1..=MAX_ROOM_LEN).contains(&room.len())
        && room.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b))
}

fn room_of(data: &Value) -> Result<&str, CommandError> {
    data.get("room").and_then(Value::as_str).filter(|r| is_valid_room(r)).ok_or_else(|| {
        CommandError::new(
            "bad_request",
            format!("data.room must be 1 to {MAX_ROOM_LEN} of A-Z a-z 0-9 _ . : @ -"),
        )
    })
}

/// `data.cell` when it is a whole number from 0 up (`1.0` counts, as in
/// JavaScript); the rules refuse past 8.
fn cell_of(data: &Value) -> Option<usize> {
    let cell = data.get("cell")?;
    if let Some(n) = cell.as_u64() {
        return usize::try_from(n).ok();
    }
    let f = cell.as_f64()?;
    (f.fract() == 0.0 && (0.0..=8.0).contains(&f)).then_some(f as usize)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tandem_protocol::Transport;

    use super::*;

    /// Records every publication.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<(String, String, Value)>>);

    impl Broadcast for Recorder {
        fn publish(&self, channel: &str, event: &str, data: &Value) -> Result<String, CommandError> {
            let mut seen = self.0.lock();
            seen.push((channel.to_owned(), event.to_owned(), data.clone()));
            Ok(format!("p{}", seen.len()))
        }
    }

    impl Recorder {
        fn take(&self) -> Vec<(String, String, Value)> {
            std::mem::take(&mut *self.0.lock())
        }
    }

    /// Refuses every publication, as a draining Tandem would.
    struct Refusing;

    impl Broadcast for Refusing {
        fn publish(&self, _: &str, _: &str, _: &Value) -> Result<String, CommandError> {
            Err(CommandError::new("draining", "shutting down"))
        }
    }

    fn command(player: &str, name: &str, data: Value) -> Command {
        Command {
            id: "c1".into(),
            name: name.into(),
            data,
            player_id: player.into(),
            session_id: format!("s_{player}"),
            transport: Transport::WebSocket,
        }
    }

    fn code(r: Result<Value, CommandError>) -> String {
        match r {
            Ok(v) => panic!("expected a refusal, got {v}"),
            Err(e) => e.code,
        }
    }

    fn call(
        game: &Game,
        out: &Recorder,
        player: &str,
        name: &str,
        data: Value,
    ) -> Result<Value, CommandError> {
        game.run(&command(player, name, data), out)
    }

    #[test]
    fn join_seats_x_then_o_then_spectators_and_publishes_each_time() {
        let (game, out) = (Game::new(), Recorder::default());
        let reply = call(&game, &out, "alice", "join", json!({"room": "r1"})).expect("join");
        assert_eq!(
            reply,
            json!({
                "board": [null, null, null, null, null, null, null, null, null],
                "turn": "X",
                "players": {"X": "alice", "O": null},
                "winner": null,
                "seat": "X",
            })
        );
        let published = out.take();
        assert_eq!(published.len(), 1);
        let (channel, event, data) = &published[0];
        assert_eq!((channel.as_str(), event.as_str()), ("room:r1", "state"));
        let mut without_seat = reply.clone();
        without_seat.as_object_mut().expect("an object").remove("seat");
        assert_eq!(data, &without_seat, "the publication is the reply without `seat`");

        let bob = call(&game, &out, "bob", "join", json!({"room": "r1"})).expect("join");
        assert_eq!((bob["seat"].as_str(), &bob["players"]), (Some("O"), &json!({"X": "alice", "O": "bob"})));
        let carol = call(&game, &out, "carol", "join", json!({"room": "r1"})).expect("join");
        assert_eq!(carol["seat"], "spectator");
        let again = call(&game, &out, "alice", "join", json!({"room": "r1"})).expect("join");
        assert_eq!(again["seat"], "X", "a seated player keeps their seat");
        assert_eq!(out.take().len(), 3, "join publishes even when nothing changed");
        assert_eq!(game.rooms(), 1);
    }

    #[test]
    fn a_game_to_a_win_publishes_every_state_and_refusals_publish_nothing() {
        let (game, out) = (Game::new(), Recorder::default());
        let room = |cell: Value| json!({"room": "t1", "cell": cell});
        call(&game, &out, "alice", "join", json!({"room": "t1"})).expect("join");
        call(&game, &out, "bob", "join", json!({"room": "t1"})).expect("join");
        out.take();

        assert_eq!(code(call(&game, &out, "bob", "move", room(json!(3)))), "not_your_turn");
        assert_eq!(code(call(&game, &out, "carol", "move", room(json!(3)))), "not_seated");
        for (player, cell) in [("alice", 0), ("bob", 3), ("alice", 1), ("bob", 4)] {
            let reply = call(&game, &out, player, "move", room(json!(cell))).expect("a legal move");
            assert!(reply.get("seat").is_none(), "only join replies a seat");
            assert_eq!(reply["winner"], Value::Null);
        }
        assert_eq!(code(call(&game, &out, "alice", "move", room(json!(4)))), "cell_taken");
        let won = call(&game, &out, "alice", "move", room(json!(2))).expect("the winning move");
        assert_eq!(won["winner"], "X");
        assert_eq!(won["board"], json!(["X", "X", "X", "O", "O", null, null, null, null]));
        assert_eq!(code(call(&game, &out, "bob", "move", room(json!(8)))), "game_over");

        let published = out.take();
        assert_eq!(published.len(), 5, "one state per accepted move: {published:?}");
        assert!(published.iter().all(|(c, e, _)| c == "room:t1" && e == "state"));
        assert_eq!(published[4].2, won);
        let turns: Vec<&str> = published.iter().filter_map(|(_, _, d)| d["turn"].as_str()).collect();
        assert_eq!(turns, ["O", "X", "O", "X", "X"], "the winner stays to move");

        assert_eq!(code(call(&game, &out, "carol", "reset", json!({"room": "t1"}))), "not_seated");
        let fresh = call(&game, &out, "bob", "reset", json!({"room": "t1"})).expect("reset");
        assert_eq!(fresh["board"], json!([null, null, null, null, null, null, null, null, null]));
        assert_eq!(
            (&fresh["turn"], &fresh["winner"], &fresh["players"]),
            (&json!("X"), &Value::Null, &json!({"X": "alice", "O": "bob"}))
        );
        assert_eq!(out.take().len(), 1);
    }

    #[test]
    fn bad_input_has_its_code() {
        let (game, out) = (Game::new(), Recorder::default());
        call(&game, &out, "alice", "join", json!({"room": "r"})).expect("join");
        call(&game, &out, "bob", "join", json!({"room": "r"})).expect("join");
        out.take();
        assert_eq!(code(call(&game, &out, "alice", "jump", json!({"room": "r"}))), "unknown_command");
        for data in [
            Value::Null,
            json!({}),
            json!({"room": 7}),
            json!({"room": ""}),
            json!({"room": "a b"}),
            json!({"room": "x".repeat(MAX_ROOM_LEN + 1)}),
        ] {
            assert_eq!(code(call(&game, &out, "alice", "join", data.clone())), "bad_request", "{data}");
            assert_eq!(code(call(&game, &out, "alice", "move", data.clone())), "bad_request", "{data}");
        }
        for cell in [json!(null), json!("4"), json!(-1), json!(1.5), json!(9), json!(u64::MAX)] {
            let data = json!({"room": "r", "cell": cell});
            assert_eq!(code(call(&game, &out, "alice", "move", data)), "bad_move", "{cell}");
        }
        let whole = call(&game, &out, "alice", "move", json!({"room": "r", "cell": 4.0})).expect("4.0 is 4");
        assert_eq!(whole["board"][4], "X");
        assert!(is_valid_room(&"a".repeat(MAX_ROOM_LEN)));
        assert!(is_valid_room("A-z_0.9:@"));
        assert_eq!(out.take().len(), 1);
    }

    #[test]
    fn refused_commands_into_unknown_rooms_make_no_room() {
        let (game, out) = (Game::new(), Recorder::default());
        assert_eq!(
            code(call(&game, &out, "alice", "move", json!({"room": "nowhere", "cell": 0}))),
            "not_seated"
        );
        assert_eq!(
            code(call(&game, &out, "alice", "move", json!({"room": "nowhere", "cell": 12}))),
            "bad_move"
        );
        assert_eq!(code(call(&game, &out, "alice", "reset", json!({"room": "nowhere"}))), "not_seated");
        assert_eq!(game.rooms(), 0);
        assert!(out.take().is_empty());
    }

    #[test]
    fn rooms_are_capped_and_idle_ones_make_space() {
        let (game, out) = (Game::with_limits(2, Duration::from_secs(3600)), Recorder::default());
        for room in ["a", "b"] {
            call(&game, &out, "alice", "join", json!({"room": room})).expect("join");
        }
        assert_eq!(code(call(&game, &out, "bob", "join", json!({"room": "c"}))), "too_many_rooms");
        let existing =
            call(&game, &out, "bob", "join", json!({"room": "a"})).expect("a room held still works");
        assert_eq!(existing["seat"], "O");
        assert_eq!(game.rooms(), 2);

        // Rooms idle for zero time are all forgettable.
        let (game, out) = (Game::with_limits(2, Duration::ZERO), Recorder::default());
        for room in ["a", "b", "c"] {
            call(&game, &out, "alice", "join", json!({"room": room})).expect("join");
        }
        assert_eq!(game.rooms(), 1, "a and b were forgotten to make space for c");
    }

    #[test]
    fn a_failed_publish_still_answers_the_state() {
        let game = Game::new();
        let reply = game.run(&command("alice", "join", json!({"room": "r"})), &Refusing).expect("join");
        assert_eq!(reply["seat"], "X");
        let moved =
            game.run(&command("alice", "move", json!({"room": "r", "cell": 0})), &Refusing).expect("move");
        assert_eq!(moved["board"][0], "X");
    }
}
