import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Backoff, reconnectDelay } from '../../static/js/backoff.js';

const top = () => 1;
const bottom = () => 0;

test('the delay ceiling doubles with each attempt', () => {
  const delays = [0, 1, 2, 3, 4].map((attempt) => reconnectDelay(attempt, { random: top }));
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000]);
});

test('the delay never exceeds max, however many attempts', () => {
  for (const attempt of [5, 6, 30, 2000, Infinity]) {
    assert.equal(reconnectDelay(attempt, { random: top }), 15_000);
  }
  assert.equal(reconnectDelay(3, { base: 1000, max: 2500, random: top }), 2500);
});

test('full jitter spans zero to the ceiling', () => {
  assert.equal(reconnectDelay(3, { random: bottom }), 0);
  assert.equal(reconnectDelay(3, { random: () => 0.25 }), 1000);
  assert.equal(reconnectDelay(3, { random: top }), 4000);
});

test('the delay is never negative, even with bad input', () => {
  assert.equal(reconnectDelay(-3, { random: top }), 500);
  assert.equal(reconnectDelay(Number.NaN, { random: top }), 500);
  assert.equal(reconnectDelay(2, { random: () => -0.5 }), 0);
  assert.equal(reconnectDelay(2, { random: () => 7 }), 2000);
});

test('Backoff counts attempts and starts over on reset', () => {
  const backoff = new Backoff({ random: top });
  assert.deepEqual([backoff.next(), backoff.next(), backoff.next()], [500, 1000, 2000]);
  assert.equal(backoff.attempt, 3);
  backoff.reset();
  assert.equal(backoff.attempt, 0);
  assert.equal(backoff.next(), 500);
});
