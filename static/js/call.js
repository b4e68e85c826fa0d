// @ts-check
/**
 * The call page: wires the signaling connection, the mesh (who is in the call, one Peer to each)
 * or the media server's connections (sfu.js), the local media, chat and files to the view.
 * Speaks exactly docs/signaling.md, protocol 2.
 */

import { ChatLog, historyPayload, makeChatMessage, parseChatPayload, parseServerChat, serverHistoryMessage } from './chat.js';
import { FileReceiver, FileSender, fileChannelLabel, fileTransferId, parseSharedFile, uploadFile } from './files.js';
import { describeMediaError, listDevices, measureLevel, openLocalMedia, videoEncodingFor } from './media.js';
import { Mesh } from './mesh.js';
import { Peer, summarizeStats } from './peer.js';
import { LATER_CLOSE_CODES, SignalingConnection, signalingUrl } from './signaling.js';
import { DEFAULT_LAST_N, SfuSession, planReception, receptionChanges, tileKey } from './sfu.js';
import { CallView, formatBytes } from './ui.js';
/** @import { MeshEvent, Remote as MeshRemote } from './mesh.js' */
/** @import { PeerDataChannelEvent, PeerErrorEvent, PeerRebuildEvent, PeerTrackEvent } from './peer.js' */
/** @import { SignalingEndedEvent, SignalingMessageEvent, SignalingStatusEvent } from './signaling.js' */
/** @import { PeerInfo, PeerState } from './mesh.js' */
/** @import { ReceivedStream, SfuErrorEvent, SfuStreamsEvent } from './sfu.js' */

const config = JSON.parse(/** @type {HTMLElement} */ (document.getElementById('call-config')).textContent ?? '{}');
const view = new CallView();

/** The mesh carries video well up to about this many people. */
const MESH_COMFORT = 6;

/** A Peer with what this page sends to it and receives from it, both new with each connection. */
class CallPeer extends Peer {
  stream = new MediaStream();
  /** @type {Map<string, RTCRtpSender>} by local track kind ("audio", "video"), or "screen" */
  senders = new Map();
}

/** @typedef {MeshRemote<CallPeer>} Remote */

/**
 * A person in a call through the media server: no connection to them of our own, only what the
 * subscription brings of theirs, their camera (and microphone) and their screen.
 */
class SfuLink {
  stream = new MediaStream();
  screen = new MediaStream();
  connectionState = 'connected';
  start() {}
  handleSignal() {}
  close() {
    this.connectionState = 'closed';
  }
}

/** @typedef {MeshRemote<SfuLink>} SfuRemote */

const local = {
  /** @type {MediaStream | null} */ stream: null,
  /** @type {MediaStreamTrack | null} */ screen: null,
  state: { audio: true, video: true, screen: false, hand: false },
  sinkId: /** @type {string | undefined} */ (undefined),
  stopMeter: () => {},
};
const call = {
  /** @type {SignalingConnection | null} */ signaling: null,
  self: { id: '', name: config.name, role: 'participant', instance: '' },
  /** @type {RTCIceServer[]} */ iceServers: [],
  welcomed: false,
  locked: false,
  ended: false,
  /** How the call's media travel now: "mesh" (peer connections) or "sfu" (the media server). */
  mode: /** @type {'mesh' | 'sfu'} */ ('mesh'),
  /** @type {SfuSession | null} this page's connections to the media server, in sfu mode */
  sfu: null,
  lastN: Number(config.lastN) > 0 ? Number(config.lastN) : DEFAULT_LAST_N,
};
/** @type {Mesh<CallPeer>} */
const mesh = new Mesh({ connect });
/** Who is in the call when it goes through the media server. @type {Mesh<SfuLink>} */
const sfuPeople = new Mesh({ connect: () => new SfuLink() });
const reception = {
  /** @type {ReceivedStream[]} what the subscription carries now */
  streams: [],
  /** @type {Map<string, import('./sfu.js').Reception>} what was asked of the server, by mid */
  asked: new Map(),
  /** @type {string[]} peer ids, the most recent speaker first */
  speakers: [],
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  timer: undefined,
};
const chat = new ChatLog();
// Those to whom this page handed the chat so far, once each, whatever their connection.
/** @type {WeakSet<Remote>} */
const historySent = new WeakSet();
let unread = 0;
/** @type {ReturnType<typeof setInterval> | undefined} */
let peoplePoll;
// This page's name across reconnections, so the others keep their media with it.
const instance = crypto.randomUUID().replaceAll('-', '');

// --- Pre-join ---------------------------------------------------------------------------------

function stopMeter() {
  local.stopMeter();
  local.stopMeter = () => {};
}

