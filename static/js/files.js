// @ts-check
/**
 * File transfer over one RTCDataChannel per file, labelled `file:<transfer id>`
 * (protocol in docs/signaling.md): a `file-offer` text message, binary chunks
 * of at most `chunkSize` bytes in order, then `file-end`; either side may send
 * `file-cancel` and close. The receiver closes the channel once it has the
 * verified file, which is how the sender learns the transfer is complete.
 *
 * FileSender and FileReceiver events: `progress` (FileProgressEvent),
 * `complete`, `cancel` (FileCancelEvent), `error` (FileErrorEvent); the
 * receiver also fires `offer` (FileOfferEvent) and its `complete` is a
 * FileCompleteEvent carrying the verified Blob.
 */

/**
 * @typedef {EventTarget & {
 *   label: string,
 *   readyState: string,
 *   bufferedAmount: number,
 *   bufferedAmountLowThreshold: number,
 *   binaryType: string,
 *   send(data: string | ArrayBuffer): void,
 *   close(): void,
 * }} DataChannelLike
 */

/**
 * @typedef {object} FileOffer
 * @property {'file-offer'} type
 * @property {string} id
 * @property {string} name sanitised, safe to show and to use as a download name
 * @property {number} size bytes
 * @property {string} mime as claimed by the sender, for display only
 * @property {string} sha256 lowercase hex
 * @property {number} chunkSize
 */

/** @typedef {Blob | BufferSource} FileData */

export const CHUNK_SIZE = 16_384;
export const MAX_FILE_SIZE = 2 * 1024 ** 3;
export const HIGH_WATER_MARK = 1024 * 1024;
export const LOW_WATER_MARK = 256 * 1024;
const LABEL_PREFIX = 'file:';
const ID_PATTERN = /^[A-Za-z0-9-]{1,64}$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
const MIME_PATTERN = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;
const MAX_NAME_LENGTH = 200;

export class FileProgressEvent extends Event {
  /**
   * @param {number} bytes sent to the channel, or received from it
   * @param {number} size
   */
  constructor(bytes, size) {
    super('progress');
    this.bytes = bytes;
    this.size = size;
  }
}

export class FileOfferEvent extends Event {
  /** @param {FileOffer} offer */
  constructor(offer) {
    super('offer');
    this.offer = offer;
  }
}

export class FileCompleteEvent extends Event {
  /**
   * @param {Blob} blob
   * @param {FileOffer} offer
   */
  constructor(blob, offer) {
    super('complete');
    this.blob = blob;
    this.offer = offer;
    // Fired only after the size and SHA-256 matched the offer.
    this.verified = true;
  }
}

export class FileCancelEvent extends Event {
  /** @param {boolean} byRemote */
  constructor(byRemote) {
    super('cancel');
    this.byRemote = byRemote;
  }
}

export class FileErrorEvent extends Event {
  /**
   * @param {'protocol' | 'invalid-offer' | 'size' | 'checksum' | 'closed' | 'failed'} reason
   * @param {unknown} [cause]
   */
  constructor(reason, cause) {
    super('error');
    this.reason = reason;
    this.cause = cause;
  }
}

/** Return the data channel label for a new transfer. */
export function fileChannelLabel(id = crypto.randomUUID()) {
  return LABEL_PREFIX + id;
}

/**
 * Return the transfer id of a `file:<id>` channel label, or null for any other channel.
 *
 * @param {string} label
 */
export function fileTransferId(label) {
  if (!label.startsWith(LABEL_PREFIX)) return null;
  const id = label.slice(LABEL_PREFIX.length);
  return ID_PATTERN.test(id) ? id : null;
}

/**
 * Return the SHA-256 of the data as lowercase hex.
 *
 * WebCrypto has no incremental digest, so the whole file is read into memory.
 *
 * @param {FileData} data
 */
