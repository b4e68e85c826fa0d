// @ts-check
/**
 * Countdowns to the opening of join windows, worded in the page's language.
 *
 * On the dashboard, room and meeting pages each pending Join button counts down and comes alive
 * when its window opens. The formatting functions touch no DOM: opening.js uses them for the call
 * page before its meeting opens, and `node --test` imports them.
 */

/** @param {string} unit @param {number} value @param {string} [locale] */
function unitText(unit, value, locale) {
  return new Intl.NumberFormat(locale, { style: 'unit', unit, unitDisplay: 'short' }).format(value);
}

/**
 * Return a time left in the two largest units that matter, e.g. "2 days 3 hr", "1 hr 5 min",
 * "4 min 9 sec", "12 sec".
 *
 * @param {number} seconds rounded up, so that "0 sec" shows only once the time has come
 * @param {string} [locale] a BCP 47 language tag; the browser's language when left out
 */
export function formatTimeLeft(seconds, locale) {
  const whole = Math.max(0, Math.ceil(seconds));
  const units = [
    { unit: 'day', value: Math.floor(whole / 86_400) },
    { unit: 'hour', value: Math.floor((whole % 86_400) / 3600) },
    { unit: 'minute', value: Math.floor((whole % 3600) / 60) },
    { unit: 'second', value: whole % 60 },
  ];
  const largest = units.findIndex(({ value }) => value > 0);
  const first = largest === -1 ? units.length - 1 : largest;
  const shown = units.slice(first, first + 2).filter(({ value }, index) => index === 0 || value > 0);
  const parts = shown.map(({ unit, value }) => unitText(unit, value, locale));
  return new Intl.ListFormat(locale, { type: 'unit', style: 'narrow' }).format(parts);
}

/**
 * Return a date and time as the site shows them: with the weekday, and on the 24-hour clock.
 *
 * @param {Date} date
 * @param {{locale?: string, timeZone?: string}} [options] the browser's language and zone by default
 */
export function formatDateTime(date, { locale, timeZone } = {}) {
  return new Intl.DateTimeFormat(locale, {
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZone,
  }).format(date);
}

/**
 * Make each pending Join button in the document count down, and go live when its window opens.
 *
 * A pending button sits in a `.join-pending` element with the opening (`data-opens-at`, ISO 8601)
 * and the call's address (`data-join-url`); its `.countdown` says "opens in …" in the words of its
 * `data-pattern`, from a day before.
 *
 * @param {Document} document
 */
export function startJoinCountdowns(document) {
  const pending = [...document.querySelectorAll('.join-pending[data-opens-at]')];
  if (!pending.length) return;
  const locale = document.documentElement.lang || undefined;
  const tick = () => {
    for (const element of pending) {
      if (!(element instanceof HTMLElement)) continue;
      const left = (Date.parse(element.dataset.opensAt || '') - Date.now()) / 1000;
      const button = element.querySelector('a');
      const label = element.querySelector('.countdown');
      if (!button || !(label instanceof HTMLElement)) continue;
      if (left <= 0) {
        button.removeAttribute('aria-disabled');
        button.removeAttribute('role');
        button.setAttribute('href', element.dataset.joinUrl || '#');
        label.textContent = '';
      } else if (left < 24 * 3600 && label.dataset.pattern) {
        label.textContent = label.dataset.pattern.replace('{time}', formatTimeLeft(left, locale));
      }
    }
  };
  tick();
  setInterval(tick, 1000);
}

// The pages with Join buttons load this file as their script; node --test imports it, without a DOM.
if (typeof document !== 'undefined') startJoinCountdowns(document);
