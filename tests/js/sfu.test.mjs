import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ChatLog, parseServerChat, serverHistoryMessage, SERVER_HISTORY_BYTES } from '../../static/js/chat.js';
import {
  DEFAULT_LAST_N,
  SfuSession,
  layerForWidth,
  planReception,
  receptionChanges,
  tileKey,
} from '../../static/js/sfu.js';

/** The subscription's sections for these peers: audio then video of each camera, mids counting up. */
function cameras(...peers) {
  return peers.flatMap((peer, index) => [
    { mid: String(2 * index), peer, feed: 'camera', kind: 'audio' },
    { mid: String(2 * index + 1), peer, feed: 'camera', kind: 'video' },
  ]);
}

const byMid = (plan) => Object.fromEntries(plan.map((entry) => [entry.mid, entry]));

test('a tile gets the layer its width needs', () => {
  assert.equal(layerForWidth(200), 0);
  assert.equal(layerForWidth(319), 0);
  assert.equal(layerForWidth(320), 1);
  assert.equal(layerForWidth(640), 1);
  assert.equal(layerForWidth(641), 2);
  assert.equal(layerForWidth(1900), 2);
  // Not laid out yet: the media server's own default, the highest.
  assert.equal(layerForWidth(undefined), 2);
  assert.equal(layerForWidth(0), 2);
});

test('a screen share has a tile of its own, a camera the person\'s tile', () => {
  assert.equal(tileKey('Vd3hq0Ee5x_A', 'camera'), 'Vd3hq0Ee5x_A');
  assert.equal(tileKey('Vd3hq0Ee5x_A', 'screen'), 'Vd3hq0Ee5x_A:screen');
});

test('every video is received at the layer of its tile; audio is left alone', () => {
  const streams = cameras('a', 'b', 'c');
  const plan = planReception({ streams, widths: new Map([['a', 200], ['b', 500], ['c', 900]]) });
  assert.deepEqual(plan, [
    { mid: '1', send: true, layer: 0 },
    { mid: '3', send: true, layer: 1 },
    { mid: '5', send: true, layer: 2 },
  ]);
});

test('past the last N, the videos of those who spoke least recently are paused', () => {
  const streams = cameras('a', 'b', 'c', 'd');
  const widths = new Map(['a', 'b', 'c', 'd'].map((peer) => [peer, 400]));
  const plan = byMid(planReception({ streams, widths, speakers: ['d', 'c'], lastN: 2 }));
  assert.deepEqual(plan['7'], { mid: '7', send: true, layer: 1 });
  assert.deepEqual(plan['5'], { mid: '5', send: true, layer: 1 });
  assert.deepEqual(plan['1'], { mid: '1', send: false });
  assert.deepEqual(plan['3'], { mid: '3', send: false });
});

test('without speakers, the first N in the subscription\'s order are received', () => {
  const peers = Array.from({ length: 12 }, (_, index) => `p${index}`);
  const plan = planReception({ streams: cameras(...peers) });
  assert.equal(plan.length, 12);
  assert.equal(plan.filter((entry) => entry.send).length, DEFAULT_LAST_N);
  assert.deepEqual(plan.slice(DEFAULT_LAST_N).map((entry) => entry.send), [false, false, false]);
});

test('the pinned tile and screen shares come before the speakers', () => {
  const streams = [...cameras('a', 'b', 'c'), { mid: '6', peer: 'c', feed: 'screen', kind: 'video' }];
  const plan = byMid(planReception({ streams, speakers: ['b', 'c'], pinned: 'a', lastN: 2 }));
  assert.equal(plan['6'].send, true, 'the screen');
  assert.equal(plan['1'].send, true, 'the pinned camera');
  assert.equal(plan['3'].send, false);
  assert.equal(plan['5'].send, false);
});

test('a pinned screen is told apart from its sharer\'s camera', () => {
  const streams = [...cameras('a', 'b'), { mid: '4', peer: 'b', feed: 'screen', kind: 'video' }];
  const plan = byMid(planReception({ streams, pinned: 'b:screen', lastN: 1 }));
  assert.equal(plan['4'].send, true);
  assert.equal(plan['1'].send, false);
  assert.equal(plan['3'].send, false);
});

test('a camera that is off is paused and leaves its place to another', () => {
  const plan = byMid(planReception({ streams: cameras('a', 'b', 'c'), cameraOff: new Set(['a']), lastN: 2 }));
  assert.equal(plan['1'].send, false);
  assert.equal(plan['3'].send, true);
  assert.equal(plan['5'].send, true);
});

