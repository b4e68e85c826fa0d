// @ts-check
/**
 * Calls through the media server (docs/signaling.md, "Calls through the media server (protocol
 * 2)"): this page's feeds published on send-only connections, everyone else's received on one
 * subscription connection, and the choice of which videos to receive at which simulcast layer.
 * No DOM here: call.js hands in the tracks and the tiles' sizes, and shows what comes out.
 *
 * Events of SfuSession: `streams` (SfuStreamsEvent: what the subscription carries now, each
 * media section with its track, after every `subscription`), `error` (SfuErrorEvent).
 */

/** @typedef {'camera' | 'screen'} Feed */
/** @typedef {Feed | 'subscription'} Target */
/** @typedef {{mid: string, peer: string, feed: string, kind: string}} StreamInfo */
/** @typedef {StreamInfo & {track: MediaStreamTrack}} ReceivedStream */
/** @typedef {{mid: string, send: boolean, layer?: number}} Reception */

/**
 * The camera's simulcast layers, as the media server names them: high, medium, low. Listed from
 * the highest, as Janus reads the offer's `a=simulcast` line: it numbers the layers from the last
 * listed (`receive`'s layer 0) to the first (layer 2), whatever their rids say.
 */
export const SIMULCAST_ENCODINGS = Object.freeze([
  Object.freeze({ rid: 'h', scaleResolutionDownBy: 1 }),
  Object.freeze({ rid: 'm', scaleResolutionDownBy: 2 }),
  Object.freeze({ rid: 'l', scaleResolutionDownBy: 4 }),
]);

/** How many remote videos a page receives at once, unless told otherwise. */
export const DEFAULT_LAST_N = 9;

/** Tiles narrower than this (CSS pixels) get the low layer; up to the next, the medium one. */
export const LOW_LAYER_BELOW = 320;
export const MEDIUM_LAYER_UP_TO = 640;

/**
 * Return the key of the tile a feed of a peer is shown on: the peer id for the camera (the
 * person's own tile, as in a mesh call), `<peer id>:screen` for a screen share. Peer ids never
 * hold a colon.
 * @param {string} peer
 * @param {string} feed
 */
export function tileKey(peer, feed) {
  return feed === 'screen' ? `${peer}:screen` : peer;
}

/**
 * Return the simulcast layer that fits a tile this many CSS pixels wide: 0, 1 or 2. A tile of no
 * known size gets the highest, the media server's own default.
 * @param {number | undefined} width
 */
export function layerForWidth(width) {
  if (width === undefined || !Number.isFinite(width) || width <= 0) return 2;
  if (width < LOW_LAYER_BELOW) return 0;
  if (width <= MEDIUM_LAYER_UP_TO) return 1;
  return 2;
}

/**
 * @typedef {object} ReceptionInput
 * @property {StreamInfo[]} streams the subscription's media sections
 * @property {ReadonlyMap<string, number>} [widths] tile key -> the tile's width in CSS pixels
 * @property {string[]} [speakers] peer ids, the most recent speaker first
 * @property {string | null} [pinned] the tile key of the tile the person pinned
 * @property {ReadonlySet<string>} [cameraOff] peers whose camera is off: nothing to receive
 * @property {boolean} [hidden] the page is hidden: no video at all
 * @property {number} [lastN] at most this many videos at once
 */

/**
 * Decide, for every video of the subscription, whether to receive it and at which layer.
 *
 * Audio is always received, and is left out. Of the videos, screen shares come first, then the
 * pinned tile, then the speakers from the most recent, then the others in the subscription's
 * order; the first `lastN` are received at the layer their tile's width asks for, the others
 * paused. A camera that is off, and every video of a hidden page, is paused and takes no place.
 * @param {ReceptionInput} input
 * @returns {Reception[]} one entry per video section, in the subscription's order
 */
export function planReception({
  streams,
  widths = new Map(),
  speakers = [],
  pinned = null,
  cameraOff = new Set(),
  hidden = false,
  lastN = DEFAULT_LAST_N,
}) {
  const videos = streams.filter((stream) => stream.kind === 'video');
  /** @param {StreamInfo} stream */
  const rank = (stream) => {
    if (stream.feed === 'screen') return 0;
    if (pinned !== null && tileKey(stream.peer, stream.feed) === pinned) return 1;
    const spoke = speakers.indexOf(stream.peer);
    return spoke === -1 ? 2 + speakers.length : 2 + spoke;
  };
  const wanted = videos
    .filter((stream) => !hidden && !(stream.feed === 'camera' && cameraOff.has(stream.peer)))
    .map((stream, index) => ({ stream, index, rank: rank(stream) }))
    .sort((a, b) => a.rank - b.rank || a.index - b.index)
    .slice(0, Math.max(0, lastN))
    .map(({ stream }) => stream);
  const received = new Set(wanted);
  return videos.map((stream) =>
    received.has(stream)
      ? { mid: stream.mid, send: true, layer: layerForWidth(widths.get(tileKey(stream.peer, stream.feed))) }
      : { mid: stream.mid, send: false },
  );
}

