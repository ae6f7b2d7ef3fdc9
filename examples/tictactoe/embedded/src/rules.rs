//! Tic-tac-toe rules, pure: no I/O, no clock, no lock. The same game as
//! `node-backend/rules.mjs`; [`crate::Game`] keeps one [`State`] per room
//! and publishes it after every change.
//!
//! A refused action leaves the state as it was.

use serde::Serialize;

/// The eight lines that win: three rows, three columns, two diagonals.
pub const LINES: [[usize; 3]; 8] =
    [[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 3, 6], [1, 4, 7], [2, 5, 8], [0, 4, 8], [2, 4, 6]];

/// A player's mark, and the seat that plays it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum Mark {
    #[default]
    X,
    O,
}

impl Mark {
    /// The other mark.
    pub fn other(self) -> Self {
        match self {
            Self::X => Self::O,
            Self::O => Self::X,
        }
    }

    /// `"X"` or `"O"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X => "X",
            Self::O => "O",
        }
    }
}

/// How a game ended: `"X"`, `"O"` or `"draw"` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Winner {
    X,
    O,
    #[serde(rename = "draw")]
    Draw,
}

impl From<Mark> for Winner {
    fn from(m: Mark) -> Self {
        match m {
            Mark::X => Self::X,
            Mark::O => Self::O,
        }
    }
}

/// Where a player sits after `join`: `"X"`, `"O"` or `"spectator"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Seat {
    X,
    O,
    #[serde(rename = "spectator")]
    Spectator,
}

impl From<Mark> for Seat {
    fn from(m: Mark) -> Self {
        match m {
            Mark::X => Self::X,
            Mark::O => Self::O,
        }
    }
}

/// Who holds each seat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Players {
    #[serde(rename = "X")]
    pub x: Option<String>,
    #[serde(rename = "O")]
    pub o: Option<String>,
}

impl Players {
    fn seat_mut(&mut self, mark: Mark) -> &mut Option<String> {
        match mark {
            Mark::X => &mut self.x,
            Mark::O => &mut self.o,
        }
    }

    fn seat(&self, mark: Mark) -> Option<&str> {
        match mark {
            Mark::X => self.x.as_deref(),
            Mark::O => self.o.as_deref(),
        }
    }
}

/// A refused action; [`code`](Self::code) is what the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The cell is not an integer from 0 to 8.
    BadMove,
    /// The player holds no seat.
    NotSeated,
    /// The game is over: reset first.
    GameOver(Winner),
    /// It is the other mark's turn.
    NotYourTurn(Mark),
    /// The cell already holds a mark.
    CellTaken(usize, Mark),
}

impl Refusal {
    /// The error code: `bad_move`, `not_seated`, `game_over`,
    /// `not_your_turn` or `cell_taken`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadMove => "bad_move",
            Self::NotSeated => "not_seated",
            Self::GameOver(_) => "game_over",
            Self::NotYourTurn(_) => "not_your_turn",
            Self::CellTaken(..) => "cell_taken",
        }
    }

    /// A sentence for people.
    pub fn message(&self) -> String {
        match self {
            Self::BadMove => "cell must be an integer from 0 to 8".to_owned(),
            Self::NotSeated => "join the room and take a seat first".to_owned(),
            Self::GameOver(Winner::Draw) => "the game is over (a draw): reset to play again".to_owned(),
            Self::GameOver(Winner::X) => "the game is over (X won): reset to play again".to_owned(),
            Self::GameOver(Winner::O) => "the game is over (O won): reset to play again".to_owned(),
            Self::NotYourTurn(turn) => format!("it is {}'s turn", turn.as_str()),
            Self::CellTaken(cell, mark) => format!("cell {cell} already holds {}", mark.as_str()),
        }
    }
}

/// One room's game, serialised as the published state
/// `{board, turn, players: {X, O}, winner}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct State {
    /// Row by row; `null` for an empty cell.
    pub board: [Option<Mark>; 9],
    pub turn: Mark,
    pub players: Players,
    pub winner: Option<Winner>,
}

/// `X`, `O`, `Draw` (a full board without a line) or `None` (play on).
pub fn winner_of(board: &[Option<Mark>; 9]) -> Option<Winner> {
    for [a, b, c] in LINES {
        if board[a].is_some() && board[a] == board[b] && board[a] == board[c] {
            return board[a].map(Winner::from);
        }
    }
    board.iter().all(Option::is_some).then_some(Winner::Draw)
}

