// @ts-check
/**
 * Chat over the negotiated "chat" data channel of every peer connection
 * (protocol in docs/signaling.md): `chat` messages, and one `chat-history`
 * hand-over from an existing peer to a newcomer. Receivers de-duplicate by id,
 * since a newcomer gets the same history from every peer already in the room.
 */

/** @typedef {{type: 'chat', id: string, text: string, sentAt: number}} ChatMessage */
/** @typedef {{id: string, name: string}} ChatAuthor */
/** @typedef {{id: string, text: string, sentAt: number, from: ChatAuthor}} ChatEntry */
/** @typedef {{type: 'chat-history', messages: ChatEntry[]}} ChatHistory */

export const MAX_TEXT_LENGTH = 4000;
export const MAX_ID_LENGTH = 64;
export const MAX_NAME_LENGTH = 200;
export const HISTORY_LIMIT = 200;
// Chromium and Safari refuse data channel messages above 256 KiB.
export const MAX_MESSAGE_BYTES = 256 * 1024;
// Nothing we send is longer; Firefox would deliver far longer strings to JSON.parse.
const MAX_PAYLOAD_LENGTH = 1024 * 1024;

/**
 * Return a new chat message to send; throw RangeError for empty or over-long text.
 *
 * @param {string} text
 * @param {number} [now] ms since the epoch
 * @param {() => string} [newId]
 * @returns {ChatMessage}
 */
export function makeChatMessage(text, now = Date.now(), newId = () => crypto.randomUUID()) {
  if (!isValidText(text)) throw new RangeError(`chat text must be 1 to ${MAX_TEXT_LENGTH} characters`);
  return { type: 'chat', id: newId(), text, sentAt: now };
}

/**
 * Return the chat or chat-history payload in `raw`, or null if anything in it is invalid.
 *
 * Only the known fields are copied, so nothing else a peer sends travels further.
 *
 * @param {unknown} raw the data of a message event
 * @returns {ChatMessage | ChatHistory | null}
 */
export function parseChatPayload(raw) {
  if (typeof raw !== 'string' || raw.length > MAX_PAYLOAD_LENGTH) return null;
  let value;
  try {
    value = JSON.parse(raw);
  } catch {
    return null;
  }
  if (!isRecord(value)) return null;
  if (value.type === 'chat') {
    const fields = parseFields(value);
    return fields && { type: 'chat', ...fields };
  }
  if (value.type === 'chat-history') {
    const { messages } = value;
    if (!Array.isArray(messages) || messages.length > HISTORY_LIMIT) return null;
    /** @type {ChatEntry[]} */
    const entries = [];
    for (const message of messages) {
      const fields = isRecord(message) ? parseFields(message) : null;
      const from = isRecord(message) ? parseAuthor(message.from) : null;
      if (!fields || !from) return null;
      entries.push({ ...fields, from });
    }
    return { type: 'chat-history', messages: entries };
  }
  return null;
}

/**
 * The messages of a call, de-duplicated by id and ordered by sentAt then id.
 * Only the latest `limit` are kept: that is all a newcomer is handed.
 */
export class ChatLog {
  /** @type {ChatEntry[]} */
  #entries = [];
  #ids = new Set();
  #limit;

  constructor(limit = HISTORY_LIMIT) {
    this.#limit = limit;
  }

