import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Peer, summarizeStats } from '../../static/js/peer.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

class FakeEvent extends Event {
  constructor(type, properties) {
    super(type);
    Object.assign(this, properties);
  }
}

function invalidState(message) {
  return Object.assign(new Error(message), { name: 'InvalidStateError' });
}

/**
 * The parts of RTCPeerConnection that Peer uses, with the signaling state
 * machine, the operations chain (each operation completes in a later task, in
 * call order), implicit rollback and the negotiation-needed flag of WebRTC 1.0:
 * negotiationneeded fires in a later task, only in "stable" with an empty
 * operations chain, and again on returning to "stable" while something is
 * still unnegotiated. A "change" (the first data channel, a track, an ICE
 * restart) stays pending until a local offer carrying it is answered; the data
 * section also counts as negotiated once we answer a remote offer.
 */
class FakePeerConnection extends EventTarget {
  signalingState = 'stable';
  connectionState = 'new';
  iceConnectionState = 'new';
  currentLocalDescription = null;
  pendingLocalDescription = null;
  currentRemoteDescription = null;
  pendingRemoteDescription = null;
  /** Operations in the order they took effect. */
  log = [];
  restartIceCalls = 0;
  channels = [];
  closed = false;
  #chain = Promise.resolve();
  #pending = new Set();
  #inOffer = new Set();
  #needed = false;
  #operations = 0;
  #updateOnEmptyChain = false;
  #offers = 0;

  constructor(config, name) {
    super();
    this.config = config;
    this.name = name;
  }

  get localDescription() {
    return this.pendingLocalDescription ?? this.currentLocalDescription;
  }

  get remoteDescription() {
    return this.pendingRemoteDescription ?? this.currentRemoteDescription;
  }

  get hasPendingChanges() {
    return this.#pending.size + this.#inOffer.size > 0;
  }

  setLocalDescription(description) {
    return this.#enqueue(() => {
      const type = description?.type ?? (this.signalingState === 'have-remote-offer' ? 'answer' : 'offer');
      if (type === 'rollback') return this.#rollback(true);
      if (type === 'offer') {
        if (this.signalingState !== 'stable' && this.signalingState !== 'have-local-offer') {
          throw invalidState(`cannot offer in ${this.signalingState}`);
        }
        for (const change of this.#pending) this.#inOffer.add(change);
        this.#pending.clear();
        this.#offers += 1;
        const sdp = `${this.name} offer ${this.#offers} [${[...this.#inOffer].join(' ')}]`;
        this.pendingLocalDescription = { type, sdp };
        this.signalingState = 'have-local-offer';
        this.log.push(['setLocalDescription', type, sdp]);
      } else {
        if (this.signalingState !== 'have-remote-offer') throw invalidState(`cannot answer in ${this.signalingState}`);
        this.currentLocalDescription = { type, sdp: `${this.name} answer` };
        this.currentRemoteDescription = this.pendingRemoteDescription;
        this.pendingRemoteDescription = null;
        this.#pending.delete('data');
        this.log.push(['setLocalDescription', type]);
        this.#becomeStable();
      }
    });
  }

  setRemoteDescription(description) {
    return this.#enqueue(() => {
      if (description.type === 'rollback') return this.#rollback(true);
      if (description.sdp?.startsWith('unusable')) throw new Error('cannot apply this description');
      if (description.type === 'offer') {
        if (this.signalingState === 'have-local-offer') this.#rollback(false);
        if (this.signalingState !== 'stable' && this.signalingState !== 'have-remote-offer') {
          throw invalidState(`cannot take an offer in ${this.signalingState}`);
        }
        this.pendingRemoteDescription = description;
        this.signalingState = 'have-remote-offer';
        this.log.push(['setRemoteDescription', 'offer', description.sdp]);
      } else if (description.type === 'answer') {
        if (this.signalingState !== 'have-local-offer') throw invalidState(`answer in ${this.signalingState}`);
        this.currentRemoteDescription = description;
        this.currentLocalDescription = this.pendingLocalDescription;
        this.pendingLocalDescription = null;
        this.#inOffer.clear();
        this.log.push(['setRemoteDescription', 'answer', description.sdp]);
        this.#becomeStable();
      } else {
        throw new TypeError(`bad description type ${description.type}`);
      }
    });
  }

  addIceCandidate(...args) {
    return this.#enqueue(() => {
      if (!this.remoteDescription) throw invalidState('no remote description');
      this.log.push(['addIceCandidate', args.length === 0 ? 'end-of-candidates' : args[0]]);
    });
  }

  createDataChannel(label, init = {}) {
    const channel = Object.assign(new EventTarget(), { label, ...init });
    if (this.channels.length === 0) this.#markNeeded('data');
    this.channels.push(channel);
    return channel;
  }

  addTrack(track, ...streams) {
    this.#markNeeded(`track:${track.id}`);
    return { track, streams };
  }

  restartIce() {
    this.restartIceCalls += 1;
    this.#markNeeded('ice-restart');
  }

  close() {
    this.closed = true;
    this.signalingState = 'closed';
  }

  setConnectionState(state) {
    this.connectionState = state;
    this.dispatchEvent(new Event('connectionstatechange'));
  }

  #enqueue(operation) {
    if (this.closed) return Promise.reject(invalidState('closed'));
    this.#operations += 1;
    const result = this.#chain.then(async () => {
      await tick();
      return operation();
    });
    this.#chain = result
      .catch(() => {})
      .then(() => {
        this.#operations -= 1;
        if (this.#operations === 0 && this.#updateOnEmptyChain) {
          this.#updateOnEmptyChain = false;
          this.#updateNeeded();
        }
      });
    return result;
  }

  #rollback(explicit) {
    for (const change of this.#inOffer) this.#pending.add(change);
    this.#inOffer.clear();
    this.pendingLocalDescription = null;
    this.pendingRemoteDescription = null;
    this.signalingState = 'stable';
    this.log.push(['rollback']);
    if (explicit) this.#becomeStable();
  }

  #markNeeded(change) {
    this.#pending.add(change);
    this.#updateNeeded();
  }

  #becomeStable() {
    this.signalingState = 'stable';
    this.#needed = false;
    this.#updateNeeded();
  }

  #updateNeeded() {
    if (this.closed) return;
    if (this.#operations > 0) {
      this.#updateOnEmptyChain = true;
      return;
    }
    setTimeout(() => {
      if (this.closed) return;
      if (this.#operations > 0) {
        this.#updateOnEmptyChain = true;
        return;
      }
      if (this.signalingState !== 'stable') return;
      if (this.#pending.size === 0) {
        this.#needed = false;
        return;
      }
      if (this.#needed) return;
      this.#needed = true;
      this.dispatchEvent(new Event('negotiationneeded'));
    }, 0);
  }
}