async function prepare(choice = {}) {
  stopMeter();
  for (const track of local.stream?.getTracks() ?? []) track.stop();
  const { stream, problem } = await openLocalMedia(navigator.mediaDevices, choice);
  local.stream = stream;
  view.showPreview(stream);
  view.setPreviewOff(!stream?.getVideoTracks().length);
  view.showPrejoinProblem(problem?.message ?? null, !stream);
  view.setJoinEnabled(Boolean(stream));
  if (stream) local.stopMeter = measureLevel(stream, (level) => view.setLevel(level));
  const devices = await listDevices(navigator.mediaDevices).catch(() => ({ cameras: [], microphones: [], speakers: [] }));
  view.showDevices(
    devices,
    {
      camera: stream?.getVideoTracks()[0]?.getSettings().deviceId,
      microphone: stream?.getAudioTracks()[0]?.getSettings().deviceId,
    },
    'setSinkId' in HTMLMediaElement.prototype,
  );
}

/** Show who is in the call on the pre-join screen, until the person joins. */
async function refreshPeopleInCall() {
  if (call.welcomed || call.ended) {
    stopPeoplePoll();
    return;
  }
  try {
    const response = await fetch(config.peopleUrl, { credentials: 'same-origin' });
    // Access can end while the page is open (a lock, a ban): asking again would not help.
    if (response.status === 403) stopPeoplePoll();
    else if (response.ok) view.showPrejoinPeople((await response.json()).people);
  } catch {
    // The list is a courtesy; joining works without it.
  }
}

function stopPeoplePoll() {
  clearInterval(peoplePoll);
  peoplePoll = undefined;
}

/** @param {{muted: boolean, cameraOff: boolean}} options */
function join(options) {
  // The websocket's handshake goes on while the page turns to the call.
  // Protocol 2: this page can take part in calls through the media server.
  const url = `${signalingUrl(location, config.websocketPath, instance)}&protocol=2`;
  call.signaling = new SignalingConnection(url);
  call.signaling.addEventListener('message', (event) => onMessage(/** @type {SignalingMessageEvent} */ (event).message));
  call.signaling.addEventListener('status', (event) => view.setConnection(/** @type {SignalingStatusEvent} */ (event).status));
  call.signaling.addEventListener('ended', (event) => {
    // The server says why, in the site's language; the page's own sentence is for a silent close.
    const { code, error } = /** @type {SignalingEndedEvent} */ (event);
    end(error?.message ?? config.endings.closed, LATER_CLOSE_CODES.has(code));
  });
  call.signaling.connect();
  // The level meter is on the pre-join screen only.
  stopMeter();
  for (const track of local.stream?.getAudioTracks() ?? []) track.enabled = !options.muted;
  for (const track of local.stream?.getVideoTracks() ?? []) track.enabled = !options.cameraOff;
  local.state.audio = Boolean(local.stream?.getAudioTracks().length) && !options.muted;
  local.state.video = Boolean(local.stream?.getVideoTracks().length) && !options.cameraOff;
  view.enterCall();
  view.tile('self', call.self.name, true);
  view.setTileStream('self', local.stream ?? new MediaStream(), undefined);
  view.setTileState('self', local.state);
  showControls();
}

view.on('join', () => join(view.startOptions()));
view.on('join-receive-only', () => join({ muted: true, cameraOff: true }));
view.on('camera-change', (deviceId) => switchDevice('video', deviceId));
view.on('mic-change', (deviceId) => switchDevice('audio', deviceId));
view.on('speaker-change', (deviceId) => {
  local.sinkId = deviceId;
  view.setSpeaker(deviceId);
});

// --- Signaling messages -----------------------------------------------------------------------

/** @param {any} message */
function onMessage(message) {
  switch (message.type) {
    case 'welcome':
      return onWelcome(message);
    case 'lobby':
      return view.showLobby(true);
    case 'peer-joined':
      return call.mode === 'sfu' ? onSfuPeerJoined(message.peer) : mesh.join(message.peer);
    case 'peer-left':
      return call.mode === 'sfu' ? sfuPeople.leave(message.id, message.reason) : mesh.leave(message.id, message.reason);
    case 'peer-state':
      return onPeerState(message.id, message.state);
    case 'peer-role':
      return onPeerRole(message.id, message.role);
    case 'signal':
      return call.mode === 'mesh' ? void mesh.signal(message.from, message.data) : undefined;
    case 'media':
      return onMedia(message.mode);
    case 'published':
    case 'subscription':
    case 'trickle':
      return void call.sfu?.handle(message);
    case 'chat':
    case 'chat-history':
      return onServerChat(message);
    case 'file':
      return onSharedFile(message);
    case 'knock':
      return view.addLobbyEntry(message.peer);
    case 'lobby-left':
      return view.removeLobbyEntry(message.id);
    case 'mute-request':
      return onMuteRequest(message.by);
    case 'room':
      call.locked = message.room.locked;
      view.toast(call.locked ? 'The room is now locked.' : 'The room is unlocked.');
      return showHostControls();
    case 'error':
      if (message.code === 'media-unavailable') {
        // The server tries again on its own; a feed it could not take is offered again later.
        const session = call.sfu;
        setTimeout(() => session?.retryUnanswered(), 3000);
        return undefined;
      }
      // Endings come with a close, which says it to the person; anything else is a client bug.
      if (!['kicked', 'ended', 'denied', 'replaced', 'unavailable', 'timed-out'].includes(message.code)) console.warn('signaling error', message);
      return undefined;
    default:
      return undefined;
  }
}

