// @ts-check
/**
 * The baseline of bench/join_time.py: on Join, open the camera and microphone, connect to the
 * bare relay, and make the call the way docs/signaling.md has it (the newcomer offers to every
 * peer in its welcome, the others answer; candidates trickle), with one RTCPeerConnection per
 * peer and nothing else: no data channels, no encodings, no renegotiation, no reconnection.
 *
 * It leaves the same performance marks as the call page (static/js/signaling.js, peer.js), so
 * that the two timelines can be laid side by side. The relay's address is the `relay` parameter
 * of the page's own address.
 */

const relayUrl = /** @type {string} */ (new URLSearchParams(location.search).get('relay'));
const button = /** @type {HTMLButtonElement} */ (document.getElementById('join-button'));
const localVideo = /** @type {HTMLVideoElement} */ (document.getElementById('local'));
const remoteVideo = /** @type {HTMLVideoElement} */ (document.getElementById('remote'));

/** @type {Map<string, {pc: RTCPeerConnection, pending: (RTCIceCandidateInit | null)[]}>} */
const peers = new Map();
/** @type {RTCIceServer[]} */
let iceServers = [];

button.addEventListener('click', () => void join());

async function join() {
  button.disabled = true;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: true,
    video: { width: { ideal: 1280 }, height: { ideal: 720 } },
  });
  performance.mark('media:open');
  localVideo.srcObject = stream;
  const socket = new WebSocket(relayUrl);
  /** @param {object} message */
  const send = (message) => socket.send(JSON.stringify(message));

  /** @param {string} id */
  function connection(id) {
    const pc = new RTCPeerConnection({ iceServers });
    const peer = { pc, pending: /** @type {(RTCIceCandidateInit | null)[]} */ ([]) };
    peers.set(id, peer);
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    pc.addEventListener('icecandidate', ({ candidate }) => {
      send({ type: 'signal', to: id, data: { candidate: candidate ? candidate.toJSON() : null } });
    });
    pc.addEventListener('iceconnectionstatechange', () => {
      if (pc.iceConnectionState === 'connected') performance.mark('peer:ice-connected');
    });
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'connected') performance.mark('peer:connected');
    });
    pc.addEventListener('track', ({ track, streams }) => {
      if (track.kind === 'video') performance.mark('peer:track');
      remoteVideo.srcObject = streams[0];
    });
    return peer;
  }

  /** @param {string} from @param {any} data */
  async function onSignal(from, data) {
    const peer = peers.get(from) ?? connection(from);
    if (data.description) {
      const { type } = data.description;
      performance.mark(type === 'offer' ? 'peer:offer-received' : 'peer:answer-received');
      await peer.pc.setRemoteDescription(data.description);
      for (const candidate of peer.pending.splice(0)) void addCandidate(peer.pc, candidate);
      if (type === 'offer') {
        await peer.pc.setLocalDescription(await peer.pc.createAnswer());
        send({ type: 'signal', to: from, data: { description: peer.pc.localDescription?.toJSON() } });
        performance.mark('peer:answer-sent');
      }
    } else if (!peer.pc.remoteDescription) {
      peer.pending.push(data.candidate);
    } else {
      await addCandidate(peer.pc, data.candidate);
    }
  }

  /** @param {any} welcome */
  async function onWelcome(welcome) {
    iceServers = welcome.iceServers;
    for (const info of welcome.peers) {
      const { pc } = connection(info.id);
      await pc.setLocalDescription(await pc.createOffer());
      performance.mark('peer:offer-created');
      send({ type: 'signal', to: info.id, data: { description: pc.localDescription?.toJSON() } });
      performance.mark('peer:offer-sent');
    }
  }

  socket.addEventListener('open', () => performance.mark('signaling:open'));
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'welcome') {
      performance.mark('signaling:welcome');
      void onWelcome(message);
    } else if (message.type === 'signal') {
      void onSignal(message.from, message.data);
    } else if (message.type === 'peer-left') {
      peers.get(message.id)?.pc.close();
      peers.delete(message.id);
    }
  });
}

/** @param {RTCPeerConnection} pc @param {RTCIceCandidateInit | null} candidate */
function addCandidate(pc, candidate) {
  return (candidate ? pc.addIceCandidate(candidate) : pc.addIceCandidate()).catch(() => {});
}