/** Two Peers joined by a signaling server whose delivery the test controls. */
function connectPair(options = {}) {
  const toNewcomer = [];
  const toExisting = [];
  const sent = { newcomer: [], existing: [] };
  const pcs = {};
  const errors = [];
  const newcomer = new Peer({
    id: 'existing',
    polite: false,
    createConnection: (config) => (pcs.newcomer = new FakePeerConnection(config, 'newcomer')),
    sendSignal: (data) => {
      sent.newcomer.push(data);
      toExisting.push(data);
    },
    ...options,
  });
  const existing = new Peer({
    id: 'newcomer',
    polite: true,
    createConnection: (config) => (pcs.existing = new FakePeerConnection(config, 'existing')),
    sendSignal: (data) => {
      sent.existing.push(data);
      toNewcomer.push(data);
    },
    ...options,
  });
  for (const peer of [newcomer, existing]) peer.addEventListener('error', (event) => errors.push(event.error));

  const network = {
    newcomer,
    existing,
    pcs,
    sent,
    errors,
    hold: false,
    // Hand over everything in flight at once, as a burst of websocket messages would.
    deliver() {
      for (const data of toExisting.splice(0)) void existing.handleSignal(data);
      for (const data of toNewcomer.splice(0)) void newcomer.handleSignal(data);
    },
    async settle() {
      let quiet = 0;
      for (let rounds = 0; quiet < 10; rounds += 1) {
        assert.ok(rounds < 1000, 'negotiation settles');
        await tick();
        if (!network.hold && toExisting.length + toNewcomer.length > 0) {
          network.deliver();
          quiet = 0;
        } else {
          quiet += 1;
        }
      }
    },
  };
  return network;
}

const descriptions = (signals) => signals.filter((data) => 'description' in data).map((data) => data.description);

test('nothing is offered until the newcomer starts, and the existing peer only answers', async () => {
  const network = connectPair();
  const { newcomer, existing, pcs, sent } = network;
  assert.equal(newcomer.chatChannel.label, 'chat');
  assert.equal(newcomer.chatChannel.negotiated, true);
  assert.equal(newcomer.chatChannel.id, 0);

  await network.settle();
  assert.deepEqual(sent.newcomer, []);
  assert.deepEqual(sent.existing, []);

  newcomer.start();
  await network.settle();
  assert.deepEqual(descriptions(sent.newcomer).map((d) => d.type), ['offer']);
  assert.deepEqual(descriptions(sent.existing).map((d) => d.type), ['answer']);
  assert.equal(pcs.newcomer.signalingState, 'stable');
  assert.equal(pcs.existing.signalingState, 'stable');
  assert.equal(existing.connectionState, 'new');
  assert.deepEqual(network.errors, []);
});

