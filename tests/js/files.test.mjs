import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';

import {
  CHUNK_SIZE,
  FileReceiver,
  FileSender,
  HIGH_WATER_MARK,
  chunkRanges,
  fileChannelLabel,
  fileTransferId,
  parseFileOffer,
  readChunks,
  sanitizeFileName,
  sha256Hex,
} from '../../static/js/files.js';

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

class FakeMessageEvent extends Event {
  constructor(data) {
    super('message');
    this.data = data;
  }
}

/**
 * One end of an RTCDataChannel. Sent messages wait in `outbox`, counted in
 * bufferedAmount, until drained to the other end: one per task when
 * `autoDrain` is on, otherwise when the test calls drain(); `tamper` may
 * change them on the way. Closing delivers
 * what is still queued first, as the spec's closing procedure does.
 */
class FakeChannel extends EventTarget {
  readyState = 'connecting';
  bufferedAmount = 0;
  bufferedAmountLowThreshold = 0;
  binaryType = 'blob';
  /** Every message passed to send(), as given. */
  sent = [];
  outbox = [];
  remote = null;

  constructor(label, { autoDrain, tamper }) {
    super();
    this.label = label;
    this.autoDrain = autoDrain;
    this.tamper = tamper;
  }

  send(data) {
    if (this.readyState !== 'open') throw Object.assign(new Error('not open'), { name: 'InvalidStateError' });
    let message;
    if (typeof data === 'string') {
      message = data;
    } else {
      assert.ok(data instanceof ArrayBuffer, 'binary messages are ArrayBuffers');
      message = data.slice(0);
    }
    const bytes = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    this.sent.push(data);
    this.outbox.push({ message, bytes });
    this.bufferedAmount += bytes;
    if (this.autoDrain) setTimeout(() => this.drain(1), 0);
  }

  drain(count = Infinity) {
    for (let i = 0; i < count && this.outbox.length > 0; i += 1) {
      const { message, bytes } = this.outbox.shift();
      const before = this.bufferedAmount;
      this.bufferedAmount -= bytes;
      if (this.remote.readyState !== 'closed') {
        this.remote.dispatchEvent(new FakeMessageEvent(this.tamper ? this.tamper(message) : message));
      }
      if (before > this.bufferedAmountLowThreshold && this.bufferedAmount <= this.bufferedAmountLowThreshold) {
        this.dispatchEvent(new Event('bufferedamountlow'));
      }
    }
  }

  close() {
    if (this.readyState === 'closing' || this.readyState === 'closed') return;
    this.readyState = 'closing';
    setTimeout(() => {
      this.drain();
      for (const end of [this, this.remote]) {
        if (end.readyState === 'closed') continue;
        end.readyState = 'closed';
        end.dispatchEvent(new Event('close'));
      }
    }, 0);
  }
}

function channelPair({ autoDrain = true, tamper } = {}) {
  const label = fileChannelLabel();
  const local = new FakeChannel(label, { autoDrain, tamper });
  const remote = new FakeChannel(label, { autoDrain });
  local.remote = remote;
  remote.remote = local;
  setTimeout(() => {
    for (const end of [local, remote]) {
      end.readyState = 'open';
      end.dispatchEvent(new Event('open'));
    }
  }, 0);
  return [local, remote];
}

/** Record every event a transfer fires, by type. */
function record(transfer) {
  const events = { progress: [], offer: [], complete: [], cancel: [], error: [] };
  for (const [type, list] of Object.entries(events)) transfer.addEventListener(type, (event) => list.push(event));
  return events;
}

const binaryMessages = (channel) => channel.sent.filter((message) => typeof message !== 'string');

async function pumpUntil(promise, channels) {
  let settled = false;
  void promise.finally(() => {
    settled = true;
  });
  for (let i = 0; i < 10_000 && !settled; i += 1) {
    for (const channel of channels) channel.drain();
    await tick();
  }
  assert.ok(settled, 'the transfer finished');
  return promise;
}