impl State {
    /// An empty board, X to move, no one seated.
    pub fn new() -> Self {
        Self::default()
    }

    /// The seat `player` holds, if any.
    pub fn seat_of(&self, player: &str) -> Option<Mark> {
        [Mark::X, Mark::O].into_iter().find(|&m| self.players.seat(m) == Some(player))
    }

    /// Seats `player`: the seat they already hold, else X, else O, else
    /// they watch.
    pub fn join(&mut self, player: &str) -> Seat {
        if let Some(held) = self.seat_of(player) {
            return held.into();
        }
        for mark in [Mark::X, Mark::O] {
            let seat = self.players.seat_mut(mark);
            if seat.is_none() {
                *seat = Some(player.to_owned());
                return mark.into();
            }
        }
        Seat::Spectator
    }

    /// `player` puts their mark on `cell` (0–8, row by row).
    pub fn play(&mut self, player: &str, cell: usize) -> Result<(), Refusal> {
        if cell > 8 {
            return Err(Refusal::BadMove);
        }
        let seat = self.seat_of(player).ok_or(Refusal::NotSeated)?;
        if let Some(w) = self.winner {
            return Err(Refusal::GameOver(w));
        }
        if self.turn != seat {
            return Err(Refusal::NotYourTurn(self.turn));
        }
        if let Some(held) = self.board[cell] {
            return Err(Refusal::CellTaken(cell, held));
        }
        self.board[cell] = Some(seat);
        self.winner = winner_of(&self.board);
        if self.winner.is_none() {
            self.turn = seat.other();
        }
        Ok(())
    }

    /// A fresh board for the same players, X to move; only a seated
    /// player may reset.
    pub fn reset(&mut self, player: &str) -> Result<(), Refusal> {
        if self.seat_of(player).is_none() {
            return Err(Refusal::NotSeated);
        }
        *self = Self { players: std::mem::take(&mut self.players), ..Self::new() };
        Ok(())
    }