  /**
   * Add an entry; return true if it was new and is recent enough to be kept.
   *
   * @param {ChatEntry} entry
   */
  add(entry) {
    if (this.#ids.has(entry.id)) return false;
    const index = this.#entries.findIndex((other) => compareEntries(entry, other) < 0);
    this.#entries.splice(index === -1 ? this.#entries.length : index, 0, entry);
    this.#ids.add(entry.id);
    while (this.#entries.length > this.#limit) {
      const oldest = /** @type {ChatEntry} */ (this.#entries.shift());
      this.#ids.delete(oldest.id);
    }
    return this.#ids.has(entry.id);
  }

  /** @param {string} id */
  has(id) {
    return this.#ids.has(id);
  }

  get size() {
    return this.#entries.length;
  }

  /** Return the entries, oldest first. */
  messages() {
    return [...this.#entries];
  }
}

/**
 * Return the JSON text of the chat-history message for a newcomer: the last
 * HISTORY_LIMIT entries, fewer if needed to stay within `maxBytes`.
 *
 * @param {ChatLog} log
 * @param {(peerId: string) => string | undefined} [nameOf] current display names, where known
 * @param {number} [maxBytes]
 */
export function historyPayload(log, nameOf = () => undefined, maxBytes = MAX_MESSAGE_BYTES) {
  const entries = log.messages().slice(-HISTORY_LIMIT).map(({ id, text, sentAt, from }) => ({
    id,
    text,
    sentAt,
    from: { id: from.id, name: (nameOf(from.id) ?? from.name).slice(0, MAX_NAME_LENGTH) },
  }));
  /** @param {number} count */
  const encode = (count) =>
    JSON.stringify({ type: 'chat-history', messages: count > 0 ? entries.slice(-count) : [] });
  const encoder = new TextEncoder();
  // Binary search for the largest count of newest entries that fits.
  let low = 0;
  let high = entries.length;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (encoder.encode(encode(middle)).byteLength <= maxBytes) low = middle;
    else high = middle - 1;
  }
  return encode(low);
}

/**
 * @param {ChatEntry} a
 * @param {ChatEntry} b
 */
function compareEntries(a, b) {
  if (a.sentAt !== b.sentAt) return a.sentAt - b.sentAt;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * @param {Record<string, unknown>} value
 * @returns {{id: string, text: string, sentAt: number} | null}
 */
function parseFields({ id, text, sentAt }) {
  if (!isValidId(id) || !isValidText(text)) return null;
  if (typeof sentAt !== 'number' || !Number.isFinite(sentAt)) return null;
  return { id, text, sentAt };
}

/**
 * @param {unknown} from
 * @returns {ChatAuthor | null}
 */
function parseAuthor(from) {
  if (!isRecord(from)) return null;
  const { id, name } = from;
  if (!isValidId(id) || typeof name !== 'string' || name.length > MAX_NAME_LENGTH) return null;
  return { id, name };
}

/**
 * @param {unknown} id
 * @returns {id is string}
 */
function isValidId(id) {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH;
}

/**
 * @param {unknown} text
 * @returns {text is string}
 */
function isValidText(text) {
  return typeof text === 'string' && text.trim() !== '' && text.length <= MAX_TEXT_LENGTH;
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isRecord(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Return the chat entries a message of the server carries in sfu mode (docs/signaling.md, "Chat
 * in sfu mode"): a `chat` stamped with its author's `from`, or a `chat-history`. Null if anything
 * in it is invalid; only the known fields are copied.
 *
 * @param {unknown} message the parsed websocket message
 * @returns {ChatEntry[] | null}
 */
export function parseServerChat(message) {
  if (!isRecord(message)) return null;
  if (message.type === 'chat') {
    const fields = parseFields(message);
    const from = parseAuthor(message.from);
    return fields && from ? [{ ...fields, from }] : null;
  }
  if (message.type === 'chat-history') {
    const { messages } = message;
    if (!Array.isArray(messages) || messages.length > HISTORY_LIMIT) return null;
    /** @type {ChatEntry[]} */
    const entries = [];
    for (const entry of messages) {
      const fields = isRecord(entry) ? parseFields(entry) : null;
      const from = isRecord(entry) ? parseAuthor(entry.from) : null;
      if (!fields || !from) return null;
      entries.push({ ...fields, from });
    }
    return entries;
  }
  return null;
}

/** What a websocket frame may hold (80 KiB), less room for the envelope around the history. */
export const SERVER_HISTORY_BYTES = 72 * 1024;

/**
 * Return the `chat-history` message for a newcomer in sfu mode, to send through the server.
 *
 * @param {ChatLog} log
 * @param {string} to the newcomer's peer id
 * @param {(peerId: string) => string | undefined} [nameOf]
 */
export function serverHistoryMessage(log, to, nameOf = () => undefined) {
  const { messages } = JSON.parse(historyPayload(log, nameOf, SERVER_HISTORY_BYTES));
  return { type: 'chat-history', to, messages };
}