test('a 1 MiB file arrives whole, in chunks of at most 16 KiB, with matching SHA-256', async () => {
  const bytes = randomBytes(1024 * 1024);
  const [local, remote] = channelPair();
  const receiver = new FileReceiver(remote);
  const sender = new FileSender(local, new Blob([bytes]), { name: 'random.bin', mime: 'application/x-test' });
  const sent = record(sender);
  const received = record(receiver);

  assert.equal(await sender.send(), true);

  assert.equal(remote.binaryType, 'arraybuffer');
  const chunks = binaryMessages(local);
  assert.equal(chunks.length, 64);
  assert.ok(chunks.every((chunk) => chunk.byteLength <= CHUNK_SIZE));

  assert.equal(received.offer.length, 1);
  const { offer } = received.offer[0];
  assert.equal(offer.id, fileTransferId(local.label));
  assert.equal(offer.name, 'random.bin');
  assert.equal(offer.size, bytes.length);
  assert.equal(offer.sha256, sha256(bytes));

  assert.equal(received.complete.length, 1);
  const { blob, verified } = received.complete[0];
  assert.equal(verified, true);
  assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), sha256(bytes));

  for (const progress of [sent.progress, received.progress]) {
    assert.equal(progress.at(-1).bytes, bytes.length);
    assert.equal(progress.at(-1).size, bytes.length);
    assert.ok(progress.every((event, i) => i === 0 || event.bytes > progress[i - 1].bytes));
  }
  assert.equal(sent.complete.length, 1);
  assert.deepEqual([sent.error, sent.cancel, received.error, received.cancel], [[], [], [], []]);
  assert.equal(local.readyState, 'closed');
});

test('the sender stops above the high-water mark until bufferedamountlow', async () => {
  const bytes = randomBytes(3 * 1024 * 1024);
  const [local, remote] = channelPair({ autoDrain: false });
  const receiver = new FileReceiver(remote);
  const sender = new FileSender(local, bytes, { name: 'big.bin' });
  const received = record(receiver);
  const sending = sender.send();

  for (let i = 0; i < 20; i += 1) await tick();
  // The offer's few bytes on top of 64 chunks put it just over 1 MiB.
  assert.equal(binaryMessages(local).length, 64);
  assert.ok(local.bufferedAmount > HIGH_WATER_MARK);
  assert.equal(local.bufferedAmountLowThreshold, 256 * 1024);

  local.drain(40); // 25 chunks still buffered: 400 KiB, above the low-water mark
  for (let i = 0; i < 20; i += 1) await tick();
  assert.equal(binaryMessages(local).length, 64);

  local.drain(10); // 15 chunks buffered: 240 KiB, so bufferedamountlow fires
  for (let i = 0; i < 20; i += 1) await tick();
  assert.ok(binaryMessages(local).length > 64);
  assert.ok(local.bufferedAmount <= HIGH_WATER_MARK + CHUNK_SIZE);

  assert.equal(await pumpUntil(sending, [local, remote]), true);
  assert.equal(received.complete.length, 1);
  assert.equal(sha256(Buffer.from(await received.complete[0].blob.arrayBuffer())), sha256(bytes));
});

test('a tampered chunk fails verification and no file is offered', async () => {
  const bytes = randomBytes(100_000);
  let binaryCount = 0;
  const tamper = (message) => {
    if (typeof message === 'string' || ++binaryCount !== 3) return message;
    const copy = new Uint8Array(message);
    copy[100] ^= 0xff;
    return copy.buffer;
  };
  const [local, remote] = channelPair({ tamper });
  const receiver = new FileReceiver(remote);
  const sender = new FileSender(local, bytes, { name: 'data.bin' });
  const sent = record(sender);
  const received = record(receiver);

  assert.equal(await sender.send(), false);
  assert.equal(received.complete.length, 0);
  assert.deepEqual(
    received.error.map((event) => event.reason),
    ['checksum'],
  );
  // The receiver's file-cancel is how the sender learns it failed.
  assert.deepEqual(
    sent.cancel.map((event) => event.byRemote),
    [true],
  );
  assert.equal(sent.complete.length, 0);
});