test('a hidden page receives no video at all', () => {
  const streams = [...cameras('a', 'b'), { mid: '4', peer: 'b', feed: 'screen', kind: 'video' }];
  const plan = planReception({ streams, hidden: true, pinned: 'a', speakers: ['a'] });
  assert.deepEqual(plan, [
    { mid: '1', send: false },
    { mid: '3', send: false },
    { mid: '4', send: false },
  ]);
});

test('a last N of nothing receives no video', () => {
  assert.ok(planReception({ streams: cameras('a'), lastN: 0 }).every((entry) => !entry.send));
});

test('only what changed is asked again', () => {
  const asked = new Map();
  const streams = cameras('a', 'b');
  const first = planReception({ streams, widths: new Map([['a', 200], ['b', 200]]) });
  assert.deepEqual(receptionChanges(asked, first), first);
  assert.deepEqual(receptionChanges(asked, first), []);
  // b's tile grows; then the page hides.
  const grown = planReception({ streams, widths: new Map([['a', 200], ['b', 700]]) });
  assert.deepEqual(receptionChanges(asked, grown), [{ mid: '3', send: true, layer: 2 }]);
  const hidden = planReception({ streams, hidden: true });
  assert.deepEqual(receptionChanges(asked, hidden), [
    { mid: '1', send: false },
    { mid: '3', send: false },
  ]);
  // A paused video whose tile changes size stays paused: nothing to say.
  assert.deepEqual(receptionChanges(asked, planReception({ streams, hidden: true, widths: new Map([['a', 900]]) })), []);
  // Shown again: everything resumes at its layer.
  assert.deepEqual(receptionChanges(asked, grown), [
    { mid: '1', send: true, layer: 0 },
    { mid: '3', send: true, layer: 2 },
  ]);
});

// --- The subscription, on a stand-in for RTCPeerConnection ---------------------------------------

class FakeConnection extends EventTarget {
  /** @type {any[]} */
  calls = [];
  remoteDescription = null;
  localDescription = null;
  signalingState = 'stable';
  connectionState = 'new';
  /** @type {{mid: string, receiver: {track: {id: string, kind: string}}}[]} */
  transceivers = [];

  constructor(config) {
    super();
    this.config = config;
  }

  async setRemoteDescription(description) {
    this.calls.push(['setRemoteDescription', description.type]);
    this.remoteDescription = description;
    // Each m-line of the fake offer is "m=<kind> <mid>".
    for (const [, kind, mid] of description.sdp.matchAll(/m=(\w+) (\w+)/g)) {
      if (!this.transceivers.some((each) => each.mid === mid)) {
        this.transceivers.push({ mid, receiver: { track: { id: `track-${mid}`, kind } } });
      }
    }
    this.signalingState = description.type === 'offer' ? 'have-remote-offer' : 'stable';
  }

  async createAnswer() {
    return { type: 'answer', sdp: `answer to ${this.remoteDescription.sdp}` };
  }

  async setLocalDescription(description) {
    this.calls.push(['setLocalDescription', description.type]);
    this.localDescription = description;
    this.signalingState = 'stable';
  }

  async addIceCandidate(candidate) {
    this.calls.push(['addIceCandidate', candidate?.candidate ?? null]);
  }

  getTransceivers() {
    return this.transceivers;
  }

  close() {
    this.calls.push(['close']);
    this.connectionState = 'closed';
  }
}

function session() {
  const sent = [];
  const connections = [];
  const sfu = new SfuSession({
    iceServers: [{ urls: ['stun:stun.example.com'] }],
    send: (message) => sent.push(message),
    createPeerConnection: (config) => {
      const pc = new FakeConnection(config);
      connections.push(pc);
      return /** @type {any} */ (pc);
    },
  });
  return { sfu, sent, connections };
}

