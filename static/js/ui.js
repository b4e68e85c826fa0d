// @ts-check
/**
 * The call page's DOM and nothing else: it shows what call.js tells it, and reports what the
 * person does as named actions. Every piece of user text is set with textContent.
 */

/** @param {string} id */
function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the call page has no #${id}`);
  return element;
}

/**
 * @param {string} tag
 * @param {{className?: string, text?: string, attrs?: Record<string, string>}} [options]
 */
function make(tag, { className, text, attrs } = {}) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  for (const [name, value] of Object.entries(attrs ?? {})) element.setAttribute(name, value);
  return element;
}

/** @param {number} bytes */
export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(0)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

export class CallView {
  /** @type {Map<string, (...args: any[]) => void>} */
  #actions = new Map();
  #toastTimer = /** @type {any} */ (null);

  constructor() {
    this.preview = /** @type {HTMLVideoElement} */ (byId('preview'));
    this.tiles = byId('tiles');
    this.chatLog = byId('chat-log');
    this.peopleList = byId('people-list');
    this.lobbyList = byId('lobby-list');
    this.transfers = byId('transfers');
    this.fileTarget = /** @type {HTMLSelectElement} */ (byId('file-target'));
    this.#bind();
  }

  /**
   * Call `handler` when the person does `action`.
   * @param {string} action
   * @param {(...args: any[]) => void} handler
   */
  on(action, handler) {
    this.#actions.set(action, handler);
  }