test('the receiver can cancel mid-transfer', async () => {
  const [local, remote] = channelPair({ autoDrain: false });
  const receiver = new FileReceiver(remote);
  const sender = new FileSender(local, randomBytes(2 * 1024 * 1024), { name: 'a.bin' });
  const sent = record(sender);
  const received = record(receiver);
  const sending = sender.send();
  for (let i = 0; i < 20; i += 1) await tick();
  local.drain(5);
  assert.equal(received.progress.length, 4);

  receiver.cancel();
  assert.equal(await pumpUntil(sending, [local, remote]), false);
  const chunksSent = binaryMessages(local).length;
  assert.ok(chunksSent < 128, 'the sender stopped before the end');
  assert.deepEqual(
    sent.cancel.map((event) => event.byRemote),
    [true],
  );
  assert.deepEqual(
    received.cancel.map((event) => event.byRemote),
    [false],
  );
  assert.deepEqual([sent.complete, sent.error, received.complete, received.error], [[], [], [], []]);
  assert.equal(local.readyState, 'closed');
  assert.equal(remote.readyState, 'closed');
  for (let i = 0; i < 20; i += 1) await tick();
  assert.equal(binaryMessages(local).length, chunksSent);
});

test('the sender can cancel mid-transfer', async () => {
  const [local, remote] = channelPair({ autoDrain: false });
  const receiver = new FileReceiver(remote);
  const sender = new FileSender(local, randomBytes(2 * 1024 * 1024), { name: 'a.bin' });
  const sent = record(sender);
  const received = record(receiver);
  const sending = sender.send();
  for (let i = 0; i < 20; i += 1) await tick();
  local.drain(5);

  sender.cancel();
  assert.equal(await pumpUntil(sending, [local, remote]), false);
  const chunksSent = binaryMessages(local).length;
  assert.ok(chunksSent < 128);
  assert.deepEqual(
    sent.cancel.map((event) => event.byRemote),
    [false],
  );
  assert.deepEqual(
    received.cancel.map((event) => event.byRemote),
    [true],
  );
  assert.deepEqual([sent.complete, sent.error, received.complete, received.error], [[], [], [], []]);
  assert.equal(local.readyState, 'closed');
  assert.equal(remote.readyState, 'closed');
});

test('a channel closed before file-end is an error on both sides', async () => {
  const [local, remote] = channelPair({ autoDrain: false });
  const receiver = new FileReceiver(remote);
  const sender = new FileSender(local, randomBytes(3 * 1024 * 1024), { name: 'a.bin' });
  const sent = record(sender);
  const received = record(receiver);
  const sending = sender.send();
  for (let i = 0; i < 20; i += 1) await tick();
  // Lose what is in flight, then the connection.
  local.outbox.length = 0;
  local.bufferedAmount = 0;
  remote.close();
  assert.equal(await pumpUntil(sending, [local, remote]), false);
  assert.deepEqual(
    sent.error.map((event) => event.reason),
    ['closed'],
  );
  assert.deepEqual(
    received.error.map((event) => event.reason),
    ['closed'],
  );
});

function offerFor(channel, fields = {}) {
  return {
    type: 'file-offer',
    id: fileTransferId(channel.label),
    name: 'report.pdf',
    size: 10,
    mime: 'application/pdf',
    sha256: sha256(Buffer.alloc(10)),
    chunkSize: CHUNK_SIZE,
    ...fields,
  };
}

async function receiverFailure(messages, options) {
  const [local, remote] = channelPair();
  await tick();
  const receiver = new FileReceiver(remote, options);
  const received = record(receiver);
  for (const message of messages(remote)) {
    remote.dispatchEvent(new FakeMessageEvent(typeof message === 'string' ? message : message.buffer));
  }
  for (let i = 0; i < 5; i += 1) await tick();
  // A receiver that gives up tells the sender.
  assert.deepEqual(remote.sent, [JSON.stringify({ type: 'file-cancel', id: fileTransferId(remote.label) })]);
  assert.equal(local.readyState, 'closed');
  assert.equal(remote.readyState, 'closed');
  assert.equal(received.complete.length, 0);
  return received.error.map((event) => event.reason);
}

