// node --test rules.test.mjs
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { LINES, join, leave, move, newGame, reset, winnerOf } from './rules.mjs';

/** A game with alice as X and bob as O. */
function seated() {
  let g = newGame();
  g = join(g, 'alice').game;
  g = join(g, 'bob').game;
  return g;
}

/** Plays `cells` alternately, X first, asserting each move is legal. */
function play(g, cells) {
  for (const [i, cell] of cells.entries()) {
    const r = move(g, i % 2 === 0 ? 'alice' : 'bob', cell);
    assert.ok(r.ok, `move ${i} (cell ${cell}): ${r.code}`);
    g = r.game;
  }
  return g;
}

test('a new game: empty board, X to move, nobody seated, no winner', () => {
  assert.deepEqual(newGame(), { board: Array(9).fill(null), turn: 'X', players: { X: null, O: null }, winner: null });
});

test('join seats X, then O, then spectators; a seated player keeps their seat', () => {
  let g = newGame();
  let r = join(g, 'alice');
  assert.equal(r.seat, 'X');
  g = r.game;
  r = join(g, 'bob');
  assert.equal(r.seat, 'O');
  g = r.game;
  assert.deepEqual(g.players, { X: 'alice', O: 'bob' });
  assert.equal(join(g, 'carol').seat, 'spectator');
  assert.equal(join(g, 'carol').game, g, 'a spectator changes nothing');
  assert.equal(join(g, 'alice').seat, 'X');
  assert.equal(join(g, 'bob').seat, 'O');
});

test('every one of the eight lines wins, for either mark', () => {
  for (const mark of ['X', 'O']) {
    for (const line of LINES) {
      const board = Array(9).fill(null);
      for (const c of line) board[c] = mark;
      assert.equal(winnerOf(board), mark, `${mark} on ${line}`);
    }
  }
});

test('no winner on a partial board without a line', () => {
  assert.equal(winnerOf(Array(9).fill(null)), null);
  assert.equal(winnerOf(['X', 'O', 'X', null, null, null, null, null, null]), null);
  assert.equal(winnerOf(['X', 'X', 'O', null, null, null, null, null, null]), null);
});

test('a full board without a line is a draw', () => {
  // X O X / X O O / O X X
  assert.equal(winnerOf(['X', 'O', 'X', 'X', 'O', 'O', 'O', 'X', 'X']), 'draw');
  const g = play(seated(), [0, 1, 2, 4, 3, 5, 7, 6, 8]);
  assert.equal(g.winner, 'draw');
  assert.deepEqual(move(g, 'bob', 0).code, 'game_over');
});

test('a line on the last cell wins rather than draws', () => {
  // X O X / O X O / O X X (X completes the diagonal on cell 8)
  assert.equal(winnerOf(['X', 'O', 'X', 'O', 'X', 'O', 'O', 'X', 'X']), 'X');
});

test('turns alternate, X first', () => {
  let g = seated();
  assert.equal(g.turn, 'X');
  assert.equal(move(g, 'bob', 4).code, 'not_your_turn', 'O may not open');
  g = move(g, 'alice', 4).game;
  assert.equal(g.turn, 'O');
  assert.equal(g.board[4], 'X');
  assert.equal(move(g, 'alice', 0).code, 'not_your_turn', 'X may not move twice');
  g = move(g, 'bob', 0).game;
  assert.equal(g.turn, 'X');
  assert.equal(g.board[0], 'O');
});

test('X wins a row; after that every move is game_over and the turn stays', () => {
  const g = play(seated(), [0, 3, 1, 4, 2]);
  assert.equal(g.winner, 'X');
  assert.equal(g.turn, 'X');
  assert.equal(move(g, 'bob', 8).code, 'game_over');
  assert.equal(move(g, 'alice', 8).code, 'game_over');
});

test('O wins a column', () => {
  const g = play(seated(), [0, 1, 3, 4, 8, 7]);
  assert.equal(g.winner, 'O');
});

test('illegal moves are refused with their code and change nothing', () => {
  const g = play(seated(), [4]);
  const before = structuredClone(g);
  const cases = [
    ['bob', 4, 'cell_taken'],
    ['alice', 0, 'not_your_turn'],
    ['carol', 0, 'not_seated'],
    ['bob', -1, 'bad_move'],
    ['bob', 9, 'bad_move'],
    ['bob', 1.5, 'bad_move'],
    ['bob', '1', 'bad_move'],
    ['bob', null, 'bad_move'],
    ['bob', undefined, 'bad_move'],
  ];
  for (const [player, cell, code] of cases) {
    const r = move(g, player, cell);
    assert.equal(r.ok, false, `${player} ${cell}`);
    assert.equal(r.code, code, `${player} ${cell}`);
    assert.equal(typeof r.message, 'string');
  }
  assert.deepEqual(g, before, 'the game was not touched');
});

test('moves never mutate the game they are given', () => {
  const g = seated();
  const before = structuredClone(g);
  const r = move(g, 'alice', 0);
  assert.ok(r.ok);
  assert.deepEqual(g, before);
  assert.notEqual(r.game.board, g.board);
});

test('reset clears the board for the same players; spectators may not reset', () => {
  const g = play(seated(), [0, 3, 1, 4, 2]);
  assert.equal(reset(g, 'carol').code, 'not_seated');
  const r = reset(g, 'bob');
  assert.ok(r.ok);
  assert.deepEqual(r.game, { ...newGame(), players: { X: 'alice', O: 'bob' } });
});

test('leave frees the seats a player holds and keeps the board', () => {
  const g = play(seated(), [0]); // O to move
  const left = leave(g, 'bob');
  assert.deepEqual(left.players, { X: 'alice', O: null });
  assert.deepEqual(left.board, g.board);
  assert.equal(leave(g, 'carol'), g, 'a stranger leaving changes nothing');
  const r = join(left, 'carol');
  assert.equal(r.seat, 'O', 'the free seat is taken by the next to join');
  assert.ok(move(r.game, 'carol', 8).ok, 'and they play on');
});
