// @ts-check
/**
 * Who is in the call and the connection to each (a mesh): the remotes by peer id, a page that
 * comes back under a new id matched by its `instance`, the grace period of a peer whose
 * connection was lost. It speaks the presence half of docs/signaling.md (`welcome`,
 * `peer-joined`, `peer-left`, `signal`) and makes no connection itself: `connect` makes one for a
 * remote, and the timers are injected, so that it runs (and is tested) without a browser.
 *
 * Events (MeshEvent): `add` (a new remote), `update` (its id, name, role or state changed;
 * `previousId` is set when the id did), `remove` (it is gone and its connection closed).
 */

/** How long a peer whose connection was lost may take to come back before we hang up on it. */
export const AWAY_GRACE_MS = 20_000;

/** The name of a peer known only from its first signal, until its `peer-joined` names it. */
export const UNKNOWN_NAME = '…';

/**
 * @typedef {{audio: boolean, video: boolean, screen: boolean, hand: boolean}} PeerState
 */

/**
 * A peer as the server describes it in `welcome.peers` and `peer-joined`.
 * @typedef {object} PeerInfo
 * @property {string} id
 * @property {string} instance
 * @property {string} name
 * @property {string} role
 * @property {PeerState | null} [state]
 */

/**
 * What the mesh needs of a connection (Peer in peer.js is one).
 * @typedef {object} Connection
 * @property {() => void} start send the first offer (the newcomer's side)
 * @property {(data: any) => unknown} handleSignal
 * @property {() => void} close
 * @property {string} connectionState
 */

/**
 * @template {Connection} C
 * @typedef {object} Remote
 * @property {string} id the peer id now (it changes when the peer reconnects)
 * @property {string} instance its page's name, the same across reconnections ("" until known)
 * @property {string} name
 * @property {string} role
 * @property {PeerState} state
 * @property {boolean} polite true when the remote joined after us: it sends the first offer
 * @property {C} connection
 * @property {unknown} awayTimer set while the remote is away and the grace period runs
 */

/**
 * @template {Connection} C
 * @typedef {object} MeshOptions
 * @property {(remote: Remote<C>) => C} connect make a new connection to the remote
 * @property {number} [graceMs]
 * @property {(callback: () => void, ms: number) => unknown} [setTimeout]
 * @property {(handle: unknown) => void} [clearTimeout]
 */

/** @template {Connection} C */
export class MeshEvent extends Event {
  /**
   * @param {'add' | 'update' | 'remove'} type
   * @param {Remote<C>} remote
   * @param {string | null} previousId for `update`: the id before the remote reconnected
   */
  constructor(type, remote, previousId = null) {
    super(type);
    this.remote = remote;
    this.previousId = previousId;
  }
}

/** @returns {PeerState} */
function defaultState() {
  return { audio: true, video: true, screen: false, hand: false };
}

/** @template {Connection} C */
export class Mesh extends EventTarget {
  /** @type {Map<string, Remote<C>>} */
  #remotes = new Map();
  #connect;
  #graceMs;
  #setTimeout;
  #clearTimeout;
  #welcomed = false;
  #selfInstance = '';

  /** @param {MeshOptions<C>} options */
  constructor({
    connect,
    graceMs = AWAY_GRACE_MS,
    // Wrapped because browsers throw "Illegal invocation" when a timer
    // function is called with another object as `this`.
    setTimeout: setTimer = (callback, ms) => setTimeout(callback, ms),
    clearTimeout: clearTimer = (handle) => clearTimeout(/** @type {any} */ (handle)),
  }) {
    super();
    this.#connect = connect;
    this.#graceMs = graceMs;
    this.#setTimeout = setTimer;
    this.#clearTimeout = clearTimer;
  }

  /** @param {string} id */
  get(id) {
    return this.#remotes.get(id);
  }

  get size() {
    return this.#remotes.size;
  }