/** @param {any} welcome */
function onWelcome(welcome) {
  call.welcomed = true;
  call.self = welcome.self;
  call.iceServers = welcome.iceServers;
  call.locked = welcome.room.locked;
  sendState();
  if (welcome.media?.mode === 'sfu') {
    if (call.mode === 'mesh') switchToSfu();
    sfuPeople.welcome(welcome);
    // A new connection is a new peer to the media server: publish anew.
    startSfu();
  } else {
    if (call.mode === 'sfu') leaveSfu();
    // The offers before the view: the browser makes them while the page shows the call.
    mesh.welcome(welcome);
  }
  view.showLobby(false);
  view.setTileName('self', `${welcome.self.name} (you)`);
  showHostControls();
  updatePeople();
}

/** @param {string} id @param {any} state */
function onPeerState(id, state) {
  const remote = findRemote(id);
  if (!remote) return;
  remote.state = state;
  view.setTileState(id, tileState(state));
  if (state.hand) view.toast(`${remote.name} raised a hand.`);
  updatePeople();
  scheduleReception();
}

/** @param {string} id @param {string} role */
function onPeerRole(id, role) {
  if (id === call.self.id) {
    call.self.role = role;
    view.toast(isHost() ? 'You are now a host of this call.' : 'You are no longer a host of this call.');
    showHostControls();
  } else {
    const remote = findRemote(id);
    if (remote) remote.role = role;
  }
  updatePeople();
}

/** @param {{id: string, name: string}} by */
function onMuteRequest(by) {
  if (local.state.audio) toggleMute();
  view.toast(`${by.name} asked you to mute. Unmute when you want to speak.`);
}

// --- The mesh ---------------------------------------------------------------------------------

mesh.addEventListener('add', (event) => {
  const { remote } = /** @type {MeshEvent<CallPeer>} */ (event);
  view.tile(remote.id, remote.name);
  view.setTileStream(remote.id, remote.connection.stream, local.sinkId);
  view.setTileState(remote.id, remote.state);
  adaptToSize();
  updatePeople();
});
mesh.addEventListener('update', (event) => {
  const { remote, previousId } = /** @type {MeshEvent<CallPeer>} */ (event);
  if (previousId) view.renameTile(previousId, remote.id);
  view.setTileName(remote.id, remote.name);
  view.setTileState(remote.id, remote.state);
  updatePeople();
});
mesh.addEventListener('remove', (event) => {
  view.removeTile(/** @type {MeshEvent<CallPeer>} */ (event).remote.id);
  adaptToSize();
  updatePeople();
});

/** Make a connection to a remote, with local media, chat and file channels. */
function connect(/** @type {Remote} */ remote) {
  const peer = new CallPeer({
    id: remote.id,
    polite: remote.polite,
    iceServers: call.iceServers,
    sendSignal: (data) => call.signaling?.send({ type: 'signal', to: remote.id, data }),
  });
  for (const track of local.stream?.getTracks() ?? []) {
    peer.senders.set(track.kind, peer.addTrack(track, /** @type {MediaStream} */ (local.stream)));
  }
  if (local.screen) replaceOrAddVideo(peer, local.screen);
  for (const kind of /** @type {const} */ (['audio', 'video'])) {
    if (!peer.senders.has(kind)) peer.addReceiver(kind);
  }
  peer.addEventListener('track', (event) => {
    const { track } = /** @type {PeerTrackEvent} */ (event);
    for (const old of peer.stream.getTracks()) if (old.kind === track.kind) peer.stream.removeTrack(old);
    peer.stream.addTrack(track);
    view.setTileStream(remote.id, peer.stream, local.sinkId);
  });
  peer.addEventListener('datachannel', (event) => receiveFile(remote, /** @type {PeerDataChannelEvent} */ (event).channel));
  peer.addEventListener('rebuild', (event) => {
    if (remote.connection !== peer) return;
    // The history, if any, went over the old connection.
    historySent.add(remote);
    mesh.reconnect(remote, /** @type {PeerRebuildEvent} */ (event).signal);
    view.setTileStream(remote.id, remote.connection.stream, local.sinkId);
  });
  peer.addEventListener('error', (event) => console.warn('peer connection', remote.name, /** @type {PeerErrorEvent} */ (event).error));
  const channel = peer.chatChannel;
  channel.addEventListener('open', () => {
    // The one who was here first hands the chat so far to the newcomer.
    if (remote.polite && !historySent.has(remote) && chat.size > 0) {
      historySent.add(remote);
      channel.send(historyPayload(chat, (id) => (id === call.self.id ? call.self.name : mesh.get(id)?.name)));
    }
  });
  channel.addEventListener('message', (event) => onChatPayload(remote, event.data));
  applyEncoding(peer);
  return peer;
}

