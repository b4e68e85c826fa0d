import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Backoff } from '../../static/js/backoff.js';
import { SignalingConnection, shouldReconnect, signalingUrl } from '../../static/js/signaling.js';

test('the websocket URL follows the page: wss on https, ws on http, with the instance', () => {
  assert.equal(
    signalingUrl({ protocol: 'https:', host: 'meet.example.com' }, '/ws/rooms/a/', 'p1'),
    'wss://meet.example.com/ws/rooms/a/?instance=p1',
  );
  assert.equal(
    signalingUrl({ protocol: 'http:', host: '127.0.0.1:8000' }, '/ws/rooms/a/', 'x y'),
    'ws://127.0.0.1:8000/ws/rooms/a/?instance=x%20y',
  );
});

test('only the close codes that say "not wanted" stop reconnecting', () => {
  for (const code of [4401, 4403, 4404, 4409, 4410, 4423, 4425]) assert.equal(shouldReconnect(code), false, code);
  for (const code of [1000, 1001, 1006, 1011, 1012, 4408, 4429]) assert.equal(shouldReconnect(code), true, code);
});

class FakeSocket extends EventTarget {
  static OPEN = 1;
  readyState = 0;
  sent = [];
  constructor(url) {
    super();
    this.url = url;
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {}
  open() {
    this.readyState = 1;
    this.dispatchEvent(new Event('open'));
  }
  receive(message) {
    const event = new Event('message');
    event.data = JSON.stringify(message);
    this.dispatchEvent(event);
  }
  drop(code) {
    const event = new Event('close');
    event.code = code;
    this.dispatchEvent(event);
  }
}

function connection() {
  globalThis.WebSocket = FakeSocket;
  const sockets = [];
  const signaling = new SignalingConnection('ws://x/ws/rooms/a/?instance=p', {
    createSocket: (url) => {
      const socket = new FakeSocket(url);
      sockets.push(socket);
      return socket;
    },
    backoff: new Backoff({ base: 1, max: 5, random: () => 1 }),
  });
  const statuses = [];
  const messages = [];
  const ended = [];
  signaling.addEventListener('status', (event) => statuses.push(event.status));
  signaling.addEventListener('message', (event) => messages.push(event.message));
  signaling.addEventListener('ended', (event) => ended.push([event.code, event.error?.code]));
  return { signaling, sockets, statuses, messages, ended };
}

test('a dropped connection reconnects with backoff and reports its state', async () => {
  const { signaling, sockets, statuses, messages } = connection();
  signaling.connect();
  sockets[0].open();
  sockets[0].receive({ type: 'welcome', self: { id: 'a' } });
  sockets[0].drop(1006);
  await new Promise((resolve) => setTimeout(resolve, 20));

  assert.equal(sockets.length, 2);
  assert.deepEqual(statuses, ['connecting', 'connected', 'reconnecting', 'connecting']);
  assert.deepEqual(messages.map((m) => m.type), ['welcome']);
  signaling.close();
});

test('a refusal ends the connection for good, with the server\'s error', async () => {
  const { signaling, sockets, ended } = connection();
  signaling.connect();
  sockets[0].open();
  sockets[0].receive({ type: 'error', code: 'kicked', message: 'A host removed you.' });
  sockets[0].drop(4403);
  await new Promise((resolve) => setTimeout(resolve, 20));

  assert.equal(sockets.length, 1);
  assert.deepEqual(ended, [[4403, 'kicked']]);
});

test('leaving on purpose never reconnects', async () => {
  const { signaling, sockets } = connection();
  signaling.connect();
  sockets[0].open();
  signaling.close();
  sockets[0].drop(1000);
  await new Promise((resolve) => setTimeout(resolve, 20));

  assert.equal(sockets.length, 1);
});
