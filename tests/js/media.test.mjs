import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describeMediaError, openLocalMedia, videoEncodingFor } from '../../static/js/media.js';

test('refused, missing and busy devices each get a way forward', () => {
  assert.equal(describeMediaError({ name: 'NotAllowedError' }).kind, 'denied');
  assert.match(describeMediaError({ name: 'NotAllowedError' }).message, /join without them/);
  assert.equal(describeMediaError({ name: 'NotFoundError' }).kind, 'missing');
  assert.equal(describeMediaError({ name: 'NotReadableError' }).kind, 'busy');
  assert.equal(describeMediaError(new Error('x')).kind, 'unknown');
});

test('without a camera the microphone alone is used, and the page says why', async () => {
  const asked = [];
  const devices = {
    async getUserMedia(constraints) {
      asked.push(Object.keys(constraints).sort().join('+'));
      if (constraints.video) throw Object.assign(new Error('no camera'), { name: 'NotFoundError' });
      return { getAudioTracks: () => [{}], getVideoTracks: () => [] };
    },
  };

  const { stream, problem } = await openLocalMedia(devices);

  assert.deepEqual(asked, ['audio+video', 'audio']);
  assert.ok(stream);
  assert.equal(problem.kind, 'missing');
});

test('a refusal is not asked again, and leaves the page receive-only', async () => {
  let calls = 0;
  const devices = {
    async getUserMedia() {
      calls += 1;
      throw Object.assign(new Error('denied'), { name: 'NotAllowedError' });
    },
  };

  const { stream, problem } = await openLocalMedia(devices);

  assert.equal(calls, 1);
  assert.equal(stream, null);
  assert.equal(problem.kind, 'denied');
});

test('above four people each outgoing video is sent smaller', () => {
  assert.equal(videoEncodingFor(4).scaleResolutionDownBy, 1);
  assert.ok(videoEncodingFor(5).maxBitrate < videoEncodingFor(4).maxBitrate);
  assert.ok(videoEncodingFor(5).scaleResolutionDownBy > 1);
  assert.ok(videoEncodingFor(8).maxBitrate * 7 <= 2_000_000);
});