/** Above four people, send less video to each so that the total stays sensible. */
function adaptToSize() {
  if (call.mode === 'sfu') {
    view.setMeshNotice(null);
    return;
  }
  const people = mesh.size + 1;
  for (const remote of mesh.remotes()) applyEncoding(remote.connection);
  view.setMeshNotice(
    people >= MESH_COMFORT - 1
      ? `${people} people: calls are peer-to-peer, so video is sent at lower quality to keep up. Beyond ${MESH_COMFORT} people it may stutter.`
      : null,
  );
}

function applyEncoding(/** @type {CallPeer} */ peer) {
  const sender = peer.senders.get('video');
  if (!sender?.getParameters) return;
  const parameters = sender.getParameters();
  if (!parameters.encodings?.length) return; // not negotiated yet; applied on the next change
  const limits = videoEncodingFor(mesh.size + 1);
  for (const encoding of parameters.encodings) Object.assign(encoding, limits);
  void sender.setParameters(parameters).catch(() => {});
}

// --- Through the media server -----------------------------------------------------------------

/** @param {string} id */
function findRemote(id) {
  return call.mode === 'sfu' ? sfuPeople.get(id) : mesh.get(id);
}

/** Everyone else in the call, whichever way its media travel. */
function remotesNow() {
  return call.mode === 'sfu' ? sfuPeople.remotes() : mesh.remotes();
}

/**
 * The state a person's own tile shows. Through the media server a shared screen has a tile of
 * its own, so the camera's tile does not take the stage for it.
 * @param {PeerState} state
 */
function tileState(state) {
  return call.mode === 'sfu' ? { ...state, screen: false } : state;
}

/** @param {{id: string, instance: string, name: string, role: string, state: PeerState}} remote */
function peerInfo({ id, instance, name, role, state }) {
  return /** @type {PeerInfo} */ ({ id, instance, name, role, state });
}

/**
 * The call moves to the media server: close every peer connection, keep the tiles (and the local
 * tracks), and know the same people as people of the media server's call.
 */
function switchToSfu() {
  const present = mesh.remotes().map(peerInfo);
  call.mode = 'sfu';
  mesh.close();
  sfuPeople.welcome({ self: { instance: call.self.instance }, peers: present });
  view.setMeshNotice(null);
}

/** Back to peer-to-peer (a reconnection found the call there): forget the media server's call. */
function leaveSfu() {
  call.sfu?.close();
  call.sfu = null;
  for (const remote of sfuPeople.remotes()) {
    view.removeTile(remote.id);
    view.removeTile(tileKey(remote.id, 'screen'));
  }
  sfuPeople.close();
  reception.streams = [];
  call.mode = 'mesh';
}

/** @param {string} mode */
function onMedia(mode) {
  if (mode !== 'sfu') return;
  if (call.mode === 'mesh') switchToSfu();
  // The first move, or the media server restarted: publish anew either way.
  startSfu();
}

/** Open new connections to the media server (closing any old ones) and publish this page's feeds. */
function startSfu() {
  call.sfu?.close();
  reception.asked.clear();
  const session = new SfuSession({ iceServers: call.iceServers, send: (message) => call.signaling?.send(message) });
  session.addEventListener('streams', (event) => {
    if (call.sfu === session) onSfuStreams(/** @type {SfuStreamsEvent} */ (event).streams);
  });
  session.addEventListener('error', (event) => {
    const { connection, error } = /** @type {SfuErrorEvent} */ (event);
    console.warn('media server connection', connection, error);
  });
  call.sfu = session;
  void session.publish('camera', local.stream?.getTracks() ?? []);
  if (local.screen) void session.publish('screen', [local.screen]);
}