  /** @param {string} action @param {...any} args */
  #do(action, ...args) {
    this.#actions.get(action)?.(...args);
  }

  #bind() {
    const buttons = {
      'join-button': 'join',
      'join-receive-only': 'join-receive-only',
      'mute-button': 'mute',
      'camera-button': 'camera',
      'screen-button': 'screen',
      'hand-button': 'hand',
      'leave-button': 'leave',
      'lock-button': 'lock',
      'end-button': 'end',
    };
    for (const [id, action] of Object.entries(buttons)) {
      byId(id).addEventListener('click', () => this.#do(action));
    }
    byId('chat-toggle').addEventListener('click', () => this.togglePanel('chat'));
    byId('people-toggle').addEventListener('click', () => this.togglePanel('people'));
    for (const [id, action] of [['camera-select', 'camera-change'], ['mic-select', 'mic-change'], ['speaker-select', 'speaker-change']]) {
      byId(id).addEventListener('change', (event) => this.#do(action, /** @type {HTMLSelectElement} */ (event.target).value));
    }
    for (const id of ['start-muted', 'start-camera-off']) {
      byId(id).addEventListener('change', () => this.#do('start-options', this.startOptions()));
    }
    byId('chat-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const input = /** @type {HTMLTextAreaElement} */ (byId('chat-input'));
      const text = input.value.trim();
      if (text) this.#do('chat', text);
      input.value = '';
    });
    byId('chat-input').addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey) {
        event.preventDefault();
        /** @type {HTMLFormElement} */ (byId('chat-form')).requestSubmit();
      }
    });
    const fileInput = /** @type {HTMLInputElement} */ (byId('file-input'));
    fileInput.addEventListener('change', () => {
      for (const file of fileInput.files ?? []) this.#do('file', file, this.fileTarget.value);
      fileInput.value = '';
    });
    const call = byId('call');
    call.addEventListener('dragover', (event) => event.preventDefault());
    call.addEventListener('drop', (event) => {
      event.preventDefault();
      for (const file of event.dataTransfer?.files ?? []) this.#do('file', file, this.fileTarget.value);
    });
    // Buttons inside lists: one listener each, reading the peer from the row.
    for (const list of [this.peopleList, this.lobbyList]) {
      list.addEventListener('click', (event) => {
        const button = /** @type {HTMLElement} */ (event.target).closest('button[data-action]');
        const row = button?.closest('[data-peer-id]');
        if (button && row) this.#do(button.getAttribute('data-action') ?? '', row.getAttribute('data-peer-id'));
      });
    }
    document.addEventListener('keydown', (event) => {
      const target = /** @type {HTMLElement} */ (event.target);
      if (event.ctrlKey || event.metaKey || event.altKey || target.closest('input, textarea, select')) return;
      if (byId('call').hidden) return;
      if (event.key === 'm' || event.key === 'M') this.#do('mute');
      if (event.key === 'v' || event.key === 'V') this.#do('camera');
    });
  }

  // --- Pre-join ---------------------------------------------------------------------------

  /** @param {MediaStream | null} stream */
  showPreview(stream) {
    this.preview.srcObject = stream;
  }

  /** @param {boolean} off */
  setPreviewOff(off) {
    byId('preview-off').hidden = !off;
    this.preview.hidden = off;
  }

  /** @param {number} level */
  setLevel(level) {
    /** @type {HTMLMeterElement} */ (byId('mic-level')).value = level;
  }

  /**
   * @param {{cameras: {id: string, label: string}[], microphones: {id: string, label: string}[], speakers: {id: string, label: string}[]}} devices
   * @param {{camera?: string, microphone?: string}} selected
   * @param {boolean} canPickSpeaker
   */
  showDevices(devices, selected, canPickSpeaker) {
    const fill = (/** @type {string} */ id, /** @type {{id: string, label: string}[]} */ list, /** @type {string | undefined} */ chosen) => {
      const select = /** @type {HTMLSelectElement} */ (byId(id));
      select.replaceChildren(...list.map((device) => make('option', { text: device.label, attrs: { value: device.id } })));
      if (chosen) select.value = chosen;
      select.disabled = list.length === 0;
    };
    fill('camera-select', devices.cameras, selected.camera);
    fill('mic-select', devices.microphones, selected.microphone);
    fill('speaker-select', devices.speakers, undefined);
    byId('speaker-field').hidden = !canPickSpeaker || devices.speakers.length === 0;
  }

  /** @param {string | null} message @param {boolean} receiveOnly offer joining without media */
  showPrejoinProblem(message, receiveOnly) {
    const box = byId('prejoin-error');
    box.textContent = message ?? '';
    box.hidden = !message;
    byId('join-receive-only').hidden = !receiveOnly;
  }

  /** @param {boolean} enabled */
  setJoinEnabled(enabled) {
    /** @type {HTMLButtonElement} */ (byId('join-button')).disabled = !enabled;
  }

  startOptions() {
    return {
      muted: /** @type {HTMLInputElement} */ (byId('start-muted')).checked,
      cameraOff: /** @type {HTMLInputElement} */ (byId('start-camera-off')).checked,
    };
  }

  /** @param {string[]} names */
  showPrejoinPeople(names) {
    byId('prejoin-people').replaceChildren(...names.map((name) => make('li', { text: name })));
    byId('prejoin-nobody').hidden = names.length > 0;
  }

  // --- The call ---------------------------------------------------------------------------

  enterCall() {
    byId('prejoin').hidden = true;
    byId('call').hidden = false;
  }

  /** @param {boolean} waiting */
  showLobby(waiting) {
    byId('lobby-notice').hidden = !waiting;
    this.tiles.hidden = waiting;
    document.querySelector('.controls')?.toggleAttribute('hidden', waiting);
  }

  /** @param {'connecting' | 'connected' | 'reconnecting' | 'closed'} status */
  setConnection(status) {
    const notice = byId('connection-notice');
    const state = status === 'reconnecting' ? 'reconnecting' : 'connected';
    notice.dataset.state = state;
    notice.hidden = state !== 'reconnecting';
  }

  /** @param {string} why @param {boolean} canJoinAgain */
  showEnded(why, canJoinAgain) {
    byId('prejoin').hidden = true;
    byId('call').hidden = true;
    byId('call-ended-reason').textContent = why;
    byId('join-again').hidden = !canJoinAgain;
    byId('call-ended').hidden = false;
  }

  /** @param {string | null} text */
  setMeshNotice(text) {
    const notice = byId('mesh-notice');
    notice.textContent = text ?? '';
    notice.hidden = !text;
  }

  /** @param {string} text */
  toast(text) {
    const toast = byId('toast');
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(this.#toastTimer);
    this.#toastTimer = setTimeout(() => (toast.hidden = true), 6000);
  }

  // --- Tiles ------------------------------------------------------------------------------

  /**
   * Show a person's tile, or return the one shown already.
   * @param {string} id @param {string} name @param {boolean} self
   */
  tile(id, name, self = false) {
    let tile = /** @type {HTMLElement | null} */ (this.tiles.querySelector(`.tile[data-peer-id="${CSS.escape(id)}"]`));
    if (!tile) {
      tile = make('figure', { className: self ? 'tile tile-self' : 'tile', attrs: { 'data-peer-id': id } });
      const video = /** @type {HTMLVideoElement} */ (make('video', { attrs: { autoplay: '', playsinline: '' } }));
      video.muted = self; // never play one's own microphone back
      const caption = make('figcaption', { className: 'tile-caption' });
      caption.append(
        make('span', { className: 'tile-name' }),
        make('span', { className: 'tile-icons' }),
        make('span', { className: 'tile-quality' }),
      );
      tile.append(video, make('div', { className: 'tile-placeholder' }), caption);
      if (self) this.tiles.prepend(tile);
      else this.tiles.append(tile);
    }
    this.setTileName(id, name);
    this.#layout();
    return tile;
  }

  /** @param {string} id @param {string} name */
  setTileName(id, name) {
    const tile = this.#tile(id);
    if (!tile) return;
    tile.dataset.name = name;
    /** @type {HTMLElement} */ (tile.querySelector('.tile-name')).textContent = name;
    /** @type {HTMLElement} */ (tile.querySelector('.tile-placeholder')).textContent = name.slice(0, 1).toUpperCase();
  }

  /** @param {string} oldId @param {string} newId */
  renameTile(oldId, newId) {
    this.#tile(oldId)?.setAttribute('data-peer-id', newId);
  }

  /** @param {string} id @param {MediaStream} stream @param {string | undefined} sinkId */
  setTileStream(id, stream, sinkId) {
    const video = /** @type {HTMLVideoElement | null} */ (this.#tile(id)?.querySelector('video'));
    if (!video) return;
    if (video.srcObject !== stream) video.srcObject = stream;
    if (sinkId && 'setSinkId' in video) void (/** @type {any} */ (video).setSinkId(sinkId).catch(() => {}));
    void video.play().catch(() => {});
  }

  /** @param {string | undefined} sinkId */
  setSpeaker(sinkId) {
    for (const video of this.tiles.querySelectorAll('.tile:not(.tile-self) video')) {
      if (sinkId && 'setSinkId' in video) void (/** @type {any} */ (video).setSinkId(sinkId).catch(() => {}));
    }
  }

  /** @param {string} id @param {{audio: boolean, video: boolean, screen: boolean, hand: boolean}} state */
  setTileState(id, state) {
    const tile = this.#tile(id);
    if (!tile) return;
    tile.classList.toggle('video-off', !state.video && !state.screen);
    tile.classList.toggle('hand-up', state.hand);
    const icons = [];
    if (!state.audio) icons.push('muted');
    if (!state.video && !state.screen) icons.push('camera off');
    if (state.screen) icons.push('sharing screen');
    if (state.hand) icons.push('✋ hand raised');
    /** @type {HTMLElement} */ (tile.querySelector('.tile-icons')).textContent = icons.join(' · ');
  }

  /**
   * @param {string} id
   * @param {{roundTripTimeMs: number | null, packetLoss: number | null, relayed: boolean | null}} stats
   * @param {string} connectionState
   */
  setTileQuality(id, stats, connectionState) {
    const tile = this.#tile(id);
    if (!tile) return;
    const parts = [];
    if (connectionState !== 'connected') parts.push(connectionState);
    if (stats.roundTripTimeMs !== null) parts.push(`${stats.roundTripTimeMs} ms`);
    if (stats.packetLoss !== null) parts.push(`${(stats.packetLoss * 100).toFixed(1)}% lost`);
    if (stats.relayed) parts.push('relayed');
    const quality = /** @type {HTMLElement} */ (tile.querySelector('.tile-quality'));
    quality.textContent = parts.join(' · ');
    const poor = connectionState !== 'connected' || (stats.packetLoss ?? 0) > 0.05 || (stats.roundTripTimeMs ?? 0) > 400;
    quality.dataset.quality = poor ? 'poor' : 'good';
  }

  /** @param {string | null} id */
  setActiveSpeaker(id) {
    for (const tile of this.tiles.querySelectorAll('.tile')) {
      tile.classList.toggle('speaking', tile.getAttribute('data-peer-id') === id);
    }
  }

  /** @param {string} id */
  removeTile(id) {
    this.#tile(id)?.remove();
    this.#layout();
  }

  /** @param {string} id */
  #tile(id) {
    return /** @type {HTMLElement | null} */ (this.tiles.querySelector(`.tile[data-peer-id="${CSS.escape(id)}"]`));
  }

  #layout() {
    const count = this.tiles.querySelectorAll('.tile').length;
    this.tiles.dataset.count = String(count);
    byId('people-count').textContent = String(count);
  }

  // --- Controls ---------------------------------------------------------------------------

  /** @param {{muted: boolean, cameraOff: boolean, sharing: boolean, hand: boolean, hasAudio: boolean, hasVideo: boolean}} state */
  setControls(state) {
    const set = (/** @type {string} */ id, /** @type {boolean} */ pressed, /** @type {string} */ label, disabled = false) => {
      const button = /** @type {HTMLButtonElement} */ (byId(id));
      button.setAttribute('aria-pressed', String(pressed));
      button.textContent = label;
      button.disabled = disabled;
    };
    set('mute-button', state.muted, state.muted ? 'Unmute' : 'Mute', !state.hasAudio);
    set('camera-button', state.cameraOff, state.cameraOff ? 'Start video' : 'Stop video', !state.hasVideo);
    set('screen-button', state.sharing, state.sharing ? 'Stop sharing' : 'Share screen');
    set('hand-button', state.hand, state.hand ? 'Lower hand' : 'Raise hand');
  }

  /** @param {boolean} isHost @param {boolean} locked */
  setHostControls(isHost, locked) {
    byId('host-controls').hidden = !isHost;
    const lock = byId('lock-button');
    lock.setAttribute('aria-pressed', String(locked));
    lock.textContent = locked ? 'Unlock room' : 'Lock room';
  }

  /** @param {'chat' | 'people'} name */
  togglePanel(name) {
    const panel = byId(`${name}-panel`);
    const other = byId(name === 'chat' ? 'people-panel' : 'chat-panel');
    const opening = panel.hidden;
    panel.hidden = !opening;
    if (opening) other.hidden = true;
    byId('chat-toggle').setAttribute('aria-expanded', String(!byId('chat-panel').hidden));
    byId('people-toggle').setAttribute('aria-expanded', String(!byId('people-panel').hidden));
    byId('side-panel').hidden = byId('chat-panel').hidden && byId('people-panel').hidden;
    this.#do('panel', name, opening);
    if (opening && name === 'chat') /** @type {HTMLElement} */ (byId('chat-input')).focus();
  }

  get chatOpen() {
    return !byId('chat-panel').hidden;
  }

  // --- People and lobby -------------------------------------------------------------------

  /**
   * @param {{id: string, name: string, role: string, self: boolean, hand: boolean}[]} people
   * @param {boolean} isHost
   */
  showPeople(people, isHost) {
    this.peopleList.replaceChildren(
      ...people.map((person) => {
        const row = make('li', { className: 'person', attrs: { 'data-peer-id': person.id } });
        const label = person.self ? `${person.name} (you)` : person.name;
        row.append(make('span', { className: 'person-name', text: label }));
        if (person.role !== 'participant') row.append(make('span', { className: 'badge', text: person.role === 'host' ? 'host' : 'co-host' }));
        if (person.hand) row.append(make('span', { className: 'badge badge-warning', text: 'hand raised' }));
        if (isHost && !person.self) {
          row.append(make('button', { className: 'link-button mute-peer', text: 'Ask to mute', attrs: { type: 'button', 'data-action': 'mute-peer' } }));
          if (person.role !== 'host') {
            row.append(make('button', { className: 'link-button kick-peer', text: 'Remove', attrs: { type: 'button', 'data-action': 'kick' } }));
          }
        }
        return row;
      }),
    );
    const targets = people.filter((person) => !person.self);
    const chosen = this.fileTarget.value;
    this.fileTarget.replaceChildren(
      make('option', { text: 'Everyone', attrs: { value: 'all' } }),
      ...targets.map((person) => make('option', { text: person.name, attrs: { value: person.id } })),
    );
    this.fileTarget.value = targets.some((person) => person.id === chosen) ? chosen : 'all';
  }

  /** @param {{id: string, name: string}} peer */
  addLobbyEntry(peer) {
    this.removeLobbyEntry(peer.id);
    const row = make('li', { className: 'lobby-entry', attrs: { 'data-peer-id': peer.id } });
    row.append(
      make('span', { text: peer.name }),
      make('button', { className: 'button admit-button', text: 'Admit', attrs: { type: 'button', 'data-action': 'admit' } }),
      make('button', { className: 'button button-secondary deny-button', text: 'Deny', attrs: { type: 'button', 'data-action': 'deny' } }),
    );
    this.lobbyList.append(row);
    byId('lobby-section').hidden = false;
    if (byId('people-panel').hidden) this.togglePanel('people');
  }

  /** @param {string} id */
  removeLobbyEntry(id) {
    this.lobbyList.querySelector(`[data-peer-id="${CSS.escape(id)}"]`)?.remove();
    byId('lobby-section').hidden = this.lobbyList.children.length === 0;
  }

  // --- Chat -------------------------------------------------------------------------------

  /** @param {{id: string, text: string, sentAt: number, from: {id: string, name: string}}[]} messages @param {string} selfId */
  showChat(messages, selfId) {
    const atBottom = this.chatLog.scrollHeight - this.chatLog.scrollTop - this.chatLog.clientHeight < 40;
    this.chatLog.replaceChildren(
      ...messages.map((message) => {
        const item = make('li', { className: message.from.id === selfId ? 'chat-message chat-own' : 'chat-message' });
        const time = new Date(message.sentAt);
        item.append(
          make('span', { className: 'chat-author', text: message.from.name }),
          make('time', { className: 'chat-time', text: time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }), attrs: { datetime: time.toISOString() } }),
          make('p', { className: 'chat-text', text: message.text }),
        );
        return item;
      }),
    );
    if (atBottom) this.chatLog.scrollTop = this.chatLog.scrollHeight;
  }

  /** @param {number} count */
  setUnread(count) {
    const badge = byId('chat-unread');
    badge.textContent = String(count);
    badge.hidden = count === 0;
  }

  // --- Files ------------------------------------------------------------------------------

  /**
   * @param {{id: string, direction: 'in' | 'out', name: string, size: number, who: string}} transfer
   * @param {() => void} onCancel
   */
  addTransfer(transfer, onCancel) {
    const row = make('li', { className: 'transfer', attrs: { 'data-transfer-id': transfer.id, 'data-direction': transfer.direction } });
    const title = transfer.direction === 'out' ? `${transfer.name} → ${transfer.who}` : `${transfer.name} from ${transfer.who}`;
    const progress = /** @type {HTMLProgressElement} */ (make('progress', { attrs: { max: String(transfer.size), value: '0' } }));
    const status = make('span', { className: 'transfer-status', text: formatBytes(transfer.size) });
    const cancel = make('button', { className: 'link-button transfer-cancel', text: 'Cancel', attrs: { type: 'button' } });
    cancel.addEventListener('click', onCancel);
    row.append(make('span', { className: 'transfer-name', text: title }), progress, status, cancel);
    this.transfers.prepend(row);
    return {
      /** @param {number} bytes */
      progress(bytes) {
        progress.value = bytes;
        status.textContent = `${formatBytes(bytes)} of ${formatBytes(transfer.size)}`;
      },
      /** @param {string} text */
      done(text) {
        status.textContent = text;
        cancel.remove();
      },
      /** @param {string} url @param {string} name @param {string} sha256 */
      download(url, name, sha256) {
        const link = make('a', { className: 'transfer-download', text: 'Download', attrs: { href: url, download: name, 'data-sha256': sha256 } });
        row.append(link);
      },
    };
  }
}
