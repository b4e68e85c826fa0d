// @ts-check
/**
 * One RTCPeerConnection to one remote participant, negotiated with the
 * "perfect negotiation" pattern of WebRTC 1.0 (section "Perfect negotiation
 * example"). The newcomer to a room is impolite, the participant already
 * there is polite; see docs/signaling.md.
 *
 * Events: `track` (PeerTrackEvent), `datachannel` (PeerDataChannelEvent, every
 * channel the remote side opens; the negotiated chat channel never appears here),
 * `connectionstatechange` (Event; read `peer.connectionState`),
 * `rebuild` (PeerRebuildEvent), `error` (PeerErrorEvent).
 */

/**
 * @typedef {{description: RTCSessionDescriptionInit} | {candidate: RTCIceCandidateInit | null}} SignalData
 */

/**
 * @typedef {object} PeerOptions
 * @property {string} id the remote peer's id
 * @property {boolean} polite true on the side that was in the room first
 * @property {(data: SignalData) => void} sendSignal delivers `data` to the remote peer
 * @property {(config: RTCConfiguration) => RTCPeerConnection} [createConnection]
 * @property {RTCIceServer[]} [iceServers]
 * @property {number} [rebuildAfterMs] how long an ICE restart may take before `rebuild`
 * @property {(callback: () => void, ms: number) => unknown} [setTimeout]
 * @property {(handle: unknown) => void} [clearTimeout]
 */

export const CHAT_CHANNEL = Object.freeze({ label: 'chat', id: 0 });
export const REBUILD_AFTER_MS = 10_000;

export class PeerTrackEvent extends Event {
  /**
   * @param {MediaStreamTrack} track
   * @param {readonly MediaStream[]} streams
   */
  constructor(track, streams) {
    super('track');
    this.track = track;
    this.streams = streams;
  }
}

export class PeerDataChannelEvent extends Event {
  /** @param {RTCDataChannel} channel */
  constructor(channel) {
    super('datachannel');
    this.channel = channel;
  }
}

export class PeerRebuildEvent extends Event {
  /**
   * @param {'timeout' | 'remote-offer-rejected'} reason
   * @param {SignalData | null} signal for 'remote-offer-rejected': the offer to hand to the new Peer
   */
  constructor(reason, signal = null) {
    super('rebuild');
    this.reason = reason;
    this.signal = signal;
  }
}

export class PeerErrorEvent extends Event {
  /** @param {unknown} error */
  constructor(error) {
    super('error');
    this.error = error;
  }
}

export class Peer extends EventTarget {
  #pc;
  #sendSignal;
  #setTimeout;
  #clearTimeout;
  #rebuildAfterMs;
  #makingOffer = false;
  #ignoreOffer = false;
  #isSettingRemoteAnswerPending = false;
  /** @type {(RTCIceCandidateInit | null)[]} */
  #pendingCandidates = [];
  // Until start() or the first remote offer, negotiationneeded is ignored:
  // the protocol lets the newcomer alone send the first offer, and that
  // offer (or our answer) covers whatever was held back.
  #started = false;
  /** @type {unknown} */
  #rebuildTimer = null;
  #closed = false;
  /** @type {Set<string>} */
  #marked = new Set();

