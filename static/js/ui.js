// @ts-check
/**
 * The call page's DOM and nothing else: it shows what call.js tells it, and reports what the
 * person does as named actions. Every piece of user text is set with textContent.
 */

import { DEFAULT_ASPECT, gridRects, stageRects } from './layout.js';

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

/** The space between tiles, and around them, in CSS pixels. */
const TILE_GAP = 8;

/** How long announcements gather before they are read, so that a burst reads as one line. */
const ANNOUNCE_AFTER_MS = 1000;
/** The announced lines the live region keeps, for a screen reader's review of what was said. */
const ANNOUNCED_LINES = 5;
/** A chat message read out in the announcements is cut after this many characters. */
const ANNOUNCED_CHAT_LENGTH = 200;

/** Narrower than this, the less used controls move into the More menu. */
const NARROW = '(max-width: 56rem)';

/** Where the choice to turn single-key shortcuts off is remembered (WCAG 2.1.4). */
const SINGLE_KEYS_SETTING = 'conference.single-key-shortcuts';

/** The keys of the shortcuts: alone, or with Ctrl + Alt (which also work while typing). */
const SHORTCUTS = /** @type {Record<string, string>} */ ({ m: 'mute', v: 'camera', h: 'hand', c: 'chat', p: 'people' });

/** @param {string[]} names */
function nameList(names) {
  // The page's other sentences are in English.
  return new Intl.ListFormat('en', { style: 'long', type: 'conjunction' }).format([...new Set(names)]);
}

/**
 * What to tell a screen reader about the call, gathered for a moment and said as one line:
 * "Ann and Ben joined." rather than two interruptions.
 */
class Announcer {
  /** @type {any} */
  #timer = null;
  #pending = Announcer.#nothing();

  /** @param {HTMLElement} region the page's one polite live region */
  constructor(region) {
    this.region = region;
  }

  static #nothing() {
    return {
      /** @type {HTMLElement[]} tiles, whose names may still change before they are read */ joined: [],
      /** @type {string[]} */ left: [],
      /** @type {string[]} */ hands: [],
      /** @type {string[]} */ knocks: [],
      /** @type {{name: string, text: string}[]} */ chat: [],
      /** @type {string[]} */ lines: [],
    };
  }

  /** @param {HTMLElement} tile */
  joined(tile) {
    this.#pending.joined.push(tile);
    this.#schedule();
  }

  /** @param {'left' | 'hands' | 'knocks'} kind @param {string} name */
  person(kind, name) {
    this.#pending[kind].push(name);
    this.#schedule();
  }

  /** @param {string} name @param {string} text */
  chat(name, text) {
    this.#pending.chat.push({ name, text });
    this.#schedule();
  }

  /** @param {string} line a sentence of its own */
  say(line) {
    this.#pending.lines.push(line);
    this.#schedule();
  }

  #schedule() {
    this.#timer ??= setTimeout(() => this.#flush(), ANNOUNCE_AFTER_MS);
  }

  #flush() {
    this.#timer = null;
    const { joined, left, knocks, chat, lines } = this.#pending;
    const hands = [...new Set(this.#pending.hands)];
    this.#pending = Announcer.#nothing();
    // call.js shows a raised hand as a toast as well: said once is enough.
    const handLines = new Set(hands.map((name) => `${name} raised a hand.`));
    // The page's own sentences first: the first of them says who was here on arrival.
    const sentences = [...new Set(lines.filter((line) => !handLines.has(line)))];
    // A tile made for an offer that came before its sender's name is called "…" (mesh.js's
    // UNKNOWN_NAME) until the name comes.
    const arrived = joined
      .filter((tile) => tile.isConnected)
      .map((tile) => (tile.dataset.name && tile.dataset.name !== '…' ? tile.dataset.name : 'Someone'));
    if (arrived.length) sentences.push(`${nameList(arrived)} joined.`);
    if (left.length) sentences.push(`${nameList(left)} left.`);
    if (hands.length) sentences.push(hands.length === 1 ? `${hands[0]} raised a hand.` : `${nameList(hands)} raised their hands.`);
    if (knocks.length) sentences.push(`${nameList(knocks)} ${knocks.length === 1 ? 'is' : 'are'} waiting in the lobby.`);
    if (chat.length === 1) {
      const [{ name, text }] = chat;
      const cut = text.length > ANNOUNCED_CHAT_LENGTH ? `${text.slice(0, ANNOUNCED_CHAT_LENGTH)}…` : text;
      sentences.push(`${name} says: ${cut}`);
    } else if (chat.length > 1) {
      sentences.push(`${chat.length} new messages from ${nameList(chat.map((message) => message.name))}.`);
    }
    if (!sentences.length) return;
    // A new element, not new text in an old one: a screen reader reads what is added.
    this.region.append(make('p', { text: sentences.join(' ') }));
    while (this.region.childElementCount > ANNOUNCED_LINES) this.region.firstElementChild?.remove();
  }
}