test('the first offer goes out at once, without waiting for negotiation-needed', async () => {
  const network = connectPair();
  const { newcomer, pcs, sent } = network;
  let negotiationNeeded = 0;
  pcs.newcomer.addEventListener('negotiationneeded', () => (negotiationNeeded += 1));
  const offering = [];
  const setLocalDescription = pcs.newcomer.setLocalDescription.bind(pcs.newcomer);
  pcs.newcomer.setLocalDescription = (...args) => {
    offering.push(negotiationNeeded);
    return setLocalDescription(...args);
  };

  newcomer.start();
  assert.deepEqual(offering, [0], 'setLocalDescription was called before negotiation-needed came');
  await network.settle();
  // The event, which the chat channel set off, came to nothing: one offer, one answer.
  assert.deepEqual(descriptions(sent.newcomer).map((d) => d.type), ['offer']);
  assert.match(descriptions(sent.newcomer)[0].sdp, /\bdata\b/);
  assert.equal(pcs.newcomer.signalingState, 'stable');
  assert.equal(pcs.newcomer.hasPendingChanges, false);
  assert.deepEqual(network.errors, []);
});

test('a peer starting after negotiation-needed came offers once', async () => {
  const network = connectPair();
  const { newcomer, sent } = network;
  await network.settle();
  newcomer.start();
  newcomer.start();
  await network.settle();
  assert.deepEqual(descriptions(sent.newcomer).map((d) => d.type), ['offer']);
  assert.deepEqual(network.errors, []);
});

test('connections use the ICE servers given, and bundle everything on one transport', () => {
  const turn = { urls: ['turn:turn.example.com:3478'], username: 'u', credential: 'c' };
  const { pcs } = connectPair({ iceServers: [turn] });
  assert.deepEqual(pcs.newcomer.config, { iceServers: [turn], bundlePolicy: 'max-bundle' });
  assert.deepEqual(pcs.existing.config, { iceServers: [turn], bundlePolicy: 'max-bundle' });
});

test('the existing peer offers its own changes once the first negotiation is done', async () => {
  const network = connectPair();
  const { newcomer, existing, pcs, sent } = network;
  // The existing peer adds its camera before the newcomer's offer arrives.
  existing.addTrack({ id: 'camera' });
  newcomer.start();
  await network.settle();

  const types = descriptions(sent.existing).map((d) => d.type);
  assert.deepEqual(types, ['answer', 'offer']);
  assert.match(descriptions(sent.existing)[1].sdp, /track:camera/);
  assert.equal(pcs.existing.hasPendingChanges, false);
  assert.equal(pcs.newcomer.signalingState, 'stable');
  assert.deepEqual(network.errors, []);
});

test('glare: the polite peer rolls back and answers, the impolite one ignores the colliding offer', async () => {
  const network = connectPair();
  const { newcomer, existing, pcs } = network;
  newcomer.start();
  await network.settle();

  network.hold = true;
  newcomer.addTrack({ id: 'newcomer-screen' });
  existing.addTrack({ id: 'existing-screen' });
  const bothOffering = () =>
    pcs.newcomer.signalingState === 'have-local-offer' && pcs.existing.signalingState === 'have-local-offer';
  for (let i = 0; i < 50 && !bothOffering(); i += 1) await tick();
  assert.ok(bothOffering(), 'both sides made an offer');
  const collidingOffer = pcs.existing.localDescription.sdp;
  const newcomerOffer = pcs.newcomer.localDescription.sdp;
  network.hold = false;
  network.deliver();
  await network.settle();

  const newcomerTook = pcs.newcomer.log.filter(([op]) => op === 'setRemoteDescription').map(([, , sdp]) => sdp);
  assert.ok(!newcomerTook.includes(collidingOffer), 'the impolite side ignored the colliding offer');
  assert.ok(!pcs.newcomer.log.some(([op]) => op === 'rollback'));

  const existingLog = pcs.existing.log.map(([op, type, sdp]) => [op, type, sdp]);
  const rollbackAt = existingLog.findIndex(([op]) => op === 'rollback');
  assert.ok(rollbackAt > 0, 'the polite side rolled back its offer');
  assert.deepEqual(existingLog[rollbackAt + 1], ['setRemoteDescription', 'offer', newcomerOffer]);
  assert.deepEqual(existingLog[rollbackAt + 2], ['setLocalDescription', 'answer', undefined]);

  // The polite side's change was not lost: it offered it again afterwards.
  assert.ok(newcomerTook.some((sdp) => sdp !== collidingOffer && /track:existing-screen/.test(sdp)));
  assert.equal(pcs.newcomer.signalingState, 'stable');
  assert.equal(pcs.existing.signalingState, 'stable');
  assert.equal(pcs.newcomer.hasPendingChanges, false);
  assert.equal(pcs.existing.hasPendingChanges, false);
  assert.deepEqual(network.errors, []);
});

