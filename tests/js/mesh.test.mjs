import assert from 'node:assert/strict';
import { test } from 'node:test';

import { AWAY_GRACE_MS, Mesh } from '../../static/js/mesh.js';

/** The parts of Peer that the mesh uses, recording what was done to it. */
class FakeConnection {
  static made = 0;
  connectionState = 'new';
  started = false;
  closed = false;
  signals = [];
  constructor(remote) {
    this.serial = ++FakeConnection.made;
    this.polite = remote.polite;
  }
  start() {
    this.started = true;
  }
  handleSignal(data) {
    this.signals.push(data);
  }
  close() {
    this.closed = true;
  }
}

/** A clock of our own: timers run when the test moves time on, not before. */
class Clock {
  now = 0;
  #timers = new Map();
  #next = 1;
  setTimeout = (callback, ms) => {
    const handle = this.#next++;
    this.#timers.set(handle, { at: this.now + ms, callback });
    return handle;
  };
  clearTimeout = (handle) => {
    this.#timers.delete(handle);
  };
  advance(ms) {
    this.now += ms;
    for (const [handle, timer] of [...this.#timers].sort((a, b) => a[1].at - b[1].at)) {
      if (timer.at > this.now) break;
      this.#timers.delete(handle);
      timer.callback();
    }
  }
}

function mesh() {
  const clock = new Clock();
  const connections = [];
  const events = [];
  const call = new Mesh({
    connect: (remote) => {
      const connection = new FakeConnection(remote);
      connections.push(connection);
      return connection;
    },
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
  });
  for (const type of ['add', 'update', 'remove']) {
    call.addEventListener(type, (event) => events.push([type, event.remote.id, event.previousId]));
  }
  return { call, clock, connections, events };
}

/** The ids of everyone in the mesh, sorted. */
const ids = (call) => call.remotes().map((remote) => remote.id).sort();

const state = { audio: true, video: false, screen: false, hand: false };
const ann = { id: 'p-ann', instance: 'ann-page-1', name: 'Ann', role: 'host', state };
const bob = { id: 'p-bob', instance: 'bob-page-1', name: 'Bob', role: 'participant', state };
const self = { id: 'p-me', instance: 'my-page-01', name: 'Me', role: 'participant' };

test('the first welcome connects to everyone there, this side offering', () => {
  const { call, connections, events } = mesh();

  call.welcome({ self, peers: [ann, bob] });

  assert.deepEqual(
    call.remotes().map((remote) => [remote.id, remote.name, remote.polite]),
    [
      ['p-ann', 'Ann', false],
      ['p-bob', 'Bob', false],
    ],
  );
  assert.deepEqual(
    connections.map((connection) => connection.started),
    [true, true],
  );
  assert.deepEqual(events, [
    ['add', 'p-ann', null],
    ['add', 'p-bob', null],
  ]);
});

test("this page's own older connection in the welcome is ignored", () => {
  const { call, connections } = mesh();
  const stale = { id: 'p-me-before', instance: self.instance, name: 'Me', role: 'participant', state };

  call.welcome({ self, peers: [stale, ann] });
  call.join(stale);

  assert.deepEqual(ids(call), ['p-ann']);
  assert.equal(connections.length, 1);
});

test('a newcomer gets a polite connection that waits for its offer', () => {
  const { call, connections, events } = mesh();
  call.welcome({ self, peers: [] });

  call.join(bob);

  assert.equal(call.get('p-bob').polite, true);
  assert.equal(connections[0].started, false);
  assert.deepEqual(events, [['add', 'p-bob', null]]);
});

test('a returning page (same instance, new id) keeps its connection under the new id', () => {
  const { call, clock, connections, events } = mesh();
  call.welcome({ self, peers: [ann] });
  const remote = call.get('p-ann');
  const connection = remote.connection;
  connection.connectionState = 'connected';

  call.leave('p-ann', 'lost');
  call.join({ ...ann, id: 'p-ann-again', name: 'Ann B.' });
  clock.advance(AWAY_GRACE_MS * 2);

  assert.equal(call.get('p-ann'), undefined);
  assert.equal(call.get('p-ann-again'), remote);
  assert.equal(remote.connection, connection);
  assert.equal(remote.name, 'Ann B.');
  assert.equal(remote.polite, false, 'the side that offered goes on offering');
  assert.equal(connection.closed, false);
  assert.equal(connections.length, 1);
  assert.deepEqual(events.slice(1), [['update', 'p-ann-again', 'p-ann']]);
});

test('a lost peer whose media flows is kept for the grace period, then dropped', () => {
  const { call, clock, events } = mesh();
  call.welcome({ self, peers: [ann] });
  const { connection } = call.get('p-ann');
  connection.connectionState = 'connected';

  call.leave('p-ann', 'lost');
  clock.advance(AWAY_GRACE_MS - 1);

  assert.equal(call.get('p-ann').connection, connection);
  assert.equal(connection.closed, false);

  clock.advance(1);

  assert.equal(call.get('p-ann'), undefined);
  assert.equal(call.size, 0);
  assert.equal(connection.closed, true);
  assert.deepEqual(events.at(-1), ['remove', 'p-ann', null]);
});

test('a lost peer whose media does not flow is dropped at once', () => {
  const { call } = mesh();
  call.welcome({ self, peers: [ann] });
  const { connection } = call.get('p-ann');
  connection.connectionState = 'failed';

  call.leave('p-ann', 'lost');

  assert.equal(call.size, 0);
  assert.equal(connection.closed, true);
});

for (const reason of ['left', 'removed', 'a reason of a later protocol version']) {
  test(`a peer gone for "${reason}" is dropped at once, its media flowing or not`, () => {
    const { call, events } = mesh();
    call.welcome({ self, peers: [ann, bob] });
    const { connection } = call.get('p-ann');
    connection.connectionState = 'connected';

    call.leave('p-ann', reason);

    assert.deepEqual(ids(call), ['p-bob']);
    assert.equal(connection.closed, true);
    assert.deepEqual(events.at(-1), ['remove', 'p-ann', null]);
  });
}

test('leaving twice, or a peer nobody knows, changes nothing', () => {
  const { call, events } = mesh();
  call.welcome({ self, peers: [ann] });

  call.leave('p-ann', 'left');
  call.leave('p-ann', 'left');
  call.leave('p-nobody', 'removed');

  assert.deepEqual(
    events.map(([type]) => type),
    ['add', 'remove'],
  );
});

test('a signal from an unknown peer makes a polite connection and hands it the signal', () => {
  const { call, connections, events } = mesh();
  call.welcome({ self, peers: [] });
  const offer = { description: { type: 'offer', sdp: 'v=0' } };

  call.signal('p-new', offer);

  const remote = call.get('p-new');
  assert.equal(remote.polite, true);
  assert.equal(remote.name, '…');
  assert.equal(connections[0].started, false);
  assert.deepEqual(connections[0].signals, [offer]);
  assert.deepEqual(events, [['add', 'p-new', null]]);

  // Its peer-joined names it and keeps the connection that took the offer.
  call.join({ id: 'p-new', instance: 'new-page-1', name: 'Nia', role: 'participant', state });

  assert.equal(call.get('p-new'), remote);
  assert.equal(remote.name, 'Nia');
  assert.equal(remote.instance, 'new-page-1');
  assert.equal(connections.length, 1);
  assert.deepEqual(events.at(-1), ['update', 'p-new', null]);
});

test('signals from a known peer go to its connection', () => {
  const { call, connections } = mesh();
  call.welcome({ self, peers: [ann] });

  call.signal('p-ann', { candidate: null });

  assert.deepEqual(connections[0].signals, [{ candidate: null }]);
  assert.equal(connections.length, 1);
});

test("a returning page's signal that beats its peer-joined does not leave a second connection", () => {
  const { call, connections } = mesh();
  call.welcome({ self, peers: [ann] });
  const remote = call.get('p-ann');

  call.signal('p-ann-again', { candidate: null });
  call.join({ ...ann, id: 'p-ann-again' });

  assert.deepEqual(ids(call), ['p-ann-again']);
  assert.equal(call.get('p-ann-again'), remote);
  assert.equal(connections[1].closed, true);
  assert.equal(connections[0].closed, false);
});

test('after this page reconnects, whoever the new welcome does not list has the grace period', () => {
  const { call, clock, connections } = mesh();
  call.welcome({ self, peers: [ann, bob] });
  const carl = { id: 'p-carl', instance: 'carl-page', name: 'Carl', role: 'participant', state };

  call.welcome({ self: { ...self, id: 'p-me-again' }, peers: [{ ...ann, id: 'p-ann-2' }, carl] });

  assert.deepEqual(ids(call), ['p-ann-2', 'p-bob', 'p-carl']);
  assert.equal(connections[0].closed, false, "Ann's connection is kept");
  assert.equal(connections[2].started, true, 'this page offers to Carl, whom it meets as a newcomer');

  // Bob comes back in time; had he not, he would go with the grace period.
  clock.advance(AWAY_GRACE_MS / 2);
  call.join({ ...bob, id: 'p-bob-2' });
  clock.advance(AWAY_GRACE_MS);

  assert.deepEqual(ids(call), ['p-ann-2', 'p-bob-2', 'p-carl']);
  assert.equal(connections[1].closed, false);
});

test('after this page reconnects, whoever does not come back is dropped when the grace period ends', () => {
  const { call, clock, connections } = mesh();
  call.welcome({ self, peers: [ann, bob] });

  call.welcome({ self: { ...self, id: 'p-me-again' }, peers: [{ ...ann, id: 'p-ann-2' }] });
  clock.advance(AWAY_GRACE_MS);

  assert.deepEqual(ids(call), ['p-ann-2']);
  assert.equal(connections[1].closed, true);
});

test('a connection that could not recover is replaced; the newcomer side offers again', () => {
  const { call, connections } = mesh();
  call.welcome({ self, peers: [ann] });
  call.join(bob);
  const offer = { description: { type: 'offer', sdp: 'v=0' } };

  call.reconnect(call.get('p-ann'));
  call.reconnect(call.get('p-bob'), offer);

  assert.equal(connections[0].closed, true);
  assert.equal(connections[1].closed, true);
  assert.equal(call.get('p-ann').connection, connections[2]);
  assert.equal(connections[2].started, true);
  assert.equal(call.get('p-bob').connection, connections[3]);
  assert.equal(connections[3].started, false);
  assert.deepEqual(connections[3].signals, [offer]);
});

test('closing the mesh closes every connection and stops the grace timers', () => {
  const { call, clock, connections, events } = mesh();
  call.welcome({ self, peers: [ann, bob] });
  call.get('p-ann').connection.connectionState = 'connected';
  call.leave('p-ann', 'lost');

  call.close();
  clock.advance(AWAY_GRACE_MS);

  assert.equal(call.size, 0);
  assert.deepEqual(
    connections.map((connection) => connection.closed),
    [true, true],
  );
  assert.deepEqual(
    events.map(([type]) => type),
    ['add', 'add'],
  );
});

test('without injected timers the grace period uses the real clock', async () => {
  const call = new Mesh({ connect: (remote) => new FakeConnection(remote), graceMs: 5 });
  call.welcome({ self, peers: [ann] });
  call.get('p-ann').connection.connectionState = 'connected';

  call.leave('p-ann', 'lost');
  assert.equal(call.size, 1);
  await new Promise((resolve) => setTimeout(resolve, 30));

  assert.equal(call.size, 0);
});