/**
 * Return the entries of `plan` that differ from what was asked before (`previous`, by mid), and
 * note them in `previous`: what a `receive` message needs to carry.
 * @param {Map<string, Reception>} previous
 * @param {Reception[]} plan
 */
export function receptionChanges(previous, plan) {
  /** @type {Reception[]} */
  const changes = [];
  for (const entry of plan) {
    const before = previous.get(entry.mid);
    if (before && before.send === entry.send && (!entry.send || before.layer === entry.layer)) continue;
    previous.set(entry.mid, entry);
    changes.push(entry);
  }
  return changes;
}

export class SfuStreamsEvent extends Event {
  /** @param {ReceivedStream[]} streams */
  constructor(streams) {
    super('streams');
    this.streams = streams;
  }
}

export class SfuErrorEvent extends Event {
  /** @param {Target} connection @param {unknown} error */
  constructor(connection, error) {
    super('error');
    this.connection = connection;
    this.error = error;
  }
}

/**
 * One connection to the media server, with the candidates that came before its remote
 * description, and a queue so that its descriptions are applied in order.
 */
class Link {
  /** @type {RTCIceCandidateInit[]} */
  pending = [];
  /** @type {Promise<unknown>} */
  queue = Promise.resolve();
  /** @type {MediaStreamTrack[]} what a publisher sends, to publish again */
  tracks = [];

  /** @param {RTCPeerConnection} pc */
  constructor(pc) {
    this.pc = pc;
  }

  /** @param {() => Promise<unknown>} step */
  then(step) {
    this.queue = this.queue.then(step);
    return this.queue;
  }
}

/**
 * @typedef {object} SfuSessionOptions
 * @property {RTCIceServer[]} iceServers
 * @property {(message: object) => void} send send a message on the signaling websocket
 * @property {(config: RTCConfiguration) => RTCPeerConnection} [createPeerConnection]
 */

/** This page's connections to the media server, for one placement of the call on it. */
export class SfuSession extends EventTarget {
  #iceServers;
  #send;
  #createPeerConnection;
  /** @type {Map<Target, Link>} */
  #links = new Map();
  #closed = false;
  /** @type {RTCIceCandidateInit[]} candidates for the subscription that came before its first offer */
  #early = [];

  /** @param {SfuSessionOptions} options */
  constructor({ iceServers, send, createPeerConnection = (config) => new RTCPeerConnection(config) }) {
    super();
    this.#iceServers = iceServers;
    this.#send = send;
    this.#createPeerConnection = createPeerConnection;
  }