test('candidates received before the remote description are applied after it, in order', async () => {
  const sent = [];
  let pc;
  const peer = new Peer({
    id: 'newcomer',
    polite: true,
    createConnection: (config) => (pc = new FakePeerConnection(config, 'existing')),
    sendSignal: (data) => sent.push(data),
  });
  const errors = [];
  peer.addEventListener('error', (event) => errors.push(event.error));
  const first = { candidate: 'candidate:1 1 udp 1 192.0.2.1 5000 typ host', sdpMid: '0' };
  const second = { candidate: 'candidate:2 1 udp 1 192.0.2.2 5000 typ host', sdpMid: '0' };
  const late = { candidate: 'candidate:3 1 udp 1 192.0.2.3 5000 typ host', sdpMid: '0' };

  await peer.handleSignal({ candidate: first });
  await peer.handleSignal({ candidate: second });
  await peer.handleSignal({ candidate: null });
  assert.deepEqual(pc.log, []);

  const offer = { type: 'offer', sdp: 'newcomer offer 1 [data]' };
  const described = peer.handleSignal({ description: offer });
  const afterwards = peer.handleSignal({ candidate: late });
  await Promise.all([described, afterwards]);

  assert.deepEqual(pc.log, [
    ['setRemoteDescription', 'offer', offer.sdp],
    ['addIceCandidate', first],
    ['addIceCandidate', second],
    ['addIceCandidate', 'end-of-candidates'],
    ['addIceCandidate', late],
    ['setLocalDescription', 'answer'],
  ]);
  assert.deepEqual(descriptions(sent).map((d) => d.type), ['answer']);
  assert.deepEqual(errors, []);
});

test('local candidates are signalled as JSON, and null as end of candidates', () => {
  const sent = [];
  let pc;
  new Peer({
    id: 'remote',
    polite: false,
    createConnection: (config) => (pc = new FakePeerConnection(config, 'local')),
    sendSignal: (data) => sent.push(data),
  });
  const json = { candidate: 'candidate:1 1 udp 1 192.0.2.1 5000 typ host', sdpMid: '0', sdpMLineIndex: 0 };
  pc.dispatchEvent(new FakeEvent('icecandidate', { candidate: { toJSON: () => json } }));
  pc.dispatchEvent(new FakeEvent('icecandidate', { candidate: null }));
  assert.deepEqual(sent, [{ candidate: json }, { candidate: null }]);
});

test('remote tracks and channels are re-dispatched', () => {
  let pc;
  const peer = new Peer({
    id: 'remote',
    polite: false,
    createConnection: (config) => (pc = new FakePeerConnection(config, 'local')),
    sendSignal: () => {},
  });
  const seen = [];
  peer.addEventListener('track', (event) => seen.push(['track', event.track, event.streams]));
  peer.addEventListener('datachannel', (event) => seen.push(['datachannel', event.channel]));
  const track = { id: 'audio' };
  const streams = [{ id: 'stream' }];
  const channel = { label: 'file:1234' };
  pc.dispatchEvent(new FakeEvent('track', { track, streams }));
  pc.dispatchEvent(new FakeEvent('datachannel', { channel }));
  assert.deepEqual(seen, [
    ['track', track, streams],
    ['datachannel', channel],
  ]);
});

function fakeTimers() {
  const timers = [];
  return {
    timers,
    setTimeout: (callback, ms) => timers.push({ callback, ms, cleared: false }) - 1,
    clearTimeout: (handle) => {
      timers[handle].cleared = true;
    },
  };
}

function failingPeer(timers) {
  let pc;
  const peer = new Peer({
    id: 'remote',
    polite: true,
    createConnection: (config) => (pc = new FakePeerConnection(config, 'local')),
    sendSignal: () => {},
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
  });
  const rebuilds = [];
  peer.addEventListener('rebuild', (event) => rebuilds.push(event.reason));
  return { peer, pc, rebuilds };
}