  /** @param {PeerOptions} options */
  constructor({
    id,
    polite,
    sendSignal,
    createConnection = (config) => new RTCPeerConnection(config),
    iceServers = [],
    rebuildAfterMs = REBUILD_AFTER_MS,
    // Wrapped because browsers throw "Illegal invocation" when a timer
    // function is called with another object as `this`.
    setTimeout: setTimer = (callback, ms) => setTimeout(callback, ms),
    clearTimeout: clearTimer = (handle) => clearTimeout(/** @type {any} */ (handle)),
  }) {
    super();
    this.id = id;
    this.polite = polite;
    this.#sendSignal = sendSignal;
    this.#setTimeout = setTimer;
    this.#clearTimeout = clearTimer;
    this.#rebuildAfterMs = rebuildAfterMs;

    // One transport for everything: with the default ("balanced") policy the first offer gathers
    // candidates for audio, video and data each, three times the candidates to signal and check.
    const pc = createConnection({ iceServers, bundlePolicy: 'max-bundle' });
    this.#pc = pc;
    pc.addEventListener('negotiationneeded', () => this.#onNegotiationNeeded());
    pc.addEventListener('icecandidate', ({ candidate }) => {
      if (!this.#closed) this.#sendSignal({ candidate: candidate ? candidate.toJSON() : null });
    });
    pc.addEventListener('track', ({ track, streams }) => {
      this.#mark('track');
      this.dispatchEvent(new PeerTrackEvent(track, streams));
    });
    pc.addEventListener('datachannel', ({ channel }) => {
      this.dispatchEvent(new PeerDataChannelEvent(channel));
    });
    // Firefox before 113 has no connectionState, so watch the ICE state as well.
    pc.addEventListener('connectionstatechange', () => this.#onStateChange());
    pc.addEventListener('iceconnectionstatechange', () => this.#onStateChange());

    // Both sides create it with the same id, so it needs no "datachannel"
    // round trip; being the first channel, it also gives the newcomer's first
    // offer something to negotiate, even from a page without camera or
    // microphone (see start()).
    this.chatChannel = pc.createDataChannel(CHAT_CHANNEL.label, {
      negotiated: true,
      id: CHAT_CHANNEL.id,
    });
  }

  /**
   * `connectionState`, or the ICE connection state where the browser lacks it.
   *
   * @returns {RTCPeerConnectionState | RTCIceConnectionState}
   */
  get connectionState() {
    return this.#pc.connectionState ?? this.#pc.iceConnectionState;
  }

  /**
   * Let this side send offers, and send the first one now. The newcomer calls
   * it once per existing peer (those listed in `welcome`). The first offer
   * does not wait for the browser's negotiation-needed event, which comes a
   * task later, and later still on a busy page: the chat channel, made in the
   * constructor, always gives the first offer something to negotiate, and
   * the event, when it comes, finds the offer under way and is not fired.
   * The polite side never calls it; it starts answering on the first offer.
   */
  start() {
    if (this.#started || this.#closed) return;
    this.#started = true;
    if (this.#pc.signalingState === 'stable') void this.#offer();
  }

  /**
   * Apply one `data` object received from the remote peer through the signaling server.
   *
   * @param {SignalData} data
   */
  async handleSignal(data) {
    if (this.#closed) return;
    try {
      if ('description' in data) {
        await this.#acceptDescription(data);
      } else if ('candidate' in data) {
        await this.#acceptCandidate(data.candidate);
      }
    } catch (error) {
      this.#reportError(error);
    }
  }

  /**
   * @param {MediaStreamTrack} track
   * @param {MediaStream[]} streams
   */
  addTrack(track, ...streams) {
    return this.#pc.addTrack(track, ...streams);
  }

  /**
   * Swap what a sender sends (camera to screen and back) without renegotiating.
   *
   * @param {RTCRtpSender} sender
   * @param {MediaStreamTrack | null} track
   */
  replaceTrack(sender, track) {
    return sender.replaceTrack(track);
  }

  /** @param {RTCRtpSender} sender */
  removeTrack(sender) {
    this.#pc.removeTrack(sender);
  }

  /**
   * Receive a kind of media without sending any (a receive-only participant).
   * @param {'audio' | 'video'} kind
   */
  addReceiver(kind) {
    return this.#pc.addTransceiver(kind, { direction: 'recvonly' });
  }

  /**
   * Open a channel the remote side receives as a `datachannel` event (file transfers).
   *
   * @param {string} label
   * @param {RTCDataChannelInit} [init]
   */
  createDataChannel(label, init) {
    return this.#pc.createDataChannel(label, init);
  }

  async getStatsSummary() {
    return summarizeStats(await this.#pc.getStats());
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelRebuild();
    this.#pendingCandidates = [];
    this.#pc.close();
  }

  #onNegotiationNeeded() {
    if (this.#closed) return;
    if (!this.#started) return;
    void this.#offer();
  }

  async #offer() {
    try {
      this.#makingOffer = true;
      await this.#pc.setLocalDescription();
      this.#mark('offer-created');
      this.#sendDescription();
      this.#mark('offer-sent');
    } catch (error) {
      this.#reportError(error);
    } finally {
      this.#makingOffer = false;
    }
  }

  /** @param {{description: RTCSessionDescriptionInit}} data */
  async #acceptDescription(data) {
    const { description } = data;
    const pc = this.#pc;
    // An offer may come in while we are busy processing SRD(answer). In this
    // case we will be in "stable" by the time the offer is processed, so it is
    // safe to chain it on the operations chain now.
    const readyForOffer =
      !this.#makingOffer && (pc.signalingState === 'stable' || this.#isSettingRemoteAnswerPending);
    const offerCollision = description.type === 'offer' && !readyForOffer;

    this.#ignoreOffer = !this.polite && offerCollision;
    if (this.#ignoreOffer) return;

    // The browser fires negotiationneeded again on return to "stable" if the
    // change we held back is still not covered by this offer.
    this.#started = true;

    this.#mark(`${description.type}-received`);
    this.#isSettingRemoteAnswerPending = description.type === 'answer';
    try {
      await pc.setRemoteDescription(description); // rolls back our own offer if needed
    } catch (error) {
      if (description.type !== 'offer') throw error;
      // Most often the remote side replaced its RTCPeerConnection (a `rebuild`
      // there) and this offer belongs to the new one; this connection cannot
      // take it, so ask the caller for a fresh one and hand the offer on.
      this.dispatchEvent(new PeerRebuildEvent('remote-offer-rejected', data));
      return;
    } finally {
      this.#isSettingRemoteAnswerPending = false;
    }
    const flushed = this.#flushCandidates();
    if (description.type === 'offer') {
      await pc.setLocalDescription();
      this.#sendDescription();
      this.#mark('answer-sent');
    }
    await flushed;
  }

  /** @param {RTCIceCandidateInit | null} candidate */
  async #acceptCandidate(candidate) {
    if (!this.#pc.remoteDescription) {
      this.#pendingCandidates.push(candidate);
      return;
    }
    await this.#addCandidate(candidate);
  }

  // All queued candidates are handed to the connection in one synchronous
  // pass, so the browser's operations chain keeps them in arrival order and
  // ahead of any candidate that arrives later.
  #flushCandidates() {
    const queued = this.#pendingCandidates.splice(0);
    return Promise.all(
      queued.map((candidate) => this.#addCandidate(candidate).catch((error) => this.#reportError(error))),
    );
  }

  /** @param {RTCIceCandidateInit | null} candidate */
  async #addCandidate(candidate) {
    try {
      // No argument means end-of-candidates.
      await (candidate ? this.#pc.addIceCandidate(candidate) : this.#pc.addIceCandidate());
    } catch (error) {
      // Candidates of an offer we ignored cannot be applied; that is expected.
      if (!this.#ignoreOffer) throw error;
    }
  }

  #sendDescription() {
    const description = this.#pc.localDescription;
    if (!description || this.#closed) return;
    this.#sendSignal({ description: { type: description.type, sdp: description.sdp } });
  }

  #onStateChange() {
    if (this.#closed) return;
    const pc = this.#pc;
    if (pc.connectionState === 'failed' || pc.iceConnectionState === 'failed') {
      this.#recover();
    } else if (this.#isConnected()) {
      this.#cancelRebuild();
    }
    const ice = pc.iceConnectionState;
    if (ice === 'connected' || ice === 'completed') this.#mark('ice-connected');
    if (pc.connectionState === 'connected') this.#mark('connected');
    this.dispatchEvent(new Event('connectionstatechange'));
  }

  #isConnected() {
    const state = this.connectionState;
    return state === 'connected' || state === 'completed';
  }

  // An ICE restart keeps the media and data channels; only when it does not
  // bring the connection back in time is the whole connection replaced.
  #recover() {
    if (this.#rebuildTimer !== null) return;
    this.#pc.restartIce();
    this.#rebuildTimer = this.#setTimeout(() => {
      this.#rebuildTimer = null;
      if (!this.#closed && !this.#isConnected()) {
        this.dispatchEvent(new PeerRebuildEvent('timeout'));
      }
    }, this.#rebuildAfterMs);
  }

  #cancelRebuild() {
    if (this.#rebuildTimer === null) return;
    this.#clearTimeout(this.#rebuildTimer);
    this.#rebuildTimer = null;
  }

  /**
   * Note a step of this connection's first negotiation on the page's performance timeline
   * (bench/join_time.py reads them): once per step and connection, so a long call adds nothing.
   *
   * @param {string} step
   */
  #mark(step) {
    if (this.#marked.has(step)) return;
    this.#marked.add(step);
    globalThis.performance?.mark?.(`peer:${step}`, { detail: { peer: this.id } });
  }

  /** @param {unknown} error */
  #reportError(error) {
    if (!this.#closed) this.dispatchEvent(new PeerErrorEvent(error));
  }
}

/**
 * @typedef {object} StatsSummary
 * @property {number | null} roundTripTimeMs of the selected candidate pair
 * @property {number | null} packetLoss fraction of inbound RTP packets lost since the call began
 * @property {boolean | null} relayed whether the selected pair goes through a TURN server
 * @property {number | null} audioLevel of the remote audio now, 0 to 1
 */

/**
 * Summarize an RTCStatsReport (or any Map of stats objects keyed by id).
 *
 * @param {ReadonlyMap<string, any>} report
 * @returns {StatsSummary}
 */
export function summarizeStats(report) {
  const stats = [...report.values()];
  const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
  const pair = transport
    ? report.get(transport.selectedCandidatePairId)
    : // Firefox reports no transport stats; it flags the pair itself.
      stats.find((s) => s.type === 'candidate-pair' && (s.selected || (s.nominated && s.state === 'succeeded')));

  const rtt = pair?.currentRoundTripTime;
  const roundTripTimeMs = typeof rtt === 'number' && Number.isFinite(rtt) ? Math.round(rtt * 1000) : null;

  let lost = 0;
  let received = 0;
  for (const s of stats) {
    if (s.type !== 'inbound-rtp') continue;
    // packetsLost goes negative when duplicates arrive.
    lost += Math.max(0, s.packetsLost ?? 0);
    received += s.packetsReceived ?? 0;
  }
  const packetLoss = lost + received > 0 ? lost / (lost + received) : null;

  const relayed = pair
    ? [report.get(pair.localCandidateId), report.get(pair.remoteCandidateId)].some(
        (candidate) => candidate?.candidateType === 'relay',
      )
    : null;

  // How loud the remote side is now (0 to 1), for the active speaker highlight.
  const audio = stats.find((s) => s.type === 'inbound-rtp' && s.kind === 'audio');
  const audioLevel = typeof audio?.audioLevel === 'number' ? audio.audioLevel : null;

  return { roundTripTimeMs, packetLoss, relayed, audioLevel };
}