  /**
   * Publish a feed: a new send-only connection carrying these tracks (the camera's video in three
   * simulcast layers), and its offer to the server. A feed published already is replaced.
   * @param {Feed} feed
   * @param {MediaStreamTrack[]} tracks
   */
  async publish(feed, tracks) {
    if (this.#closed) return;
    this.#drop(feed);
    if (!tracks.length) return;
    const link = this.#open(feed);
    link.tracks = tracks;
    const stream = new MediaStream(tracks);
    for (const track of tracks) {
      /** @type {RTCRtpTransceiverInit} */
      const init = { direction: 'sendonly', streams: [stream] };
      if (feed === 'camera' && track.kind === 'video') init.sendEncodings = SIMULCAST_ENCODINGS.map((encoding) => ({ ...encoding }));
      link.pc.addTransceiver(track, init);
    }
    await link.then(async () => {
      await link.pc.setLocalDescription(await link.pc.createOffer());
      if (this.#links.get(feed) !== link) return;
      const { type, sdp } = /** @type {RTCSessionDescription} */ (link.pc.localDescription);
      this.#send({ type: 'publish', feed, description: { type, sdp } });
    }).catch((error) => this.#fail(feed, error));
  }

  /**
   * Stop publishing a feed (the end of a screen share).
   * @param {Feed} feed
   */
  unpublish(feed) {
    if (!this.#links.has(feed)) return;
    this.#drop(feed);
    if (!this.#closed) this.#send({ type: 'unpublish', feed });
  }

  /**
   * Publish again every feed that has no answer yet (after `media-unavailable`).
   */
  retryUnanswered() {
    for (const feed of /** @type {Feed[]} */ (['camera', 'screen'])) {
      const link = this.#links.get(feed);
      if (link && !link.pc.remoteDescription) void this.publish(feed, link.tracks);
    }
  }

  /**
   * The sender of a published feed's track of this kind, to replace its track.
   * @param {Feed} feed
   * @param {string} kind
   */
  sender(feed, kind) {
    const link = this.#links.get(feed);
    // The receiver's track has the transceiver's kind, whatever the sender sends now.
    return link?.pc.getTransceivers().find((transceiver) => transceiver.receiver.track.kind === kind)?.sender ?? null;
  }

  /** The subscription connection's statistics, or null before there is one. */
  async subscriptionStats() {
    const link = this.#links.get('subscription');
    return link ? link.pc.getStats() : null;
  }

  /** The subscription connection's state ("new" before there is one). */
  get subscriptionState() {
    return this.#links.get('subscription')?.pc.connectionState ?? 'new';
  }

  /**
   * Take a message of protocol 2 from the server: `published`, `subscription` or `trickle`.
   * @param {any} message
   */
  async handle(message) {
    if (this.#closed) return;
    if (message.type === 'published') await this.#onPublished(message.feed, message.description);
    else if (message.type === 'subscription') await this.#onSubscription(message.description, message.streams ?? []);
    else if (message.type === 'trickle') await this.#onTrickle(message.target, message.candidate);
  }

  /** Close every connection to the media server. */
  close() {
    this.#closed = true;
    for (const target of [...this.#links.keys()]) this.#drop(target);
  }

  /** @param {Target} target */
  #open(target) {
    const pc = this.#createPeerConnection({ iceServers: this.#iceServers });
    const link = new Link(pc);
    this.#links.set(target, link);
    pc.addEventListener('icecandidate', (event) => {
      if (this.#links.get(target) !== link) return;
      this.#send({ type: 'trickle', target, candidate: event.candidate ? event.candidate.toJSON() : null });
    });
    pc.addEventListener('connectionstatechange', () => {
      // A publisher whose connection failed offers again with an ICE restart (a new connection
      // would bring a new DTLS fingerprint, which the media server would not take on its feed);
      // the subscription is the server's to offer again.
      if (pc.connectionState === 'failed' && this.#links.get(target) === link && target !== 'subscription') {
        this.#restartIce(target, link);
      }
    });
    return link;
  }

  /** @param {Feed} feed @param {Link} link */
  #restartIce(feed, link) {
    void link
      .then(async () => {
        if (link.pc.signalingState !== 'stable') return;
        await link.pc.setLocalDescription(await link.pc.createOffer({ iceRestart: true }));
        if (this.#links.get(feed) !== link) return;
        const { type, sdp } = /** @type {RTCSessionDescription} */ (link.pc.localDescription);
        this.#send({ type: 'publish', feed, description: { type, sdp } });
      })
      .catch((error) => this.#fail(feed, error));
  }

  /** @param {Target} target */
  #drop(target) {
    const link = this.#links.get(target);
    if (!link) return;
    this.#links.delete(target);
    link.pc.close();
  }

  /** @param {Feed} feed @param {RTCSessionDescriptionInit} description */
  async #onPublished(feed, description) {
    const link = this.#links.get(feed);
    if (!link) return;
    await link
      .then(async () => {
        if (link.pc.signalingState !== 'have-local-offer') return;
        await link.pc.setRemoteDescription(description);
        await this.#flush(link);
      })
      .catch((error) => this.#fail(feed, error));
  }

  /** @param {RTCSessionDescriptionInit} description @param {StreamInfo[]} streams */
  async #onSubscription(description, streams) {
    let link = this.#links.get('subscription');
    if (!link) {
      link = this.#open('subscription');
      link.pending = this.#early;
      this.#early = [];
    }
    await link
      .then(async () => {
        await link.pc.setRemoteDescription(description);
        await this.#flush(link);
        await link.pc.setLocalDescription(await link.pc.createAnswer());
        if (this.#links.get('subscription') !== link) return;
        const { type, sdp } = /** @type {RTCSessionDescription} */ (link.pc.localDescription);
        this.#send({ type: 'subscribe-answer', description: { type, sdp } });
        const transceivers = link.pc.getTransceivers();
        /** @type {ReceivedStream[]} */
        const received = [];
        for (const stream of streams) {
          const transceiver = transceivers.find((each) => each.mid === stream.mid);
          if (transceiver) received.push({ mid: stream.mid, peer: stream.peer, feed: stream.feed, kind: stream.kind, track: transceiver.receiver.track });
        }
        this.dispatchEvent(new SfuStreamsEvent(received));
      })
      .catch((error) => this.#fail('subscription', error));
  }

  /** @param {Target} target @param {RTCIceCandidateInit | null} candidate */
  async #onTrickle(target, candidate) {
    const link = this.#links.get(target);
    if (!link) {
      if (target === 'subscription' && candidate) this.#early.push(candidate);
      return;
    }
    if (!link.pc.remoteDescription) {
      if (candidate) link.pending.push(candidate);
      return;
    }
    await this.#addCandidate(link, candidate);
  }

  /** @param {Link} link */
  async #flush(link) {
    const pending = link.pending;
    link.pending = [];
    for (const candidate of pending) await this.#addCandidate(link, candidate);
  }

  /** @param {Link} link @param {RTCIceCandidateInit | null} candidate */
  async #addCandidate(link, candidate) {
    try {
      await (candidate ? link.pc.addIceCandidate(candidate) : link.pc.addIceCandidate());
    } catch {
      // A candidate for a media section that went, or an end of candidates a browser does not
      // take: harmless.
    }
  }

  /** @param {Target} target @param {unknown} error */
  #fail(target, error) {
    if (this.#closed) return;
    this.dispatchEvent(new SfuErrorEvent(target, error));
  }
}
