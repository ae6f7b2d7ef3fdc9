// Tic-tac-toe rules, pure: every function takes a game and returns a new
// one (or a refusal), never touching its argument. The HTTP service
// (server.mjs) keeps one game per room and publishes what these return.

/** The eight lines that win: three rows, three columns, two diagonals. */
export const LINES = [
  [0, 1, 2],
  [3, 4, 5],
  [6, 7, 8],
  [0, 3, 6],
  [1, 4, 7],
  [2, 5, 8],
  [0, 4, 8],
  [2, 4, 6],
];

/** An empty board, X to move, no one seated. */
export function newGame() {
  return { board: Array(9).fill(null), turn: 'X', players: { X: null, O: null }, winner: null };
}

/** `'X'`, `'O'`, `'draw'` (a full board without a line) or `null` (play on). */
export function winnerOf(board) {
  for (const [a, b, c] of LINES) {
    if (board[a] && board[a] === board[b] && board[a] === board[c]) return board[a];
  }
  return board.every((cell) => cell !== null) ? 'draw' : null;
}

/** The seat `player` holds (`'X'`, `'O'`) or `null`. */
export function seatOf(game, player) {
  if (game.players.X === player) return 'X';
  if (game.players.O === player) return 'O';
  return null;
}

/**
 * Seats `player`: the seat they already hold, else X, else O, else they
 * watch. Returns `{ game, seat }` with `seat` one of `'X'`, `'O'`, `'spectator'`.
 */
export function join(game, player) {
  const held = seatOf(game, player);
  if (held) return { game, seat: held };
  for (const seat of ['X', 'O']) {
    if (game.players[seat] === null) {
      return { game: { ...game, players: { ...game.players, [seat]: player } }, seat };
    }
  }
  return { game, seat: 'spectator' };
}

function refuse(code, message) {
  return { ok: false, code, message };
}

/**
 * `player` puts their mark on `cell` (0–8, row by row). Returns
 * `{ ok: true, game }` or `{ ok: false, code, message }` with `code` one of
 * `bad_move`, `not_seated`, `game_over`, `not_your_turn`, `cell_taken`.
 */
export function move(game, player, cell) {
  if (!Number.isInteger(cell) || cell < 0 || cell > 8) return refuse('bad_move', 'cell must be an integer from 0 to 8');
  const seat = seatOf(game, player);
  if (!seat) return refuse('not_seated', 'join the room and take a seat first');
  if (game.winner) return refuse('game_over', `the game is over (${game.winner === 'draw' ? 'a draw' : `${game.winner} won`}): reset to play again`);
  if (game.turn !== seat) return refuse('not_your_turn', `it is ${game.turn}'s turn`);
  if (game.board[cell] !== null) return refuse('cell_taken', `cell ${cell} already holds ${game.board[cell]}`);
  const board = game.board.slice();
  board[cell] = seat;
  const winner = winnerOf(board);
  return { ok: true, game: { ...game, board, winner, turn: winner ? game.turn : other(seat) } };
}

/** A fresh board for the same players, X to move; only a seated player may reset. */
export function reset(game, player) {
  if (!seatOf(game, player)) return refuse('not_seated', 'only a seated player may reset the board');
  return { ok: true, game: { ...newGame(), players: { ...game.players } } };
}

/** Frees every seat `player` holds (the board stays: whoever sits down next plays on). */
export function leave(game, player) {
  const players = { ...game.players };
  let changed = false;
  for (const seat of ['X', 'O']) {
    if (players[seat] === player) {
      players[seat] = null;
      changed = true;
    }
  }
  return changed ? { ...game, players } : game;
}

function other(seat) {
  return seat === 'X' ? 'O' : 'X';
}
