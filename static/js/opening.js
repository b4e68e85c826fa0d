// @ts-check
/**
 * The call page before its meeting opens: a countdown, then the pre-join screen without a reload.
 *
 * The server renders the pre-join screen as it will be at the opening, hidden while the body has
 * the `call-waiting` class, and tells the seconds left by its own clock. At the opening this shows
 * the pre-join screen and loads call.js, which starts the camera preview as it loads.
 */

import { formatDateTime, formatTimeLeft } from './countdown.js';

const card = /** @type {HTMLElement} */ (document.getElementById('opening'));
const timeLeft = /** @type {HTMLElement} */ (document.getElementById('opening-left'));
const locale = document.documentElement.lang || undefined;
// The page's clock plus the server's count: a browser whose clock is wrong still opens on time.
const opensAt = Date.now() + Number(card.dataset.secondsLeft) * 1000;

if ('browserZone' in card.dataset) {
  // A guest has no time zone on the site: say the time as the guest's own clock shows it.
  const time = /** @type {HTMLTimeElement} */ (document.getElementById('opening-time'));
  const zone = /** @type {HTMLElement} */ (document.getElementById('opening-zone'));
  time.textContent = formatDateTime(new Date(time.dateTime), { locale });
  zone.textContent = Intl.DateTimeFormat().resolvedOptions().timeZone;
}

async function open() {
  const prejoin = document.getElementById('prejoin');
  if (!prejoin) {
    // The server could not tell what the page would be at the opening: ask it again now.
    location.reload();
    return;
  }
  const focusWasOnCard = document.activeElement === document.body || card.contains(document.activeElement);
  card.hidden = true;
  document.body.classList.remove('call-waiting');
  const title = document.getElementById('prejoin-title');
  if (focusWasOnCard && title) {
    // A screen reader then reads the pre-join screen's heading: the page changed under its user.
    title.tabIndex = -1;
    title.focus();
  }
  try {
    await import('./call.js');
  } catch {
    location.reload();
  }
}

function tick() {
  const seconds = (opensAt - Date.now()) / 1000;
  if (seconds > 0) {
    timeLeft.textContent = formatTimeLeft(seconds, locale);
    return;
  }
  clearInterval(timer);
  void open();
}

const timer = setInterval(tick, 1000);
tick();