test('the subscription is answered on one connection, its tracks named by the offer\'s streams', async () => {
  const { sfu, sent, connections } = session();
  const seen = [];
  sfu.addEventListener('streams', (event) => seen.push(event.streams));
  await sfu.handle({ type: 'trickle', target: 'subscription', candidate: { candidate: 'too early' } });
  await sfu.handle({
    type: 'subscription',
    description: { type: 'offer', sdp: 'm=audio 0 m=video 1' },
    streams: [
      { mid: '0', peer: 'ann', feed: 'camera', kind: 'audio' },
      { mid: '1', peer: 'ann', feed: 'camera', kind: 'video' },
    ],
  });
  assert.equal(connections.length, 1);
  assert.deepEqual(connections[0].config, { iceServers: [{ urls: ['stun:stun.example.com'] }] });
  assert.deepEqual(sent, [{ type: 'subscribe-answer', description: { type: 'answer', sdp: 'answer to m=audio 0 m=video 1' } }]);
  assert.deepEqual(seen[0].map(({ mid, peer, feed, track }) => [mid, peer, feed, track.id]), [
    ['0', 'ann', 'camera', 'track-0'],
    ['1', 'ann', 'camera', 'track-1'],
  ]);

  // Someone else publishes, Ann leaves: the same connection, and Ann's sections are left out.
  await sfu.handle({
    type: 'subscription',
    description: { type: 'offer', sdp: 'm=audio 0 m=video 1 m=video 2' },
    streams: [{ mid: '2', peer: 'ben', feed: 'screen', kind: 'video' }],
  });
  assert.equal(connections.length, 1);
  assert.deepEqual(seen[1].map(({ mid, peer, feed }) => [mid, peer, feed]), [['2', 'ben', 'screen']]);
  // The early candidate was added once the offer was set, before the answer.
  assert.deepEqual(connections[0].calls.slice(0, 3), [
    ['setRemoteDescription', 'offer'],
    ['addIceCandidate', 'too early'],
    ['setLocalDescription', 'answer'],
  ]);
});

test('own candidates trickle with the connection they belong to; closing closes everything', async () => {
  const { sfu, sent, connections } = session();
  await sfu.handle({ type: 'subscription', description: { type: 'offer', sdp: 'm=video 0' }, streams: [] });
  const candidate = { toJSON: () => ({ candidate: 'candidate:1 1 udp 1 192.0.2.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0 }) };
  connections[0].dispatchEvent(Object.assign(new Event('icecandidate'), { candidate }));
  connections[0].dispatchEvent(Object.assign(new Event('icecandidate'), { candidate: null }));
  assert.deepEqual(sent.slice(1), [
    { type: 'trickle', target: 'subscription', candidate: { candidate: 'candidate:1 1 udp 1 192.0.2.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0 } },
    { type: 'trickle', target: 'subscription', candidate: null },
  ]);
  sfu.close();
  assert.deepEqual(connections[0].calls.at(-1), ['close']);
  // Nothing more after the end.
  await sfu.handle({ type: 'subscription', description: { type: 'offer', sdp: 'm=video 0' }, streams: [] });
  assert.equal(connections.length, 1);
  assert.equal(sent.length, 3);
});

test('a publish with nothing to send opens no connection; unpublishing what is not published says nothing', async () => {
  const { sfu, sent, connections } = session();
  await sfu.publish('camera', []);
  sfu.unpublish('screen');
  assert.equal(connections.length, 0);
  assert.deepEqual(sent, []);
});

// --- Chat through the server ----------------------------------------------------------------------

test('a chat through the server carries its author, as the server stamped it', () => {
  const message = {
    type: 'chat',
    id: 'm1',
    text: '<b>hi</b>',
    sentAt: 1767225600000,
    from: { id: 'q8PZ1bT2d-Ro', name: 'Bob' },
    extra: 'dropped',
  };
  assert.deepEqual(parseServerChat(message), [{ id: 'm1', text: '<b>hi</b>', sentAt: 1767225600000, from: { id: 'q8PZ1bT2d-Ro', name: 'Bob' } }]);
  assert.equal(parseServerChat({ ...message, from: undefined }), null);
  assert.equal(parseServerChat({ ...message, text: ' ' }), null);
  assert.equal(parseServerChat('not an object'), null);
  assert.equal(parseServerChat({ type: 'peer-state' }), null);
});

test('a history through the server is read like one on a data channel', () => {
  const entry = { id: 'm1', text: 'Hello', sentAt: 1, from: { id: 'a', name: 'Ann' } };
  assert.deepEqual(parseServerChat({ type: 'chat-history', from: 'a', messages: [entry] }), [entry]);
  assert.equal(parseServerChat({ type: 'chat-history', messages: [{ ...entry, from: null }] }), null);
});

test('the history for a newcomer is addressed to them and fits in a websocket frame', () => {
  const log = new ChatLog();
  for (let index = 0; index < 200; index += 1) {
    log.add({ id: `m${index}`, text: 'é'.repeat(3000), sentAt: index, from: { id: 'a', name: 'Ann' } });
  }
  const message = serverHistoryMessage(log, 'newcomer', (id) => (id === 'a' ? 'Ann Again' : undefined));
  assert.equal(message.type, 'chat-history');
  assert.equal(message.to, 'newcomer');
  assert.ok(message.messages.length > 0 && message.messages.length < 200);
  assert.equal(message.messages.at(-1).id, 'm199', 'the newest are kept');
  assert.equal(message.messages[0].from.name, 'Ann Again');
  assert.ok(new TextEncoder().encode(JSON.stringify(message)).byteLength <= SERVER_HISTORY_BYTES + 100);
});