/**
 * The aspect ratio of a tile's picture: its video's own once known.
 * @param {Element} tile
 */
function aspectOf(tile) {
  const video = /** @type {HTMLVideoElement | null} */ (tile.querySelector('video'));
  return video?.videoWidth && video.videoHeight ? video.videoWidth / video.videoHeight : DEFAULT_ASPECT;
}

export class CallView {
  /** @type {Map<string, (...args: any[]) => void>} */
  #actions = new Map();
  #toastTimer = /** @type {any} */ (null);
  #meshNoticeTimer = /** @type {any} */ (null);
  /** @type {HTMLElement | null} the tile the person put on the stage */
  #pinned = null;
  #layoutFrame = 0;
  /** Whether the call has begun for this page: who comes after that has joined. */
  #welcomed = false;
  #connection = 'connected';
  /** @type {Map<string, HTMLElement>} the chat lines shown, by message id */
  #chatItems = new Map();
  #narrow = window.matchMedia(NARROW);
  /** @type {Map<Element, Element | null>} where each control that can move to the More menu sits in the row */
  #homes = new Map();
  /** @type {HTMLElement | null} what had the focus before the shortcuts dialog opened */
  #beforeDialog = null;

  constructor() {
    this.preview = /** @type {HTMLVideoElement} */ (byId('preview'));
    this.tiles = byId('tiles');
    this.chatLog = byId('chat-log');
    this.peopleList = byId('people-list');
    this.lobbyList = byId('lobby-list');
    this.transfers = byId('transfers');
    this.fileTarget = /** @type {HTMLSelectElement} */ (byId('file-target'));
    this.announcer = new Announcer(byId('announcements'));
    this.dialog = /** @type {HTMLDialogElement} */ (byId('shortcuts-dialog'));
    // The preview takes the camera's own shape: a person sees all of what the others will see.
    this.preview.addEventListener('resize', () => {
      const { videoWidth: width, videoHeight: height } = this.preview;
      if (width && height) byId('prejoin-preview').style.aspectRatio = `${width} / ${height}`;
    });
    for (const control of document.querySelectorAll('.controls .control-more')) this.#homes.set(control, control.nextElementSibling);
    this.#bind();
    this.#placeControls();
    /** @type {HTMLInputElement} */ (byId('single-key-shortcuts')).checked = this.#singleKeys();
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
    for (const close of document.querySelectorAll('.panel-close')) {
      close.addEventListener('click', () => this.togglePanel(/** @type {'chat' | 'people'} */ (close.getAttribute('data-panel'))));
    }
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
    this.tiles.addEventListener('click', (event) => {
      const tile = /** @type {HTMLElement} */ (event.target).closest('.tile-pin')?.closest('.tile');
      if (tile) this.#togglePin(/** @type {HTMLElement} */ (tile));
    });
    new ResizeObserver(() => this.#scheduleLayout()).observe(this.tiles);
    this.#bindControlsMenu();
    this.#bindShortcuts();
    this.#bindLeaving();
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
    // The call takes the whole window: the site's header hides (call.css).
    document.body.classList.add('in-call');
    this.#scheduleLayout();
  }

  get inCall() {
    return document.body.classList.contains('in-call');
  }

  /** @param {boolean} waiting */
  showLobby(waiting) {
    byId('lobby-notice').hidden = !waiting;
    this.tiles.hidden = waiting;
    // Leave stays, so that a person can stop waiting.
    byId('call').classList.toggle('in-lobby', waiting);
    if (!waiting && !this.#welcomed) {
      this.#welcomed = true;
      const names = [...this.tiles.querySelectorAll('.tile:not(.tile-self)')].map((tile) => /** @type {HTMLElement} */ (tile).dataset.name ?? '');
      this.announcer.say(
        names.length ? `${nameList(names)} ${names.length === 1 ? 'is' : 'are'} in the call.` : 'Nobody else is in the call yet.',
      );
    }
  }

  /** @param {'connecting' | 'connected' | 'reconnecting' | 'closed'} status */
  setConnection(status) {
    const notice = byId('connection-notice');
    const state = status === 'reconnecting' ? 'reconnecting' : 'connected';
    if (state !== this.#connection) {
      this.announcer.say(state === 'reconnecting' ? notice.textContent?.trim() ?? '' : 'Connected again.');
    }
    this.#connection = state;
    notice.dataset.state = state;
    notice.hidden = state !== 'reconnecting';
  }

  /** @param {string} why @param {boolean} canJoinAgain */
  showEnded(why, canJoinAgain) {
    byId('prejoin').hidden = true;
    byId('call').hidden = true;
    document.body.classList.remove('in-call');
    if (this.dialog.open) this.dialog.close();
    byId('call-ended-reason').textContent = why;
    byId('join-again').hidden = !canJoinAgain;
    byId('call-ended').hidden = false;
  }

  /** @param {string | null} text */
  setMeshNotice(text) {
    const notice = byId('mesh-notice');
    if ((text ?? '') === notice.textContent) return; // said already
    notice.textContent = text ?? '';
    notice.hidden = !text;
    // Advice rather than an alarm: it goes after a while instead of covering the pictures.
    clearTimeout(this.#meshNoticeTimer);
    if (text) this.#meshNoticeTimer = setTimeout(() => (notice.hidden = true), 10_000);
  }

  /** @param {string} text */
  toast(text) {
    const toast = byId('toast');
    toast.textContent = text;
    toast.hidden = false;
    this.announcer.say(text);
    clearTimeout(this.#toastTimer);
    this.#toastTimer = setTimeout(() => (toast.hidden = true), 6000);
  }

  // --- Tiles ------------------------------------------------------------------------------

  /**
   * Show a person's tile, or return the one shown already. A screen tile shows a person's shared
   * screen apart from their camera (calls through the media server): it is no person of its own.
   * @param {string} id @param {string} name @param {boolean} self @param {{screen?: boolean}} [options]
   */
  tile(id, name, self = false, { screen = false } = {}) {
    let tile = this.#tile(id);
    if (!tile) {
      const className = self ? 'tile tile-self' : screen ? 'tile tile-screen sharing' : 'tile';
      tile = make('figure', { className, attrs: { 'data-peer-id': id } });
      const video = /** @type {HTMLVideoElement} */ (make('video', { attrs: { autoplay: '', playsinline: '' } }));
      video.muted = self; // never play one's own microphone back
      // The tile takes the picture's own shape once the picture comes, and again when it changes.
      for (const event of ['loadedmetadata', 'resize']) video.addEventListener(event, () => this.#scheduleLayout());
      const caption = make('figcaption', { className: 'tile-caption' });
      caption.append(
        make('span', { className: 'tile-name' }),
        make('span', { className: 'tile-icons' }),
        make('span', { className: 'tile-quality' }),
      );
      const pin = make('button', { className: 'tile-pin', text: 'Pin', attrs: { type: 'button', 'aria-pressed': 'false' } });
      tile.append(video, make('div', { className: 'tile-placeholder', attrs: { 'aria-hidden': 'true' } }), caption, pin);
      if (self) this.tiles.prepend(tile);
      else this.tiles.append(tile);
      if (!self && !screen && this.#welcomed) this.announcer.joined(tile);
    }
    this.setTileName(id, name);
    this.#countTiles();
    return tile;
  }

  /** @param {string} id @param {string} name */
  setTileName(id, name) {
    const tile = this.#tile(id);
    if (!tile) return;
    tile.dataset.name = name;
    /** @type {HTMLElement} */ (tile.querySelector('.tile-name')).textContent = name;
    /** @type {HTMLElement} */ (tile.querySelector('.tile-placeholder')).textContent = name.slice(0, 1).toUpperCase();
    tile.querySelector('.tile-pin')?.setAttribute('aria-label', `Pin ${name}`);
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
    const self = tile.classList.contains('tile-self');
    if (state.hand && !tile.classList.contains('hand-up') && !self && this.#welcomed) {
      this.announcer.person('hands', tile.dataset.name ?? '');
    }
    if (state.screen !== tile.classList.contains('sharing')) this.#scheduleLayout();
    tile.classList.toggle('video-off', !state.video && !state.screen);
    tile.classList.toggle('hand-up', state.hand);
    // A shared screen is never cropped, and shows the right way round also on one's own tile.
    tile.classList.toggle('sharing', state.screen);
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
    const tile = this.#tile(id);
    if (!tile) return;
    tile.remove();
    if (!tile.matches('.tile-self, .tile-screen') && this.#welcomed) this.announcer.person('left', tile.dataset.name ?? '');
    this.#countTiles();
  }

  /** @param {string} id */
  #tile(id) {
    return /** @type {HTMLElement | null} */ (this.tiles.querySelector(`.tile[data-peer-id="${CSS.escape(id)}"]`));
  }

  #countTiles() {
    this.tiles.dataset.count = String(this.tiles.querySelectorAll('.tile').length);
    byId('people-count').textContent = String(this.tiles.querySelectorAll('.tile:not(.tile-screen)').length);
    this.#scheduleLayout();
  }

  /** The width of every tile now, in CSS pixels, by its id. */
  tileWidths() {
    /** @type {Map<string, number>} */
    const widths = new Map();
    for (const tile of this.tiles.querySelectorAll('.tile')) {
      widths.set(tile.getAttribute('data-peer-id') ?? '', tile.getBoundingClientRect().width);
    }
    return widths;
  }

  /** The id of the tile the person pinned, if any. */
  get pinnedId() {
    return this.#pinned?.isConnected ? this.#pinned.getAttribute('data-peer-id') : null;
  }

  /** @param {HTMLElement} tile */
  #togglePin(tile) {
    this.#pinned = this.#pinned === tile ? null : tile;
    for (const each of this.tiles.querySelectorAll('.tile')) {
      each.querySelector('.tile-pin')?.setAttribute('aria-pressed', String(each === this.#pinned));
    }
    this.#scheduleLayout();
  }

  /** Lay the tiles out again before the next frame, once however many changes come before it. */
  #scheduleLayout() {
    if (this.#layoutFrame) return;
    this.#layoutFrame = requestAnimationFrame(() => {
      this.#layoutFrame = 0;
      this.#layout();
    });
  }

  /**
   * Size and place every tile: the largest that fit, each at its picture's own shape; or, when a
   * tile is pinned or shares a screen, that one on the stage and the others in a strip.
   */
  #layout() {
    const tiles = /** @type {HTMLElement[]} */ ([...this.tiles.querySelectorAll(':scope > .tile')]);
    const { clientWidth: width, clientHeight: height } = this.tiles;
    if (!tiles.length || !width || !height) return;
    const box = { x: TILE_GAP, y: TILE_GAP, width: width - 2 * TILE_GAP, height: height - 2 * TILE_GAP };
    const aspects = tiles.map(aspectOf);
    const pinned = this.#pinned?.isConnected ? this.#pinned : null;
    // Another's screen before one's own: one's own is for the others to see.
    const stage = pinned ?? tiles.find((tile) => tile.matches('.sharing:not(.tile-self)')) ?? tiles.find((tile) => tile.matches('.sharing'));
    const rects = stage && tiles.length > 1 ? stageRects(aspects, tiles.indexOf(stage), box, TILE_GAP) : gridRects(aspects, box, TILE_GAP);
    tiles.forEach((tile, index) => {
      const rect = rects[index];
      Object.assign(tile.style, { left: `${rect.x}px`, top: `${rect.y}px`, width: `${rect.width}px`, height: `${rect.height}px` });
      tile.classList.toggle('on-stage', tile === stage);
      tile.classList.toggle('in-strip', Boolean(stage) && tile !== stage);
    });
    // The tiles' sizes changed: call.js asks for the video layers that fit them.
    this.#do('layout');
  }

  // --- Controls ---------------------------------------------------------------------------

  /** @param {{muted: boolean, cameraOff: boolean, sharing: boolean, hand: boolean, hasAudio: boolean, hasVideo: boolean}} state */
  setControls(state) {
    // The labels stay; aria-pressed says the state (call.css shows it too).
    const set = (/** @type {string} */ id, /** @type {boolean} */ pressed, disabled = false) => {
      const button = /** @type {HTMLButtonElement} */ (byId(id));
      button.setAttribute('aria-pressed', String(pressed));
      button.disabled = disabled;
    };
    set('mute-button', state.muted, !state.hasAudio);
    set('camera-button', state.cameraOff, !state.hasVideo);
    set('screen-button', state.sharing);
    set('hand-button', state.hand);
  }

  /** @param {boolean} isHost @param {boolean} locked */
  setHostControls(isHost, locked) {
    byId('host-controls').hidden = !isHost;
    byId('lock-button').setAttribute('aria-pressed', String(locked));
  }

  /**
   * Open a panel (closing the other one) or close it. A person's own opening moves the focus to
   * the panel and their closing back to its toggle; the page's own opening leaves it alone.
   * @param {'chat' | 'people'} name
   * @param {boolean} moveFocus
   */
  togglePanel(name, moveFocus = true) {
    const panel = byId(`${name}-panel`);
    const other = byId(name === 'chat' ? 'people-panel' : 'chat-panel');
    const opening = panel.hidden;
    const focusWasInside = panel.contains(document.activeElement);
    panel.hidden = !opening;
    if (opening) other.hidden = true;
    byId('chat-toggle').setAttribute('aria-expanded', String(!byId('chat-panel').hidden));
    byId('people-toggle').setAttribute('aria-expanded', String(!byId('people-panel').hidden));
    byId('side-panel').hidden = byId('chat-panel').hidden && byId('people-panel').hidden;
    this.#do('panel', name, opening);
    if (opening && moveFocus) byId(name === 'chat' ? 'chat-input' : 'people-title').focus();
    if (!opening && (focusWasInside || document.activeElement === document.body)) byId(`${name}-toggle`).focus();
  }

  get chatOpen() {
    return !byId('chat-panel').hidden;
  }

  /** Keep the controls in one row: on a narrow screen the less used ones go into the More menu. */
  #placeControls() {
    const narrow = this.#narrow.matches;
    byId('more').hidden = !narrow;
    if (narrow) {
      byId('more-menu').append(...this.#homes.keys());
    } else {
      // From the last, so that each one's neighbour is back before it.
      for (const control of [...this.#homes.keys()].reverse()) this.#homes.get(control)?.before(control);
      this.#setMenuOpen(false);
    }
  }

  /** @param {boolean} open */
  #setMenuOpen(open) {
    byId('more-menu').hidden = !open;
    byId('more-button').setAttribute('aria-expanded', String(open));
  }

  get #menuOpen() {
    return !byId('more-menu').hidden;
  }

  #bindControlsMenu() {
    this.#narrow.addEventListener('change', () => this.#placeControls());
    byId('more-button').addEventListener('click', () => this.#setMenuOpen(!this.#menuOpen));
    // A control chosen from the menu closes it; the focus goes back to where the menu opened.
    byId('more-menu').addEventListener('click', (event) => {
      if (!(/** @type {HTMLElement} */ (event.target).closest('button'))) return;
      this.#setMenuOpen(false);
      if (!this.dialog.open) byId('more-button').focus();
    });
    document.addEventListener('click', (event) => {
      if (this.#menuOpen && !byId('more').contains(/** @type {Node} */ (event.target))) this.#setMenuOpen(false);
    });
  }

  // --- Keyboard shortcuts -----------------------------------------------------------------

  /** Whether single-key shortcuts are on: they are unless the person turned them off here. */
  #singleKeys() {
    try {
      return localStorage.getItem(SINGLE_KEYS_SETTING) !== 'off';
    } catch {
      return true; // storage refused (a privacy setting): the default
    }
  }

  /** @param {boolean} on */
  #setSingleKeys(on) {
    try {
      if (on) localStorage.removeItem(SINGLE_KEYS_SETTING);
      else localStorage.setItem(SINGLE_KEYS_SETTING, 'off');
    } catch {
      // Not remembered, but the checkbox says what holds on this page.
    }
  }

  #openShortcuts() {
    this.#beforeDialog = /** @type {HTMLElement | null} */ (document.activeElement);
    this.dialog.showModal();
  }