/** @param {PeerInfo} info */
function onSfuPeerJoined(info) {
  const returning = info.instance === call.self.instance || sfuPeople.remotes().some((remote) => remote.instance && remote.instance === info.instance);
  sfuPeople.join(info);
  // A newcomer gets the chat so far from everyone already here; it keeps one of each message.
  if (!returning && chat.size > 0) {
    call.signaling?.send(serverHistoryMessage(chat, info.id, (id) => (id === call.self.id ? call.self.name : sfuPeople.get(id)?.name)));
  }
}

/**
 * Put what the subscription carries on the tiles: each person's camera and microphone on their
 * tile, a shared screen on a tile of its own.
 * @param {ReceivedStream[]} streams
 */
function onSfuStreams(streams) {
  reception.streams = streams;
  // Sections can be reused for other feeds: ask for everything again.
  reception.asked.clear();
  for (const remote of sfuPeople.remotes()) showSfuRemote(remote);
  scheduleReception(0);
}

/** @param {SfuRemote} remote */
function showSfuRemote(remote) {
  const link = remote.connection;
  const tracksOf = (/** @type {string} */ feed) =>
    reception.streams.filter((stream) => stream.peer === remote.id && stream.feed === feed).map((stream) => stream.track);
  link.stream = sameTracks(link.stream, tracksOf('camera'));
  view.setTileStream(remote.id, link.stream, local.sinkId);
  const screenTracks = tracksOf('screen');
  const screenId = tileKey(remote.id, 'screen');
  if (screenTracks.length) {
    link.screen = sameTracks(link.screen, screenTracks);
    view.tile(screenId, `${remote.name} (screen)`, false, { screen: true });
    view.setTileStream(screenId, link.screen, local.sinkId);
    view.setTileState(screenId, { audio: true, video: true, screen: true, hand: false });
  } else {
    view.removeTile(screenId);
  }
}

/**
 * Return `stream` if it holds exactly these tracks, or else a new stream of them: a video
 * element starts afresh with a new stream rather than keep a track that ended.
 * @param {MediaStream} stream
 * @param {MediaStreamTrack[]} tracks
 */
function sameTracks(stream, tracks) {
  const now = stream.getTracks();
  if (now.length === tracks.length && tracks.every((track) => now.includes(track))) return stream;
  return new MediaStream(tracks);
}

sfuPeople.addEventListener('add', (event) => {
  const { remote } = /** @type {MeshEvent<SfuLink>} */ (event);
  view.tile(remote.id, remote.name);
  view.setTileState(remote.id, tileState(remote.state));
  showSfuRemote(remote);
  updatePeople();
  scheduleReception();
});
sfuPeople.addEventListener('update', (event) => {
  const { remote, previousId } = /** @type {MeshEvent<SfuLink>} */ (event);
  if (previousId) {
    view.renameTile(previousId, remote.id);
    view.removeTile(tileKey(previousId, 'screen'));
    showSfuRemote(remote);
  }
  view.setTileName(remote.id, remote.name);
  view.setTileState(remote.id, tileState(remote.state));
  updatePeople();
});
sfuPeople.addEventListener('remove', (event) => {
  const { remote } = /** @type {MeshEvent<SfuLink>} */ (event);
  view.removeTile(remote.id);
  view.removeTile(tileKey(remote.id, 'screen'));
  updatePeople();
  scheduleReception();
});

/**
 * Ask the media server for the videos this page shows, each at the layer its tile's size needs,
 * soon: changes that come together (a layout, a speaker) make one `receive` message.
 */
function scheduleReception(delay = 300) {
  if (call.mode !== 'sfu') return;
  clearTimeout(reception.timer);
  reception.timer = setTimeout(sendReception, delay);
}

function sendReception() {
  if (call.mode !== 'sfu' || !call.sfu || !reception.streams.length) return;
  const cameraOff = new Set(sfuPeople.remotes().filter((remote) => !remote.state.video).map((remote) => remote.id));
  const plan = planReception({
    streams: reception.streams,
    widths: view.tileWidths(),
    speakers: reception.speakers,
    pinned: view.pinnedId,
    cameraOff,
    hidden: document.visibilityState === 'hidden',
    lastN: call.lastN,
  });
  const streams = receptionChanges(reception.asked, plan);
  if (streams.length) call.signaling?.send({ type: 'receive', streams });
}

view.on('layout', () => scheduleReception());
// A hidden page shows no video: none is received until it shows again.
document.addEventListener('visibilitychange', () => scheduleReception(0));

/**
 * How loud each person is now, from the subscription's statistics, and how it looks.
 * @param {SfuSession} session
 */
