// @ts-check
/**
 * Propose the browser's own time zone in a new form's time zone field (the sign-up form's), which
 * otherwise starts at UTC, when that zone is one of the choices.
 */

const select = document.querySelector('select[data-propose-browser-zone]');
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
if (select instanceof HTMLSelectElement && zone && [...select.options].some((option) => option.value === zone)) {
  select.value = zone;
}