test('a failed connection restarts ICE, then asks for a rebuild when that does not help', () => {
  const timers = fakeTimers();
  const { pc, rebuilds } = failingPeer(timers);
  pc.setConnectionState('connected');
  pc.setConnectionState('failed');
  pc.iceConnectionState = 'failed';
  pc.dispatchEvent(new Event('iceconnectionstatechange'));

  assert.equal(pc.restartIceCalls, 1);
  assert.equal(timers.timers.length, 1);
  assert.equal(timers.timers[0].ms, 10_000);
  assert.deepEqual(rebuilds, []);

  timers.timers[0].callback();
  assert.deepEqual(rebuilds, ['timeout']);
});

test('a connection that recovers from the ICE restart is not rebuilt', () => {
  const timers = fakeTimers();
  const { pc, rebuilds } = failingPeer(timers);
  pc.setConnectionState('failed');
  assert.equal(pc.restartIceCalls, 1);
  pc.setConnectionState('connected');
  assert.equal(timers.timers[0].cleared, true);

  // A later failure gets its own restart.
  pc.setConnectionState('failed');
  assert.equal(pc.restartIceCalls, 2);
  pc.setConnectionState('connected');
  assert.deepEqual(rebuilds, []);
});

test('a closed peer neither restarts nor rebuilds', () => {
  const timers = fakeTimers();
  const { peer, pc, rebuilds } = failingPeer(timers);
  pc.setConnectionState('failed');
  peer.close();
  assert.equal(timers.timers[0].cleared, true);
  assert.equal(pc.closed, true);
  pc.setConnectionState('failed');
  assert.equal(pc.restartIceCalls, 1);
  assert.deepEqual(rebuilds, []);
});

test('an offer this connection cannot apply asks for a rebuild and hands the offer on', async () => {
  const network = connectPair();
  const { newcomer, existing } = network;
  newcomer.start();
  await network.settle();
  const events = [];
  existing.addEventListener('rebuild', (event) => events.push(event));

  const data = { description: { type: 'offer', sdp: 'unusable offer from a new connection' } };
  await existing.handleSignal(data);
  assert.equal(events.length, 1);
  assert.equal(events[0].reason, 'remote-offer-rejected');
  assert.equal(events[0].signal, data);
});

test('summarizeStats reads the selected pair of a Chromium report', () => {
  const report = new Map(
    [
      { id: 'T1', type: 'transport', selectedCandidatePairId: 'CP2' },
      { id: 'CP1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1', currentRoundTripTime: 0.5 },
      { id: 'CP2', type: 'candidate-pair', localCandidateId: 'L2', remoteCandidateId: 'R1', currentRoundTripTime: 0.042 },
      { id: 'L1', type: 'local-candidate', candidateType: 'host' },
      { id: 'L2', type: 'local-candidate', candidateType: 'relay' },
      { id: 'R1', type: 'remote-candidate', candidateType: 'srflx' },
      { id: 'IA', type: 'inbound-rtp', kind: 'audio', packetsLost: 5, packetsReceived: 95, audioLevel: 0.25 },
      { id: 'IV', type: 'inbound-rtp', kind: 'video', packetsLost: -1, packetsReceived: 100 },
      { id: 'RIA', type: 'remote-inbound-rtp', packetsLost: 50 },
    ].map((stat) => [stat.id, stat]),
  );
  assert.deepEqual(summarizeStats(report), { roundTripTimeMs: 42, packetLoss: 5 / 200, relayed: true, audioLevel: 0.25 });
});

test('summarizeStats falls back to the flagged pair when there are no transport stats', () => {
  const report = new Map(
    [
      { id: 'CP1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1', selected: false, currentRoundTripTime: 0.3 },
      { id: 'CP2', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R2', selected: true, currentRoundTripTime: 0.0205 },
      { id: 'L1', type: 'local-candidate', candidateType: 'host' },
      { id: 'R1', type: 'remote-candidate', candidateType: 'relay' },
      { id: 'R2', type: 'remote-candidate', candidateType: 'srflx' },
    ].map((stat) => [stat.id, stat]),
  );
  assert.deepEqual(summarizeStats(report), { roundTripTimeMs: 21, packetLoss: null, relayed: false, audioLevel: null });
});

test('summarizeStats of an empty report knows nothing', () => {
  assert.deepEqual(summarizeStats(new Map()), { roundTripTimeMs: null, packetLoss: null, relayed: null, audioLevel: null });
});