export async function sha256Hex(data) {
  const bytes = data instanceof Blob ? await data.arrayBuffer() : data;
  const digest = await crypto.subtle.digest('SHA-256', bytes);
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/**
 * Yield `[start, end)` byte ranges that cover `size` bytes in order.
 *
 * @param {number} size
 * @param {number} [chunkSize]
 * @returns {Generator<[number, number]>}
 */
export function* chunkRanges(size, chunkSize = CHUNK_SIZE) {
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new RangeError('chunkSize must be a positive integer');
  for (let start = 0; start < size; start += chunkSize) {
    yield [start, Math.min(size, start + chunkSize)];
  }
}

/**
 * Yield the data as ArrayBuffers of at most `chunkSize` bytes.
 *
 * @param {FileData} data
 * @param {number} [chunkSize]
 * @returns {AsyncGenerator<ArrayBuffer>}
 */
export async function* readChunks(data, chunkSize = CHUNK_SIZE) {
  if (!(data instanceof Blob)) {
    const bytes = toBytes(data);
    for (const [start, end] of chunkRanges(bytes.byteLength, chunkSize)) yield bytes.slice(start, end).buffer;
    return;
  }
  // Each Blob read is an asynchronous round trip, so read many chunks at a time.
  const windowSize = chunkSize * 64;
  for (const [windowStart, windowEnd] of chunkRanges(data.size, windowSize)) {
    const window = new Uint8Array(await data.slice(windowStart, windowEnd).arrayBuffer());
    for (const [start, end] of chunkRanges(window.byteLength, chunkSize)) yield window.slice(start, end).buffer;
  }
}

/**
 * Return a file name that is plain text: no path, no control or bidi characters.
 *
 * @param {string} name
 */
export function sanitizeFileName(name) {
  const clean = name
    .normalize('NFC')
    // Bidi overrides let "photo\u202Egpj.exe" display as "photoexe.jpg".
    .replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '')
    .replace(/[/\\:*?"<>|]/g, '_')
    // Leading dots hide the file or climb directories; Windows drops trailing ones.
    .replace(/^[\s.]+|[\s.]+$/g, '');
  return Array.from(clean).slice(0, MAX_NAME_LENGTH).join('') || 'download';
}

/**
 * Return the offer with its name and mime made safe, or null if it breaks the protocol.
 *
 * @param {unknown} message parsed JSON
 * @param {number} [maxSize]
 * @returns {FileOffer | null}
 */
export function parseFileOffer(message, maxSize = MAX_FILE_SIZE) {
  if (typeof message !== 'object' || message === null) return null;
  const { type, id, name, size, mime, sha256, chunkSize } = /** @type {Record<string, unknown>} */ (message);
  if (type !== 'file-offer') return null;
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) return null;
  if (typeof name !== 'string' || typeof mime !== 'string') return null;
  if (!isIntegerBetween(size, 0, maxSize) || !isIntegerBetween(chunkSize, 1, CHUNK_SIZE)) return null;
  if (typeof sha256 !== 'string' || !SHA256_PATTERN.test(sha256)) return null;
  const lowerMime = mime.toLowerCase();
  return {
    type: 'file-offer',
    id,
    name: sanitizeFileName(name),
    size,
    mime: MIME_PATTERN.test(lowerMime) ? lowerMime : 'application/octet-stream',
    sha256,
    chunkSize,
  };
}

/**
 * @param {unknown} value
 * @param {number} min
 * @param {number} max
 * @returns {value is number}
 */
function isIntegerBetween(value, min, max) {
  return Number.isSafeInteger(value) && /** @type {number} */ (value) >= min && /** @type {number} */ (value) <= max;
}

/**
 * Base of sender and receiver: one transfer on one channel, ended exactly once.
 */
class Transfer extends EventTarget {
  channel;
  id;
  #ended = false;
  /** @type {(reason: Error) => void} */
  #stop = () => {};
  #stopped;

  /** @param {DataChannelLike} channel */
  constructor(channel) {
    super();
    const id = fileTransferId(channel.label);
    if (id === null) throw new TypeError(`not a file channel: ${channel.label}`);
    this.channel = channel;
    this.id = id;
    this.#stopped = new Promise((_, reject) => {
      this.#stop = reject;
    });
    this.#stopped.catch(() => {});
  }

  get ended() {
    return this.#ended;
  }

  /** Stop the transfer and tell the other side. */
  cancel() {
    if (this.end(new FileCancelEvent(false))) this.sendCancelAndClose();
  }

  /**
   * Wait for `promise`, unless the transfer ends first.
   *
   * @protected
   * @template T
   * @param {Promise<T>} promise
   * @returns {Promise<T>}
   */
  until(promise) {
    return Promise.race([promise, this.#stopped]);
  }

  /**
   * Mark the transfer ended and fire `event`; return false if it had already ended.
   *
   * @protected
   * @param {Event} event
   */
  end(event) {
    if (this.#ended) return false;
    this.#ended = true;
    this.#stop(new Error(`transfer ended: ${event.type}`));
    this.dispatchEvent(event);
    return true;
  }

  /** @protected */
  sendCancelAndClose() {
    if (this.channel.readyState === 'open') {
      this.channel.send(JSON.stringify({ type: 'file-cancel', id: this.id }));
    }
    this.channel.close();
  }

  /**
   * Whether `message` is a control message of this type for this transfer.
   *
   * @protected
   * @param {unknown} message parsed JSON
   * @param {'file-end' | 'file-cancel'} type
   */
  isMessage(message, type) {
    if (typeof message !== 'object' || message === null) return false;
    const fields = /** @type {Record<string, unknown>} */ (message);
    return fields.type === type && fields.id === this.id;
  }
}

/**
 * @typedef {object} FileSenderOptions
 * @property {string} name
 * @property {string} [mime]
 * @property {number} [chunkSize]
 * @property {number} [highWaterMark] stop sending while more than this many bytes are buffered
 * @property {number} [lowWaterMark] resume when the buffer has drained to this
 */

export class FileSender extends Transfer {
  #data;
  #size;
  #name;
  #mime;
  #chunkSize;
  #highWaterMark;
  #started = false;
  #endSent = false;

  /**
   * @param {DataChannelLike} channel a channel labelled by fileChannelLabel()
   * @param {FileData} data
   * @param {FileSenderOptions} options
   */
  constructor(
    channel,
    data,
    { name, mime = '', chunkSize = CHUNK_SIZE, highWaterMark = HIGH_WATER_MARK, lowWaterMark = LOW_WATER_MARK },
  ) {
    super(channel);
    this.#data = data;
    this.#size = data instanceof Blob ? data.size : data.byteLength;
    this.#name = name;
    this.#mime = mime;
    this.#chunkSize = chunkSize;
    this.#highWaterMark = highWaterMark;
    channel.bufferedAmountLowThreshold = lowWaterMark;
    channel.addEventListener('message', (event) => {
      const { data: message } = /** @type {MessageEvent} */ (event);
      if (typeof message === 'string' && this.isMessage(parseJson(message), 'file-cancel')) {
        if (this.end(new FileCancelEvent(true))) channel.close();
      }
    });
    channel.addEventListener('close', () => {
      this.end(this.#endSent ? new Event('complete') : new FileErrorEvent('closed'));
    });
  }

  get size() {
    return this.#size;
  }

  /**
   * Send the file, once. Resolve true when the receiver has verified it and
   * closed the channel, false if the transfer was cancelled or failed (the
   * events say which) or send() was already called.
   *
   * @returns {Promise<boolean>}
   */
  async send() {
    if (this.ended || this.#started) return false;
    this.#started = true;
    const channel = this.channel;
    /** @type {Promise<boolean>} */
    const finished = new Promise((resolve) => {
      for (const type of ['complete', 'cancel', 'error']) {
        this.addEventListener(type, () => resolve(type === 'complete'), { once: true });
      }
    });
    try {
      const [sha256] = await this.until(Promise.all([sha256Hex(this.#data), opened(channel)]));
      channel.send(
        JSON.stringify({
          type: 'file-offer',
          id: this.id,
          name: this.#name,
          size: this.#size,
          mime: this.#mime,
          sha256,
          chunkSize: this.#chunkSize,
        }),
      );
      let sent = 0;
      for await (const chunk of readChunks(this.#data, this.#chunkSize)) {
        if (channel.bufferedAmount > this.#highWaterMark) {
          await this.until(nextEvent(channel, 'bufferedamountlow'));
        }
        if (this.ended) break;
        channel.send(chunk);
        sent += chunk.byteLength;
        this.dispatchEvent(new FileProgressEvent(sent, this.#size));
      }
      if (!this.ended) {
        channel.send(JSON.stringify({ type: 'file-end', id: this.id }));
        this.#endSent = true;
      }
    } catch (error) {
      if (this.end(new FileErrorEvent('failed', error))) this.sendCancelAndClose();
    }
    return finished;
  }
}

/**
 * @typedef {object} FileReceiverOptions
 * @property {number} [maxSize] refuse offers of larger files
 */

export class FileReceiver extends Transfer {
  /** @type {FileOffer | null} */
  offer = null;
  #maxSize;
  /** @type {ArrayBuffer[]} */
  #chunks = [];
  #received = 0;
  #endReceived = false;

  /**
   * @param {DataChannelLike} channel a channel from a `datachannel` event whose label fileTransferId() accepts
   * @param {FileReceiverOptions} [options]
   */
  constructor(channel, { maxSize = MAX_FILE_SIZE } = {}) {
    super(channel);
    this.#maxSize = maxSize;
    channel.binaryType = 'arraybuffer';
    channel.addEventListener('message', (event) => this.#onMessage(/** @type {MessageEvent} */ (event).data));
    channel.addEventListener('close', () => this.#fail('closed'));
  }

  /** @param {unknown} data */
  #onMessage(data) {
    if (this.ended) return;
    if (typeof data === 'string') {
      this.#onText(data);
    } else if (data instanceof ArrayBuffer) {
      this.#onChunk(data);
    } else if (ArrayBuffer.isView(data)) {
      this.#onChunk(toBytes(data).slice().buffer);
    } else {
      this.#fail('protocol');
    }
  }

  /** @param {string} text */
  #onText(text) {
    const message = parseJson(text);
    if (this.isMessage(message, 'file-cancel')) {
      if (this.end(new FileCancelEvent(true))) this.channel.close();
    } else if (this.offer === null) {
      const offer = parseFileOffer(message, this.#maxSize);
      if (offer === null || offer.id !== this.id) return this.#fail('invalid-offer');
      this.offer = offer;
      this.dispatchEvent(new FileOfferEvent(offer));
    } else if (this.isMessage(message, 'file-end') && !this.#endReceived) {
      this.#endReceived = true;
      void this.#verify(this.offer);
    } else {
      this.#fail('protocol');
    }
  }

  /** @param {ArrayBuffer} chunk */
  #onChunk(chunk) {
    const offer = this.offer;
    if (offer === null || this.#endReceived) return this.#fail('protocol');
    // Checked as chunks arrive so a lying sender cannot make us buffer more than it offered.
    if (chunk.byteLength > offer.chunkSize || this.#received + chunk.byteLength > offer.size) {
      return this.#fail('size');
    }
    this.#chunks.push(chunk);
    this.#received += chunk.byteLength;
    this.dispatchEvent(new FileProgressEvent(this.#received, offer.size));
  }

  /** @param {FileOffer} offer */
  async #verify(offer) {
    if (this.#received !== offer.size) return this.#fail('size');
    // The claimed mime is not trusted: a blob: URL of type text/html would run
    // script in this origin if anything ever navigated to it.
    const blob = new Blob(this.#chunks, { type: 'application/octet-stream' });
    this.#chunks = [];
    let digest;
    try {
      digest = await sha256Hex(blob);
    } catch (error) {
      return this.#fail('failed', error);
    }
    if (digest !== offer.sha256) return this.#fail('checksum');
    if (this.end(new FileCompleteEvent(blob, offer))) this.channel.close();
  }

  /**
   * @param {FileErrorEvent['reason']} reason
   * @param {unknown} [cause]
   */
  #fail(reason, cause) {
    if (!this.end(new FileErrorEvent(reason, cause))) return;
    this.#chunks = [];
    this.sendCancelAndClose();
  }
}

/**
 * @param {string} text
 * @returns {unknown} null if the text is not JSON
 */
function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** @param {ArrayBuffer | ArrayBufferView} data */
function toBytes(data) {
  return data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** @param {DataChannelLike} channel */
function opened(channel) {
  if (channel.readyState === 'open') return Promise.resolve();
  return nextEvent(channel, 'open');
}

/**
 * @param {EventTarget} target
 * @param {string} type
 * @returns {Promise<void>}
 */
function nextEvent(target, type) {
  return new Promise((resolve) => target.addEventListener(type, () => resolve(), { once: true }));
}

// --- Files in a call through the media server: uploaded to the site, announced, downloaded ------

/**
 * @typedef {object} SharedFile a file the server announced to the call (a `file` message)
 * @property {string} id
 * @property {string} name
 * @property {number} size
 * @property {string} mime
 * @property {string} sha256
 * @property {string} url a path on this site
 * @property {{id: string, name: string}} from
 */

/**
 * Check a `file` message from the server; return the file, or null when it is malformed.
 * @param {any} message
 * @returns {SharedFile | null}
 */
export function parseSharedFile(message) {
  if (!message || typeof message !== 'object') return null;
  const { id, name, size, mime, sha256, url } = message;
  const from = message.from;
  const valid =
    typeof id === 'string' && ID_PATTERN.test(id) &&
    typeof name === 'string' && name.length > 0 &&
    Number.isSafeInteger(size) && size > 0 &&
    typeof mime === 'string' &&
    typeof sha256 === 'string' && SHA256_PATTERN.test(sha256) &&
    // Only a path of this site: never a link elsewhere, nor javascript:.
    typeof url === 'string' && url.startsWith('/rooms/') && !url.startsWith('//') &&
    from && typeof from.id === 'string' && typeof from.name === 'string';
  if (!valid) return null;
  return { id, name: sanitizeFileName(name), size, mime, sha256, url, from: { id: from.id, name: from.name } };
}

/**
 * Upload a file to the call (docs/signaling.md, "Files in sfu mode"), reporting progress.
 * `done` resolves with the server's answer, or rejects with an Error whose message says why.
 * @param {string} url
 * @param {File} file
 * @param {{peer: string, csrfToken: string, onProgress?: (bytes: number) => void}} options
 * @returns {{done: Promise<any>, cancel: () => void}}
 */
export function uploadFile(url, file, { peer, csrfToken, onProgress }) {
  const request = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    request.open('POST', url);
    request.setRequestHeader('X-CSRFToken', csrfToken);
    request.responseType = 'json';
    request.upload.addEventListener('progress', (event) => onProgress?.(event.loaded));
    request.addEventListener('load', () => {
      if (request.status === 201) resolve(request.response);
      else reject(new Error(request.response?.message ?? `The site refused the file (${request.status}).`));
    });
    request.addEventListener('error', () => reject(new Error('The connection to the site failed.')));
    request.addEventListener('abort', () => reject(new Error('Cancelled')));
    const form = new FormData();
    form.append('peer', peer);
    form.append('file', file, file.name);
    request.send(form);
  });
  return { done, cancel: () => request.abort() };
}