test('the receiver refuses offers that break the protocol', async () => {
  const bad = [
    { size: 11 * 1024 },
    { size: -1 },
    { size: 1.5 },
    { sha256: 'ABC' },
    { sha256: 'A'.repeat(64) },
    { chunkSize: 65_536 },
    { name: 42 },
    { id: 'someone-else' },
  ];
  for (const fields of bad) {
    const reasons = await receiverFailure((channel) => [JSON.stringify(offerFor(channel, fields))], {
      maxSize: 10 * 1024,
    });
    assert.deepEqual(reasons, ['invalid-offer'], JSON.stringify(fields));
  }
  assert.deepEqual(await receiverFailure(() => ['not json']), ['invalid-offer']);
  assert.deepEqual(await receiverFailure(() => [new Uint8Array(10)]), ['protocol']);
});

test('the receiver refuses more bytes than offered, and chunks above chunkSize', async () => {
  const tooMany = (channel) => [JSON.stringify(offerFor(channel)), new Uint8Array(8), new Uint8Array(8)];
  assert.deepEqual(await receiverFailure(tooMany), ['size']);
  const tooBig = (channel) => [JSON.stringify(offerFor(channel, { size: 100, chunkSize: 10 })), new Uint8Array(11)];
  assert.deepEqual(await receiverFailure(tooBig), ['size']);
  const tooFew = (channel) => [
    JSON.stringify(offerFor(channel)),
    new Uint8Array(9),
    JSON.stringify({ type: 'file-end', id: fileTransferId(channel.label) }),
  ];
  assert.deepEqual(await receiverFailure(tooFew), ['size']);
});

test('an empty file goes through', async () => {
  const [local, remote] = channelPair();
  const receiver = new FileReceiver(remote);
  const received = record(receiver);
  assert.equal(await new FileSender(local, new ArrayBuffer(0), { name: 'empty' }).send(), true);
  assert.equal(received.complete[0].blob.size, 0);
});

test('offer fields are made safe to show', () => {
  const offer = parseFileOffer({
    type: 'file-offer',
    id: 'abc',
    name: '../../etc/photo\u202egpj.exe\u0000 ',
    size: 1,
    mime: 'Text/HTML',
    sha256: 'a'.repeat(64),
    chunkSize: 16_384,
  });
  assert.equal(offer.name, '_.._etc_photogpj.exe');
  assert.equal(offer.mime, 'text/html');
  assert.equal(parseFileOffer({ ...offer, mime: 'text/html; charset=utf-8<script>' }).mime, 'application/octet-stream');
  assert.equal(sanitizeFileName('...'), 'download');
  assert.equal(sanitizeFileName('a'.repeat(500)).length, 200);
  assert.equal(parseFileOffer(null), null);
  assert.equal(parseFileOffer({ ...offer, type: 'file-end' }), null);
});

test('channel labels carry the transfer id', () => {
  const label = fileChannelLabel('0f8fad5b-d9cb-469f-a165-70867728950e');
  assert.equal(label, 'file:0f8fad5b-d9cb-469f-a165-70867728950e');
  assert.equal(fileTransferId(label), '0f8fad5b-d9cb-469f-a165-70867728950e');
  assert.equal(fileTransferId('chat'), null);
  assert.equal(fileTransferId('file:../x'), null);
  assert.match(fileTransferId(fileChannelLabel()), /^[0-9a-f-]{36}$/);
});

test('chunk helpers cover the data exactly', async () => {
  assert.deepEqual([...chunkRanges(40_000)], [
    [0, 16_384],
    [16_384, 32_768],
    [32_768, 40_000],
  ]);
  assert.deepEqual([...chunkRanges(0)], []);
  assert.throws(() => [...chunkRanges(10, 0)], RangeError);

  const bytes = randomBytes(3 * 1024 * 1024 + 5);
  for (const source of [bytes, new Blob([bytes])]) {
    const chunks = [];
    for await (const chunk of readChunks(source)) chunks.push(Buffer.from(chunk));
    assert.ok(chunks.every((chunk) => chunk.length <= CHUNK_SIZE));
    assert.equal(chunks.at(-1).length, 5);
    assert.ok(Buffer.concat(chunks).equals(bytes));
  }
  assert.equal(await sha256Hex(bytes), sha256(bytes));
  assert.equal(await sha256Hex(new Blob([bytes])), sha256(bytes));
});