async function sfuQuality(session) {
  const report = await session.subscriptionStats();
  if (!report) return null;
  const summary = summarizeStats(report);
  /** @type {Map<string, number>} */
  const levels = new Map();
  for (const stats of report.values()) {
    if (stats.type !== 'inbound-rtp' || stats.kind !== 'audio' || typeof stats.audioLevel !== 'number') continue;
    const stream = reception.streams.find((each) => each.mid === stats.mid || each.track.id === stats.trackIdentifier);
    if (stream) levels.set(stream.peer, Math.max(levels.get(stream.peer) ?? 0, stats.audioLevel));
  }
  return { summary, levels };
}

// --- Own media --------------------------------------------------------------------------------

function sendState() {
  call.signaling?.send({ type: 'state', state: local.state });
  view.setTileState('self', local.state);
  showControls();
}

function showControls() {
  view.setControls({
    muted: !local.state.audio,
    cameraOff: !local.state.video,
    sharing: local.state.screen,
    hand: local.state.hand,
    hasAudio: Boolean(local.stream?.getAudioTracks().length),
    hasVideo: Boolean(local.stream?.getVideoTracks().length),
  });
}

function toggleMute() {
  const tracks = local.stream?.getAudioTracks() ?? [];
  if (!tracks.length) return;
  local.state.audio = !local.state.audio;
  for (const track of tracks) track.enabled = local.state.audio;
  sendState();
}

function toggleCamera() {
  const tracks = local.stream?.getVideoTracks() ?? [];
  if (!tracks.length) return;
  local.state.video = !local.state.video;
  for (const track of tracks) track.enabled = local.state.video;
  sendState();
}

/** @param {'audio' | 'video'} kind @param {string} deviceId */
async function switchDevice(kind, deviceId) {
  if (!call.welcomed && !document.getElementById('prejoin')?.hidden) {
    const current = local.stream;
    await prepare({
      audioDeviceId: kind === 'audio' ? deviceId : current?.getAudioTracks()[0]?.getSettings().deviceId,
      videoDeviceId: kind === 'video' ? deviceId : current?.getVideoTracks()[0]?.getSettings().deviceId,
    });
    return;
  }
  try {
    const fresh = await navigator.mediaDevices.getUserMedia({ [kind]: { deviceId: { exact: deviceId } } });
    const track = fresh.getTracks()[0];
    track.enabled = kind === 'audio' ? local.state.audio : local.state.video;
    const old = kind === 'audio' ? local.stream?.getAudioTracks()[0] : local.stream?.getVideoTracks()[0];
    if (old) {
      local.stream?.removeTrack(old);
      old.stop();
    }
    local.stream?.addTrack(track);
    for (const { connection } of mesh.remotes()) {
      const sender = connection.senders.get(kind);
      if (sender && !(kind === 'video' && local.screen)) void connection.replaceTrack(sender, track);
    }
    // Through the media server the camera is a feed of its own, whatever the screen does.
    void call.sfu?.sender('camera', kind)?.replaceTrack(track).catch(() => {});
  } catch (error) {
    view.toast(describeMediaError(error).message);
  }
}

async function toggleScreen() {
  if (local.screen) return stopScreen();
  try {
    const display = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    local.screen = display.getVideoTracks()[0];
    local.screen.addEventListener('ended', () => stopScreen());
    for (const { connection } of mesh.remotes()) replaceOrAddVideo(connection, local.screen);
    void call.sfu?.publish('screen', [local.screen]);
    view.setTileStream('self', display, undefined);
    local.state.screen = true;
    sendState();
  } catch (error) {
    if (/** @type {any} */ (error)?.name !== 'NotAllowedError') view.toast('The screen could not be shared.');
  }
}

/**
 * Send the screen instead of the camera; a person with no camera adds a video track, which the
 * peers renegotiate (perfect negotiation makes that safe from either side).
 */
function replaceOrAddVideo(/** @type {CallPeer} */ peer, /** @type {MediaStreamTrack} */ track) {
  const sender = peer.senders.get('video');
  if (sender) void peer.replaceTrack(sender, track);
  else peer.senders.set('screen', peer.addTrack(track, new MediaStream([track])));
}

function stopScreen() {
  if (!local.screen) return;
  local.screen.stop();
  local.screen = null;
  const camera = local.stream?.getVideoTracks()[0] ?? null;
  for (const { connection } of mesh.remotes()) {
    const sender = connection.senders.get('video');
    if (sender) void connection.replaceTrack(sender, camera);
    const added = connection.senders.get('screen');
    if (added) {
      connection.removeTrack(added);
      connection.senders.delete('screen');
    }
  }
  call.sfu?.unpublish('screen');
  view.setTileStream('self', local.stream ?? new MediaStream(), undefined);
  local.state.screen = false;
  sendState();
}