    /// Frees every seat `player` holds (the board stays: whoever sits down
    /// next plays on); `true` when something changed.
    pub fn leave(&mut self, player: &str) -> bool {
        let mut changed = false;
        for mark in [Mark::X, Mark::O] {
            let seat = self.players.seat_mut(mark);
            if seat.as_deref() == Some(player) {
                *seat = None;
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A game with alice as X and bob as O.
    fn seated() -> State {
        let mut g = State::new();
        assert_eq!(g.join("alice"), Seat::X);
        assert_eq!(g.join("bob"), Seat::O);
        g
    }

    /// Plays `cells` alternately, X first, all accepted.
    fn played(cells: &[usize]) -> State {
        let mut g = seated();
        for (i, &cell) in cells.iter().enumerate() {
            let player = if i % 2 == 0 { "alice" } else { "bob" };
            g.play(player, cell).unwrap_or_else(|r| panic!("move {i} on {cell}: {r:?}"));
        }
        g
    }

    #[test]
    fn a_new_game_serialises_as_the_published_state() {
        let v = serde_json::to_value(State::new()).expect("serialises");
        assert_eq!(
            v,
            serde_json::json!({
                "board": [null, null, null, null, null, null, null, null, null],
                "turn": "X",
                "players": {"X": null, "O": null},
                "winner": null,
            })
        );
        let v = serde_json::to_value(played(&[4])).expect("serialises");
        assert_eq!(v["board"][4], "X");
        assert_eq!(v["turn"], "O");
        assert_eq!(v["players"], serde_json::json!({"X": "alice", "O": "bob"}));
        assert_eq!(serde_json::to_value(Winner::Draw).expect("serialises"), "draw");
        assert_eq!(serde_json::to_value(Seat::Spectator).expect("serialises"), "spectator");
    }

    #[test]
    fn every_line_wins_for_either_mark() {
        for line in LINES {
            for mark in [Mark::X, Mark::O] {
                let mut board = [None; 9];
                for cell in line {
                    board[cell] = Some(mark);
                }
                assert_eq!(winner_of(&board), Some(mark.into()), "{line:?} of {mark:?}");
                // Two of three is not a line.
                board[line[2]] = None;
                assert_eq!(winner_of(&board), None, "{line:?} of {mark:?} minus one");
            }
        }
        assert_eq!(winner_of(&[None; 9]), None);
    }

    #[test]
    fn a_full_board_without_a_line_is_a_draw() {
        // X O X / X O O / O X X
        let g = played(&[0, 1, 2, 4, 3, 5, 7, 6, 8]);
        assert_eq!(g.winner, Some(Winner::Draw));
        assert!(g.board.iter().all(Option::is_some));
        // A line on the last cell wins rather than draws.
        let g = played(&[0, 1, 2, 4, 3, 5, 6]);
        assert_eq!(g.winner, Some(Winner::X));
    }

    #[test]
    fn a_win_keeps_the_winner_to_move_and_ends_the_game() {
        let mut g = played(&[0, 3, 1, 4, 2]);
        assert_eq!(g.winner, Some(Winner::X));
        assert_eq!(g.turn, Mark::X);
        let before = g.clone();
        assert_eq!(g.play("bob", 8), Err(Refusal::GameOver(Winner::X)));
        assert_eq!(g.play("alice", 8), Err(Refusal::GameOver(Winner::X)));
        assert_eq!(g, before, "a refusal changes nothing");
        let g = played(&[0, 3, 1, 4, 8, 5]);
        assert_eq!(g.winner, Some(Winner::O));
    }

    #[test]
    fn turns_alternate_from_x() {
        let mut g = seated();
        assert_eq!(g.turn, Mark::X);
        assert_eq!(g.play("bob", 0), Err(Refusal::NotYourTurn(Mark::X)));
        g.play("alice", 0).expect("X moves first");
        assert_eq!(g.turn, Mark::O);
        assert_eq!(g.play("alice", 1), Err(Refusal::NotYourTurn(Mark::O)));
        g.play("bob", 1).expect("then O");
        assert_eq!(g.turn, Mark::X);
        assert_eq!(g.board[..2], [Some(Mark::X), Some(Mark::O)]);
    }

    #[test]
    fn each_illegal_move_has_its_code_and_changes_nothing() {
        let mut g = played(&[4]);
        let before = g.clone();
        let cases = [
            ("bob", 9, Refusal::BadMove, "bad_move"),
            ("carol", 9, Refusal::BadMove, "bad_move"),
            ("carol", 0, Refusal::NotSeated, "not_seated"),
            ("alice", 0, Refusal::NotYourTurn(Mark::O), "not_your_turn"),
            ("bob", 4, Refusal::CellTaken(4, Mark::X), "cell_taken"),
        ];
        for (player, cell, refusal, code) in cases {
            assert_eq!(g.play(player, cell), Err(refusal), "{player} on {cell}");
            assert_eq!(refusal.code(), code);
            assert!(!refusal.message().is_empty());
            assert_eq!(g, before, "{player} on {cell} changed the game");
        }
        let over = Refusal::GameOver(Winner::Draw);
        assert_eq!(over.code(), "game_over");
        assert!(over.message().contains("draw"), "{}", over.message());
        assert_eq!(Refusal::CellTaken(4, Mark::X).message(), "cell 4 already holds X");
    }

    #[test]
    fn join_keeps_a_seat_and_seats_the_third_as_a_spectator() {
        let mut g = State::new();
        assert_eq!(g.join("alice"), Seat::X);
        assert_eq!(g.join("alice"), Seat::X, "a seated player keeps their seat");
        assert_eq!(g.join("bob"), Seat::O);
        assert_eq!(g.join("carol"), Seat::Spectator);
        assert_eq!(g.players, Players { x: Some("alice".into()), o: Some("bob".into()) });
        assert_eq!(g.seat_of("carol"), None);
    }

    #[test]
    fn reset_is_a_fresh_board_for_the_same_players() {
        let mut g = played(&[0, 3, 1, 4, 2]);
        assert_eq!(g.reset("carol"), Err(Refusal::NotSeated), "spectators may not");
        assert_eq!(g.winner, Some(Winner::X));
        g.reset("bob").expect("a seated player may");
        assert_eq!(g, seated());
    }

    #[test]
    fn leave_frees_the_seat_and_keeps_the_board() {
        let mut g = played(&[0, 4]);
        assert!(!g.leave("carol"), "not seated: nothing changes");
        assert!(g.leave("alice"));
        assert_eq!(g.players.x, None);
        assert_eq!(g.board[0], Some(Mark::X), "the board stays");
        assert_eq!(g.play("alice", 1), Err(Refusal::NotSeated));
        assert_eq!(g.join("carol"), Seat::X, "the next to join takes the free seat");
        g.play("carol", 1).expect("and plays on");
        // One player in both seats leaves both.
        let mut solo = State::new();
        solo.join("alice");
        solo.players.o = Some("alice".into());
        assert!(solo.leave("alice"));
        assert_eq!(solo.players, Players::default());
    }
}
