// @ts-check
/**
 * The signaling websocket (docs/signaling.md): connect, keep alive, reconnect with backoff and
 * jitter, and hand every server message on as an event. No DOM here.
 *
 * Events: `message` (SignalingMessageEvent), `status` (SignalingStatusEvent: "connecting",
 * "connected", "reconnecting", "closed"), `ended` (SignalingEndedEvent: the server said not to
 * come back, or the page left).
 */

import { Backoff } from './backoff.js';

export const PING_INTERVAL_MS = 15_000;
export const SILENCE_LIMIT_MS = 30_000;

/** Close codes after which reconnecting cannot help (docs/signaling.md, "Errors and close codes"). */
export const FINAL_CLOSE_CODES = new Set([4401, 4403, 4404, 4409, 4410, 4412, 4423, 4425]);
/** Of those, the ones after which a person may well try again later, by hand: full, locked, early. */
export const LATER_CLOSE_CODES = new Set([4409, 4423, 4425]);

export class SignalingMessageEvent extends Event {
  /** @param {any} message */
  constructor(message) {
    super('message');
    this.message = message;
  }
}

export class SignalingStatusEvent extends Event {
  /** @param {'connecting' | 'connected' | 'reconnecting' | 'closed'} status */
  constructor(status) {
    super('status');
    this.status = status;
  }
}

export class SignalingEndedEvent extends Event {
  /**
   * @param {number} code the websocket close code
   * @param {any} error the last error message the server sent before closing, if any
   */
  constructor(code, error) {
    super('ended');
    this.code = code;
    this.error = error;
  }
}

/**
 * Return the websocket URL of a room's signaling endpoint for the page at `location`.
 * @param {{protocol: string, host: string}} location
 * @param {string} path e.g. "/ws/rooms/standup/"
 * @param {string} instance this page's name, the same across reconnections
 */
export function signalingUrl(location, path, instance) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}?instance=${encodeURIComponent(instance)}`;
}

/**
 * Return whether a close code means "come back later" rather than "you are not wanted".
 * @param {number} code
 */
export function shouldReconnect(code) {
  return !FINAL_CLOSE_CODES.has(code);
}

export class SignalingConnection extends EventTarget {
  #url;
  #createSocket;
  #backoff;
  /** @type {WebSocket | null} */
  #socket = null;
  #lastError = null;
  #lastHeard = 0;
  #timer = /** @type {any} */ (null);
  #stopped = false;

  /**
   * @param {string} url
   * @param {{createSocket?: (url: string) => WebSocket, backoff?: Backoff}} [options]
   */
  constructor(url, { createSocket = (address) => new WebSocket(address), backoff = new Backoff() } = {}) {
    super();
    this.#url = url;
    this.#createSocket = createSocket;
    this.#backoff = backoff;
  }

  connect() {
    if (this.#stopped) return;
    this.#status('connecting');
    const socket = this.#createSocket(this.#url);
    this.#socket = socket;
    this.#lastError = null;
    socket.addEventListener('open', () => {
      performance.mark('signaling:open');
      this.#lastHeard = Date.now();
      this.#startKeepalive();
    });
    socket.addEventListener('message', (event) => {
      this.#lastHeard = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === 'welcome' || message.type === 'lobby') {
        performance.mark(`signaling:${message.type}`);
        this.#backoff.reset();
        this.#status('connected');
      }
      if (message.type === 'error') this.#lastError = message;
      if (message.type !== 'pong') this.dispatchEvent(new SignalingMessageEvent(message));
    });
    socket.addEventListener('close', (event) => this.#onClose(socket, event.code));
  }

  /** @param {object} message */
  send(message) {
    if (this.#socket?.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(message));
  }

  /** Leave on purpose: close with 1000, and do not come back. */
  close() {
    this.#stopped = true;
    this.#stopKeepalive();
    this.#socket?.close(1000);
    this.#status('closed');
  }

  /**
   * @param {WebSocket} socket
   * @param {number} code
   */
  #onClose(socket, code) {
    if (socket !== this.#socket) return;
    this.#stopKeepalive();
    if (this.#stopped) return;
    if (!shouldReconnect(code)) {
      this.#stopped = true;
      this.#status('closed');
      this.dispatchEvent(new SignalingEndedEvent(code, this.#lastError));
      return;
    }
    this.#status('reconnecting');
    setTimeout(() => this.connect(), this.#backoff.next());
  }

  #startKeepalive() {
    this.#stopKeepalive();
    this.#timer = setInterval(() => {
      if (Date.now() - this.#lastHeard > SILENCE_LIMIT_MS) {
        // A connection that went quiet is as good as gone: drop it and start again.
        this.#socket?.close(4000);
        if (this.#socket) this.#onClose(this.#socket, 1006);
        return;
      }
      this.send({ type: 'ping' });
    }, PING_INTERVAL_MS);
  }

  #stopKeepalive() {
    clearInterval(this.#timer);
  }

  /** @param {'connecting' | 'connected' | 'reconnecting' | 'closed'} status */
  #status(status) {
    this.dispatchEvent(new SignalingStatusEvent(status));
  }
}
