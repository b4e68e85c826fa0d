// @ts-check
/**
 * The call page: wires the signaling connection, the mesh (who is in the call, one Peer to each),
 * the local media, chat and files to the view. Speaks exactly docs/signaling.md.
 */

import { ChatLog, historyPayload, makeChatMessage, parseChatPayload } from './chat.js';
import { FileReceiver, FileSender, fileChannelLabel, fileTransferId } from './files.js';
import { describeMediaError, listDevices, measureLevel, openLocalMedia, videoEncodingFor } from './media.js';
import { Mesh } from './mesh.js';
import { Peer } from './peer.js';
import { LATER_CLOSE_CODES, SignalingConnection, signalingUrl } from './signaling.js';
import { CallView, formatBytes } from './ui.js';
/** @import { MeshEvent, Remote as MeshRemote } from './mesh.js' */
/** @import { PeerDataChannelEvent, PeerErrorEvent, PeerRebuildEvent, PeerTrackEvent } from './peer.js' */
/** @import { SignalingEndedEvent, SignalingMessageEvent, SignalingStatusEvent } from './signaling.js' */

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

const local = {
  /** @type {MediaStream | null} */ stream: null,
  /** @type {MediaStreamTrack | null} */ screen: null,
  state: { audio: true, video: true, screen: false, hand: false },
  sinkId: /** @type {string | undefined} */ (undefined),
  stopMeter: () => {},
};
const call = {
  /** @type {SignalingConnection | null} */ signaling: null,
  self: { id: '', name: config.name, role: 'participant' },
  /** @type {RTCIceServer[]} */ iceServers: [],
  welcomed: false,
  locked: false,
  ended: false,
};
/** @type {Mesh<CallPeer>} */
const mesh = new Mesh({ connect });
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
  const url = signalingUrl(location, config.websocketPath, instance);
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
      return mesh.join(message.peer);
    case 'peer-left':
      return mesh.leave(message.id, message.reason);
    case 'peer-state':
      return onPeerState(message.id, message.state);
    case 'peer-role':
      return onPeerRole(message.id, message.role);
    case 'signal':
      return void mesh.signal(message.from, message.data);
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
  // The offers before the view: the browser makes them while the page shows the call.
  mesh.welcome(welcome);
  view.showLobby(false);
  view.setTileName('self', `${welcome.self.name} (you)`);
  showHostControls();
  updatePeople();
}

/** @param {string} id @param {any} state */
function onPeerState(id, state) {
  const remote = mesh.get(id);
  if (!remote) return;
  remote.state = state;
  view.setTileState(id, state);
  if (state.hand) view.toast(`${remote.name} raised a hand.`);
  updatePeople();
}

/** @param {string} id @param {string} role */
function onPeerRole(id, role) {
  if (id === call.self.id) {
    call.self.role = role;
    view.toast(isHost() ? 'You are now a host of this call.' : 'You are no longer a host of this call.');
    showHostControls();
  } else {
    const remote = mesh.get(id);
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
    ...mesh.remotes().map((remote) => ({ id: remote.id, name: remote.name, role: remote.role, self: false, hand: remote.state.hand })),
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

function showChat() {
  view.showChat(chat.messages(), call.self.id);
}

// --- Files ------------------------------------------------------------------------------------

view.on('file', (file, target) => {
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