view.on('mute', toggleMute);
view.on('camera', toggleCamera);
view.on('screen', () => void toggleScreen());
view.on('hand', () => {
  local.state.hand = !local.state.hand;
  sendState();
});
view.on('leave', () => {
  call.signaling?.close();
  end(config.endings.left, true);
});

// --- People and host actions ------------------------------------------------------------------

function updatePeople() {
  const people = [
    { id: call.self.id || 'self', name: call.self.name, role: call.self.role, self: true, hand: local.state.hand },
    ...remotesNow().map((remote) => ({ id: remote.id, name: remote.name, role: remote.role, self: false, hand: remote.state.hand })),
  ];
  view.showPeople(people, isHost());
}

function isHost() {
  return call.self.role === 'host' || call.self.role === 'cohost';
}

function showHostControls() {
  view.setHostControls(isHost(), call.locked);
}

view.on('admit', (id) => call.signaling?.send({ type: 'admit', id }));
view.on('deny', (id) => call.signaling?.send({ type: 'deny', id }));
view.on('kick', (id) => call.signaling?.send({ type: 'kick', id }));
view.on('mute-peer', (id) => call.signaling?.send({ type: 'mute', id }));
view.on('lock', () => call.signaling?.send({ type: 'lock', locked: !call.locked }));
view.on('end', () => {
  if (window.confirm('End the call for everyone?')) call.signaling?.send({ type: 'end' });
});

// --- Chat -------------------------------------------------------------------------------------

view.on('chat', (text) => {
  let message;
  try {
    message = makeChatMessage(text);
  } catch {
    view.toast('A message can be at most 4000 characters long.');
    return;
  }
  chat.add({ ...message, from: { id: call.self.id, name: call.self.name } });
  if (call.mode === 'sfu') {
    // Through the server, which stamps the author and echoes it back (the log keeps it once).
    call.signaling?.send(message);
    showChat();
    return;
  }
  const payload = JSON.stringify(message);
  for (const { connection } of mesh.remotes()) {
    if (connection.chatChannel.readyState === 'open') connection.chatChannel.send(payload);
  }
  showChat();
});

view.on('panel', (name, opening) => {
  if (name === 'chat' && opening) {
    unread = 0;
    view.setUnread(0);
  }
});

function onChatPayload(/** @type {Remote} */ remote, /** @type {unknown} */ raw) {
  const payload = parseChatPayload(raw);
  if (!payload) return;
  let added = 0;
  if (payload.type === 'chat') {
    const { type: _type, ...message } = payload;
    added += Number(chat.add({ ...message, from: { id: remote.id, name: remote.name } }));
  } else {
    for (const message of payload.messages) added += Number(chat.add(message));
  }
  if (added && !view.chatOpen) {
    unread += added;
    view.setUnread(unread);
  }
  showChat();
}

/** A `chat` or `chat-history` through the server (sfu mode). @param {unknown} message */
function onServerChat(message) {
  const entries = parseServerChat(message);
  if (!entries) return;
  let added = 0;
  for (const entry of entries) if (entry.from.id !== call.self.id) added += Number(chat.add(entry));
  // One's own message, echoed: known already unless this page lost it (a reconnection).
  for (const entry of entries) if (entry.from.id === call.self.id) chat.add(entry);
  if (added && !view.chatOpen) {
    unread += added;
    view.setUnread(unread);
  }
  showChat();
}

function showChat() {
  view.showChat(chat.messages(), call.self.id);
}

// --- Files ------------------------------------------------------------------------------------

view.on('file', (file, target) => {
  if (call.mode === 'sfu') return shareThroughSite(file);
  const targets = target === 'all' ? mesh.remotes() : mesh.remotes().filter((remote) => remote.id === target);
  if (!targets.length) {
    view.toast('There is nobody to send the file to yet.');
    return;
  }
  for (const remote of targets) {
    const label = fileChannelLabel();
    const channel = remote.connection.createDataChannel(label, { ordered: true });
    const sender = new FileSender(channel, file, { name: file.name, mime: file.type });
    const row = view.addTransfer(
      { id: /** @type {string} */ (fileTransferId(label)), direction: 'out', name: file.name, size: file.size, who: remote.name },
      () => sender.cancel(),
    );
    sender.addEventListener('progress', (event) => row.progress(/** @type {any} */ (event).bytes));
    sender.addEventListener('cancel', () => row.done('Cancelled'));
    sender.addEventListener('error', () => row.done('Failed'));
    void sender.send().then((sent) => sent && row.done(`Sent, ${formatBytes(file.size)}`));
  }
});

/**
 * In a call on the media server a file goes to the site once, and everyone gets a link to it.
 * @param {File} file
 */
