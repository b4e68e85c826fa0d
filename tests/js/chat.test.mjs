import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  ChatLog,
  HISTORY_LIMIT,
  MAX_TEXT_LENGTH,
  historyPayload,
  makeChatMessage,
  parseChatPayload,
} from '../../static/js/chat.js';

const alice = { id: 'peer-alice', name: 'Alice' };
const bob = { id: 'peer-bob', name: 'Bob' };

function entry(id, sentAt, from = alice, text = `message ${id}`) {
  return { id, text, sentAt, from };
}

test('makeChatMessage stamps an id and the time', () => {
  const message = makeChatMessage('hello', 1_700_000_000_000, () => 'fixed-id');
  assert.deepEqual(message, { type: 'chat', id: 'fixed-id', text: 'hello', sentAt: 1_700_000_000_000 });
  assert.match(makeChatMessage('hi').id, /^[0-9a-f-]{36}$/);
  assert.notEqual(makeChatMessage('hi').id, makeChatMessage('hi').id);
  assert.throws(() => makeChatMessage('   '), RangeError);
  assert.throws(() => makeChatMessage('x'.repeat(MAX_TEXT_LENGTH + 1)), RangeError);
  assert.equal(makeChatMessage('x'.repeat(MAX_TEXT_LENGTH)).text.length, MAX_TEXT_LENGTH);
});

test('what makeChatMessage makes, parseChatPayload accepts', () => {
  const message = makeChatMessage('hello');
  assert.deepEqual(parseChatPayload(JSON.stringify(message)), message);
});

test('the log drops messages it already has', () => {
  const log = new ChatLog();
  assert.equal(log.add(entry('a', 1)), true);
  assert.equal(log.add(entry('a', 1)), false);
  assert.equal(log.add({ ...entry('a', 5, bob), text: 'same id, other text' }), false);
  assert.equal(log.size, 1);
  assert.equal(log.messages()[0].from, alice);
  assert.equal(log.has('a'), true);
});

test('the log orders by sentAt, then by id', () => {
  const log = new ChatLog();
  for (const [id, sentAt] of [['c', 20], ['b', 10], ['z', 5], ['a', 10], ['d', 30]]) log.add(entry(id, sentAt));
  assert.deepEqual(
    log.messages().map((message) => message.id),
    ['z', 'a', 'b', 'c', 'd'],
  );
});

test('the log keeps only the latest messages', () => {
  const log = new ChatLog();
  for (let i = 0; i < HISTORY_LIMIT + 50; i += 1) log.add(entry(`m${i}`, i));
  assert.equal(log.size, HISTORY_LIMIT);
  assert.equal(log.messages()[0].id, 'm50');
  // A message older than everything kept is not news.
  assert.equal(log.add(entry('ancient', -1)), false);
  assert.equal(log.has('ancient'), false);
  assert.equal(log.add(entry('late', 100.5)), true);
  assert.equal(log.messages()[0].id, 'm51');
});

test('parseChatPayload rejects anything that is not a valid chat message', () => {
  const valid = { type: 'chat', id: 'abc', text: 'hi', sentAt: 1 };
  assert.deepEqual(parseChatPayload(JSON.stringify(valid)), valid);
  const invalid = [
    'not json',
    '',
    'null',
    '[]',
    '"chat"',
    JSON.stringify({ ...valid, type: 'chat-message' }),
    JSON.stringify({ ...valid, id: 12 }),
    JSON.stringify({ ...valid, id: '' }),
    JSON.stringify({ ...valid, id: 'x'.repeat(65) }),
    JSON.stringify({ ...valid, text: 42 }),
    JSON.stringify({ ...valid, text: '' }),
    JSON.stringify({ ...valid, text: ' \n ' }),
    JSON.stringify({ ...valid, text: 'x'.repeat(MAX_TEXT_LENGTH + 1) }),
    JSON.stringify({ ...valid, sentAt: '1' }),
    JSON.stringify({ ...valid, sentAt: null }),
    JSON.stringify({ type: 'chat', id: 'abc', text: 'hi' }),
    // JSON has no NaN or Infinity; these are what a sender's NaN and 1e999 turn into.
    '{"type":"chat","id":"abc","text":"hi","sentAt":NaN}',
    '{"type":"chat","id":"abc","text":"hi","sentAt":1e999}',
  ];
  for (const raw of invalid) assert.equal(parseChatPayload(raw), null, raw);
  assert.equal(parseChatPayload(new ArrayBuffer(8)), null);
  assert.equal(parseChatPayload(undefined), null);
});

