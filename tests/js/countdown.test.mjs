import assert from 'node:assert/strict';
import { test } from 'node:test';

import { formatDateTime, formatTimeLeft } from '../../static/js/countdown.js';

test('the time left shows its two largest units', () => {
  const shown = [0, 0.2, 9, 60, 61, 3599, 3600, 3661, 86_400, 90_061, 200_000].map((seconds) =>
    formatTimeLeft(seconds, 'en'),
  );
  assert.deepEqual(shown, [
    '0 sec',
    '1 sec',
    '9 sec',
    '1 min',
    '1 min 1 sec',
    '59 min 59 sec',
    '1 hr',
    '1 hr 1 min',
    '1 day',
    '1 day 1 hr',
    '2 days 7 hr',
  ]);
});

test('the time left is never negative', () => {
  assert.equal(formatTimeLeft(-30, 'en'), '0 sec');
});

test('the time left is worded in the language asked for', () => {
  // French puts no-break spaces between numbers and units.
  assert.equal(formatTimeLeft(3661, 'fr').replace(/\s/gu, ' '), '1 h 1 min');
});

test('a date and time is on the 24-hour clock, in the zone asked for', () => {
  const evening = new Date('2026-01-05T20:05:00Z');
  assert.equal(formatDateTime(evening, { locale: 'en-US', timeZone: 'UTC' }), 'Mon, Jan 5, 2026, 20:05');
  assert.equal(formatDateTime(evening, { locale: 'en-GB', timeZone: 'Asia/Tokyo' }), 'Tue, 6 Jan 2026, 05:05');
});