function shareThroughSite(file) {
  if (file.size > config.fileMaxBytes) {
    view.toast(`Files shared in this call can be at most ${formatBytes(config.fileMaxBytes)}.`);
    return;
  }
  const upload = uploadFile(config.filesUrl, file, {
    peer: call.self.id,
    csrfToken: config.csrfToken,
    onProgress: (bytes) => row.progress(bytes),
  });
  const row = view.addTransfer(
    { id: crypto.randomUUID(), direction: 'out', name: file.name, size: file.size, who: 'everyone' },
    () => upload.cancel(),
  );
  upload.done.then(
    () => row.done(`Shared, ${formatBytes(file.size)}`),
    (/** @type {Error} */ error) => row.done(error.message === 'Cancelled' ? 'Cancelled' : `Failed: ${error.message}`),
  );
}

/** @param {any} message a `file` message: a file someone shared in a call on the media server */
function onSharedFile(message) {
  const shared = parseSharedFile(message);
  if (!shared || shared.from.id === call.self.id) return; // one's own is shown as it uploads
  const row = view.addTransfer(
    { id: shared.id, direction: 'in', name: shared.name, size: shared.size, who: shared.from.name },
    () => row.done('Dismissed'),
  );
  row.done(formatBytes(shared.size));
  row.download(shared.url, shared.name, shared.sha256);
  view.announcer.say(`${shared.from.name} shared a file, ${shared.name}.`);
}

function receiveFile(/** @type {Remote} */ remote, /** @type {RTCDataChannel} */ channel) {
  const id = fileTransferId(channel.label);
  if (!id) {
    channel.close();
    return;
  }
  const receiver = new FileReceiver(channel);
  /** @type {ReturnType<CallView['addTransfer']> | null} */
  let row = null;
  receiver.addEventListener('offer', () => {
    const offer = /** @type {any} */ (receiver.offer);
    row = view.addTransfer({ id, direction: 'in', name: offer.name, size: offer.size, who: remote.name }, () => receiver.cancel());
  });
  receiver.addEventListener('progress', (event) => row?.progress(/** @type {any} */ (event).bytes));
  receiver.addEventListener('complete', (event) => {
    const offer = /** @type {any} */ (receiver.offer);
    row?.done('Received and checked');
    row?.download(URL.createObjectURL(/** @type {any} */ (event).blob), offer.name, offer.sha256);
  });
  receiver.addEventListener('cancel', () => row?.done('Cancelled'));
  receiver.addEventListener('error', (event) => row?.done(`Failed: ${/** @type {any} */ (event).reason}`));
}

// --- Quality and the end ----------------------------------------------------------------------

setInterval(async () => {
  /** @type {string | null} */
  let loudest = null;
  let loudestLevel = 0.02;
  if (call.mode === 'sfu' && call.sfu) {
    const session = call.sfu;
    const quality = await sfuQuality(session).catch(() => null);
    if (!quality || call.sfu !== session) return;
    for (const remote of sfuPeople.remotes()) {
      view.setTileQuality(remote.id, quality.summary, session.subscriptionState);
      const level = quality.levels.get(remote.id) ?? 0;
      if (level > loudestLevel && remote.state.audio) {
        loudest = remote.id;
        loudestLevel = level;
      }
    }
    view.setActiveSpeaker(loudest);
    if (loudest && reception.speakers[0] !== loudest) {
      // The speaker moves into the videos received, if the last N had left them out.
      reception.speakers = [loudest, ...reception.speakers.filter((id) => id !== loudest)];
      scheduleReception(0);
    }
    return;
  }
  for (const remote of mesh.remotes()) {
    try {
      const stats = await remote.connection.getStatsSummary();
      view.setTileQuality(remote.id, stats, remote.connection.connectionState);
      if ((stats.audioLevel ?? 0) > loudestLevel && remote.state.audio) {
        loudest = remote.id;
        loudestLevel = stats.audioLevel ?? 0;
      }
    } catch {
      // A connection closing between two samples.
    }
  }
  view.setActiveSpeaker(loudest);
}, 2000);

/** @param {string} why @param {boolean} canJoinAgain */
function end(why, canJoinAgain) {
  if (call.ended) return;
  call.ended = true;
  mesh.close();
  call.sfu?.close();
  call.sfu = null;
  sfuPeople.close();
  local.screen?.stop();
  for (const track of local.stream?.getTracks() ?? []) track.stop();
  stopMeter();
  view.showEnded(why, canJoinAgain);
}

window.addEventListener('pagehide', () => call.signaling?.close());

void prepare();
// Never asked by someone the server would not tell: that would be a refusal every 5 s.
if (config.mayListPeople) {
  peoplePoll = setInterval(() => void refreshPeopleInCall(), 5000);
  void refreshPeopleInCall();
}