test('parseChatPayload copies only the known fields', () => {
  const parsed = parseChatPayload(JSON.stringify({ type: 'chat', id: 'a', text: 'hi', sentAt: 1, html: '<b>' }));
  assert.deepEqual(parsed, { type: 'chat', id: 'a', text: 'hi', sentAt: 1 });
});

test('a history payload survives the round trip', () => {
  const log = new ChatLog();
  log.add(entry('b', 2, bob));
  log.add(entry('a', 1, alice));
  const payload = historyPayload(log, (peerId) => (peerId === bob.id ? 'Robert' : undefined));
  assert.deepEqual(parseChatPayload(payload), {
    type: 'chat-history',
    messages: [entry('a', 1, alice), entry('b', 2, { id: bob.id, name: 'Robert' })],
  });
});

test('a history payload holds at most the last 200 messages and fits in one data channel message', () => {
  const log = new ChatLog(1000);
  for (let i = 0; i < 300; i += 1) log.add(entry(`m${i}`, i));
  const { messages } = parseChatPayload(historyPayload(log));
  assert.equal(messages.length, HISTORY_LIMIT);
  assert.equal(messages[0].id, 'm100');
  assert.equal(messages.at(-1).id, 'm299');

  const long = new ChatLog();
  for (let i = 0; i < 200; i += 1) long.add(entry(`m${i}`, i, alice, 'é'.repeat(MAX_TEXT_LENGTH)));
  const payload = historyPayload(long);
  assert.ok(new TextEncoder().encode(payload).byteLength <= 256 * 1024);
  const kept = parseChatPayload(payload).messages;
  assert.ok(kept.length > 0 && kept.length < 200);
  assert.equal(kept.at(-1).id, 'm199', 'the newest messages are the ones kept');
  const oneMore = JSON.stringify({ type: 'chat-history', messages: long.messages().slice(-(kept.length + 1)) });
  assert.ok(new TextEncoder().encode(oneMore).byteLength > 256 * 1024, 'as many as fit are kept');
});

test('parseChatPayload rejects a history with any bad entry, or too many', () => {
  const good = entry('a', 1);
  const history = (messages) => JSON.stringify({ type: 'chat-history', messages });
  assert.equal(parseChatPayload(history([good])).messages.length, 1);
  assert.deepEqual(parseChatPayload(history([])), { type: 'chat-history', messages: [] });
  const invalid = [
    history([good, { ...good, id: 'b', from: null }]),
    history([good, { ...good, id: 'b', from: { id: 'x' } }]),
    history([good, { ...good, id: 'b', from: { id: 7, name: 'Seven' } }]),
    history([good, { ...good, id: 'b', from: { id: 'x', name: 'n'.repeat(201) } }]),
    history([good, { ...good, id: 'b', text: 'x'.repeat(MAX_TEXT_LENGTH + 1) }]),
    history([good, 'b']),
    history(Array.from({ length: HISTORY_LIMIT + 1 }, (_, i) => entry(`m${i}`, i))),
    JSON.stringify({ type: 'chat-history', messages: { 0: good } }),
    JSON.stringify({ type: 'chat-history' }),
  ];
  for (const raw of invalid) assert.equal(parseChatPayload(raw), null, raw.slice(0, 120));
});

test('a newcomer receiving the same history from two peers keeps one copy', () => {
  const first = new ChatLog();
  const second = new ChatLog();
  for (const log of [first, second]) {
    log.add(entry('a', 1, alice));
    log.add(entry('b', 2, bob));
  }
  second.add(entry('c', 3, bob));

  const newcomer = new ChatLog();
  for (const log of [first, second]) {
    for (const message of parseChatPayload(historyPayload(log)).messages) newcomer.add(message);
  }
  assert.deepEqual(
    newcomer.messages().map((message) => message.id),
    ['a', 'b', 'c'],
  );
});