  /** @param {string} action */
  #shortcut(action) {
    if (action === 'chat' || action === 'people') this.togglePanel(action);
    else this.#do(action);
  }

  #bindShortcuts() {
    const singleKeys = /** @type {HTMLInputElement} */ (byId('single-key-shortcuts'));
    singleKeys.addEventListener('change', () => this.#setSingleKeys(singleKeys.checked));
    byId('shortcuts-button').addEventListener('click', () => this.#openShortcuts());
    this.dialog.addEventListener('close', () => {
      const back = this.#beforeDialog?.checkVisibility() ? this.#beforeDialog : byId(this.#narrow.matches ? 'more-button' : 'shortcuts-button');
      back.focus();
    });
    document.addEventListener('keydown', (event) => {
      const call = byId('call');
      if (call.hidden || call.classList.contains('in-lobby') || this.dialog.open || event.repeat) return;
      if (event.key === 'Escape') {
        this.#escape();
        return;
      }
      // By the key's place, so that Alt's characters (Option on a Mac) do not hide the letter.
      const letter = event.code.startsWith('Key') ? event.code.slice(3).toLowerCase() : '';
      if (event.ctrlKey && event.altKey && !event.metaKey && !event.shiftKey) {
        if (!SHORTCUTS[letter]) return;
        event.preventDefault();
        this.#shortcut(SHORTCUTS[letter]);
        return;
      }
      const target = /** @type {HTMLElement} */ (event.target);
      if (event.ctrlKey || event.metaKey || event.altKey || !singleKeys.checked) return;
      if (target.closest('input, textarea, select, [contenteditable]')) return;
      if (event.key === '?') {
        event.preventDefault();
        this.#openShortcuts();
        return;
      }
      const action = SHORTCUTS[event.key.toLowerCase()];
      if (!action) return;
      event.preventDefault();
      this.#shortcut(action);
    });
  }

  /** Escape closes the More menu, or else the open panel. */
  #escape() {
    if (this.#menuOpen) {
      this.#setMenuOpen(false);
      byId('more-button').focus();
    } else if (!byId('chat-panel').hidden) {
      this.togglePanel('chat');
      byId('chat-toggle').focus();
    } else if (!byId('people-panel').hidden) {
      this.togglePanel('people');
      byId('people-toggle').focus();
    }
  }

  // --- Leaving the page -------------------------------------------------------------------

  /** During a call, leaving the page asks first. */
  #bindLeaving() {
    /** @param {BeforeUnloadEvent} event */
    const ask = (event) => {
      if (!this.inCall) return;
      event.preventDefault();
      event.returnValue = ''; // older browsers ask only with this set
    };
    window.addEventListener('beforeunload', ask);
    document.addEventListener('click', (event) => {
      if (!this.inCall || event.defaultPrevented) return;
      const link = /** @type {HTMLElement} */ (event.target).closest('a[href]');
      if (!link || link.hasAttribute('download') || link.getAttribute('href')?.startsWith('#')) return;
      if (link.getAttribute('target') === '_blank') return;
      if (window.confirm('Leave the call?')) window.removeEventListener('beforeunload', ask);
      else event.preventDefault();
    });
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
          row.append(make('button', { className: 'link-button mute-peer', text: 'Ask to mute', attrs: { type: 'button', 'data-action': 'mute-peer', 'aria-label': `Ask to mute ${person.name}` } }));
          if (person.role !== 'host') {
            row.append(make('button', { className: 'link-button kick-peer', text: 'Remove', attrs: { type: 'button', 'data-action': 'kick', 'aria-label': `Remove ${person.name}` } }));
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
      make('button', { className: 'button admit-button', text: 'Admit', attrs: { type: 'button', 'data-action': 'admit', 'aria-label': `Admit ${peer.name}` } }),
      make('button', { className: 'button button-secondary deny-button', text: 'Deny', attrs: { type: 'button', 'data-action': 'deny', 'aria-label': `Deny ${peer.name}` } }),
    );
    this.lobbyList.append(row);
    byId('lobby-section').hidden = false;
    this.announcer.person('knocks', peer.name);
    if (byId('people-panel').hidden) this.togglePanel('people', false);
  }

  /** @param {string} id */
  removeLobbyEntry(id) {
    this.lobbyList.querySelector(`[data-peer-id="${CSS.escape(id)}"]`)?.remove();
    byId('lobby-section').hidden = this.lobbyList.children.length === 0;
  }

  // --- Chat -------------------------------------------------------------------------------

  /**
   * Show the chat so far. Only new lines are added, so that the log's live region reads just
   * those; while the panel is hidden, the announcements say them instead.
   * @param {{id: string, text: string, sentAt: number, from: {id: string, name: string}}[]} messages
   * @param {string} selfId
   */
  showChat(messages, selfId) {
    const atBottom = this.chatLog.scrollHeight - this.chatLog.scrollTop - this.chatLog.clientHeight < 40;
    /** @type {Element | null} */
    let previous = null;
    for (const message of messages) {
      let item = this.#chatItems.get(message.id);
      if (!item) {
        item = this.#chatItem(message, selfId);
        this.#chatItems.set(message.id, item);
        if (message.from.id !== selfId && !this.chatOpen) this.announcer.chat(message.from.name, message.text);
      }
      // In the log's order, which history handed over later can reach into.
      /** @type {Element | null} */
      const expected = previous ? previous.nextElementSibling : this.chatLog.firstElementChild;
      if (expected !== item) this.chatLog.insertBefore(item, expected);
      previous = item;
    }
    const ids = new Set(messages.map((message) => message.id));
    for (const [id, item] of this.#chatItems) {
      if (ids.has(id)) continue;
      item.remove();
      this.#chatItems.delete(id);
    }
    if (atBottom) this.chatLog.scrollTop = this.chatLog.scrollHeight;
  }

  /**
   * @param {{id: string, text: string, sentAt: number, from: {id: string, name: string}}} message
   * @param {string} selfId
   */
  #chatItem(message, selfId) {
    const item = make('li', { className: message.from.id === selfId ? 'chat-message chat-own' : 'chat-message' });
    const time = new Date(message.sentAt);
    // The person's own way of writing a time, on the site's 24-hour clock.
    const clock = time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    item.append(
      make('span', { className: 'chat-author', text: message.from.name }),
      make('time', { className: 'chat-time', text: clock, attrs: { datetime: time.toISOString() } }),
      make('p', { className: 'chat-text', text: message.text }),
    );
    return item;
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
