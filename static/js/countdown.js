// @ts-check
// Counts down to each pending Join button's opening time and makes it live when the window opens.

const pending = document.querySelectorAll("[data-opens-at]");

/** @param {number} seconds */
function format(seconds) {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  if (hours > 0) return `opens in ${hours} h ${minutes} min`;
  if (minutes > 0) return `opens in ${minutes} min ${rest} s`;
  return `opens in ${rest} s`;
}

function tick() {
  for (const element of pending) {
    if (!(element instanceof HTMLElement)) continue;
    const opensAt = Date.parse(element.dataset.opensAt || "");
    const left = Math.ceil((opensAt - Date.now()) / 1000);
    const button = element.querySelector("a");
    const label = element.querySelector(".countdown");
    if (!button || !label) continue;
    if (left <= 0) {
      button.removeAttribute("aria-disabled");
      button.removeAttribute("role");
      button.setAttribute("href", element.dataset.joinUrl || "#");
      label.textContent = "";
    } else if (left < 24 * 3600) {
      label.textContent = format(left);
    }
  }
}

if (pending.length) {
  tick();
  setInterval(tick, 1000);
}