  /** Return every remote, as an array the caller may keep while the mesh changes. */
  remotes() {
    return [...this.#remotes.values()];
  }

  /**
   * Meet everyone a `welcome` lists. The first welcome makes a connection to each, this side
   * offering; a later one (this page reconnected) keeps the connections of whoever is still
   * there, and gives whoever is not the grace period: they may be reconnecting too.
   * @param {{self: {instance: string}, peers: PeerInfo[]}} welcome
   */
  welcome(welcome) {
    const rejoining = this.#welcomed;
    this.#welcomed = true;
    this.#selfInstance = welcome.self.instance;
    /** @type {Set<Remote<C>>} */
    const present = new Set();
    for (const info of welcome.peers) {
      // This page's own older connection, which the server has not noticed is gone yet.
      if (info.instance && info.instance === this.#selfInstance) continue;
      // The newcomer sends the first offer to everyone already there.
      present.add(this.#meet(info, { polite: false }));
    }
    if (rejoining) {
      for (const remote of this.#remotes.values()) if (!present.has(remote)) this.#markAway(remote);
    }
  }

  /**
   * Meet a newcomer (`peer-joined`), or the same page back under a new id.
   * @param {PeerInfo} info
   */
  join(info) {
    if (info.instance && info.instance === this.#selfInstance) return;
    // Existing peers never offer first: make the connection ready and wait for the offer.
    this.#meet(info, { polite: true });
  }

  /**
   * Someone left (`peer-left`). A lost connection may come back under the same instance: while
   * the media still flows, keep it for the grace period; any other reason ends it now.
   * @param {string} id
   * @param {string} reason "left", "removed" or "lost"
   */
  leave(id, reason) {
    const remote = this.#remotes.get(id);
    if (!remote) return;
    if (reason === 'lost' && remote.connection.connectionState === 'connected') this.#markAway(remote);
    else this.#drop(remote);
  }

  /**
   * Hand a `signal` to the connection it is for. A newcomer's offer can arrive before its
   * `peer-joined`: then the connection is made now, on the polite side.
   * @param {string} from
   * @param {any} data
   */
  signal(from, data) {
    const remote =
      this.#remotes.get(from) ??
      this.#add({ id: from, instance: '', name: UNKNOWN_NAME, role: 'participant' }, { polite: true });
    return remote.connection.handleSignal(data);
  }

  /**
   * Replace a remote's connection that could not recover, leaving every other one alone.
   * @param {Remote<C>} remote
   * @param {any} [signal] an offer the old connection could not take, for the new one
   */
  reconnect(remote, signal = null) {
    if (this.#remotes.get(remote.id) !== remote) return;
    remote.connection.close();
    remote.connection = this.#connect(remote);
    if (!remote.polite) remote.connection.start();
    if (signal) void remote.connection.handleSignal(signal);
  }

  /** Close every connection and forget everyone (the call ended for this page). */
  close() {
    for (const remote of this.#remotes.values()) {
      this.#clearTimeout(remote.awayTimer);
      remote.connection.close();
    }
    this.#remotes.clear();
  }

  /**
   * Return the remote this peer is, by instance or id, brought up to date; or a new one.
   * @param {PeerInfo} info
   * @param {{polite: boolean}} options
   */
  #meet(info, options) {
    const known = this.#byInstance(info.instance) ?? this.#remotes.get(info.id);
    if (!known) return this.#add(info, options);
    this.#rekey(known, info);
    return known;
  }

  /**
   * @param {PeerInfo} info
   * @param {{polite: boolean}} options
   */
  #add(info, { polite }) {
    /** @type {Remote<C>} */
    const remote = {
      id: info.id,
      instance: info.instance,
      name: info.name,
      role: info.role,
      state: info.state ?? defaultState(),
      polite,
      connection: /** @type {any} */ (null),
      awayTimer: null,
    };
    remote.connection = this.#connect(remote);
    // The newcomer's offer first: the browser makes it while the page shows the remote.
    if (!polite) remote.connection.start();
    this.#remotes.set(remote.id, remote);
    this.dispatchEvent(new MeshEvent('add', remote));
    return remote;
  }

  /**
   * The same page is back, maybe under a new peer id: keep its connection, learn the new id.
   * @param {Remote<C>} remote
   * @param {PeerInfo} info
   */
  #rekey(remote, info) {
    this.#clearTimeout(remote.awayTimer);
    remote.awayTimer = null;
    const previousId = remote.id;
    if (previousId !== info.id) {
      // A signal from the new id that came before this news made a connection of its own; the
      // page already has one with us, so that one goes.
      const stray = this.#remotes.get(info.id);
      if (stray) this.#drop(stray);
      this.#remotes.delete(previousId);
      remote.id = info.id;
      this.#remotes.set(remote.id, remote);
    }
    Object.assign(remote, { instance: info.instance, name: info.name, role: info.role, state: info.state ?? remote.state });
    this.dispatchEvent(new MeshEvent('update', remote, previousId === remote.id ? null : previousId));
  }

  /** @param {string} instance */
  #byInstance(instance) {
    if (!instance) return undefined;
    for (const remote of this.#remotes.values()) if (remote.instance === instance) return remote;
    return undefined;
  }

  /** @param {Remote<C>} remote */
  #markAway(remote) {
    if (remote.awayTimer) return;
    remote.awayTimer = this.#setTimeout(() => this.#drop(remote), this.#graceMs);
  }

  /** @param {Remote<C>} remote */
  #drop(remote) {
    if (this.#remotes.get(remote.id) !== remote) return;
    this.#clearTimeout(remote.awayTimer);
    remote.awayTimer = null;
    remote.connection.close();
    this.#remotes.delete(remote.id);
    this.dispatchEvent(new MeshEvent('remove', remote));
  }
}
