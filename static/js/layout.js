// @ts-check
/**
 * Where the call's tiles go: the grid with the largest tiles that fit, or one tile on the stage
 * with the others in a strip. Pure arithmetic on sizes, no DOM: ui.js measures and places.
 */

/** @typedef {{x: number, y: number, width: number, height: number}} Rect */

/** The aspect ratio (width / height) assumed for a video whose size is not known yet. */
export const DEFAULT_ASPECT = 16 / 9;

/**
 * The share of the width or height the strip of cameras gets at least, beside a stage.
 * Less would make the strip's faces too small to recognise on a phone.
 */
const STRIP_SHARE = 0.2;

/**
 * Return the grid of `count` equal tiles of the aspect ratio `aspect` whose tiles are the largest
 * that fit in `width` × `height` with `gap` between them: every column count is tried, and the
 * rows follow from it. Ties go to fewer columns, which leaves fewer empty cells.
 * @param {number} count
 * @param {number} aspect width / height of a tile
 * @param {number} width
 * @param {number} height
 * @param {number} gap
 * @returns {{columns: number, rows: number, width: number, height: number}}
 */
export function bestGrid(count, aspect, width, height, gap) {
  let best = { columns: 1, rows: 1, width: 0, height: 0 };
  if (count < 1) return best;
  for (let columns = 1; columns <= count; columns += 1) {
    const rows = Math.ceil(count / columns);
    const cellWidth = (width - gap * (columns - 1)) / columns;
    const cellHeight = (height - gap * (rows - 1)) / rows;
    if (cellWidth <= 0 || cellHeight <= 0) continue;
    // The area grows with the width at a fixed aspect ratio: comparing widths is enough.
    const tileWidth = Math.min(cellWidth, cellHeight * aspect);
    if (tileWidth > best.width) best = { columns, rows, width: tileWidth, height: tileWidth / aspect };
  }
  return best;
}

/**
 * Return the largest rectangle of the aspect ratio `aspect` centred in `box`.
 * @param {number} aspect
 * @param {Rect} box
 * @returns {Rect}
 */
export function fit(aspect, box) {
  const width = Math.min(box.width, box.height * aspect);
  const height = width / aspect;
  return { x: box.x + (box.width - width) / 2, y: box.y + (box.height - height) / 2, width, height };
}

/**
 * Return the median of some aspect ratios: the one the grid's cells take.
 * @param {number[]} aspects
 */
function commonAspect(aspects) {
  if (!aspects.length) return DEFAULT_ASPECT;
  const sorted = [...aspects].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/**
 * Place tiles whose videos have the aspect ratios `aspects` in the best grid over `box`.
 *
 * The cells take the videos' common ratio; each tile then takes its own video's ratio inside its
 * cell, so that a picture fills its tile without being cropped. An incomplete last row is centred.
 * @param {number[]} aspects
 * @param {Rect} box
 * @param {number} gap
 * @returns {Rect[]}
 */
export function gridRects(aspects, box, gap) {
  const grid = bestGrid(aspects.length, commonAspect(aspects), box.width, box.height, gap);
  const top = box.y + (box.height - grid.rows * grid.height - (grid.rows - 1) * gap) / 2;
  return aspects.map((aspect, index) => {
    const row = Math.floor(index / grid.columns);
    const inRow = Math.min(grid.columns, aspects.length - row * grid.columns);
    const left = box.x + (box.width - inRow * grid.width - (inRow - 1) * gap) / 2;
    const cell = {
      x: left + (index % grid.columns) * (grid.width + gap),
      y: top + row * (grid.height + gap),
      width: grid.width,
      height: grid.height,
    };
    return fit(aspect, cell);
  });
}

/**
 * Put the tile at `stageIndex` on the stage and the others in a strip below it or beside it.
 *
 * The stage's picture gets at most 1 - STRIP_SHARE of the height (strip below) or of the width
 * (strip beside), and the strip whatever the picture leaves over. Of the two, the one showing
 * more picture in all wins, which puts the strip below a wide picture and beside a tall one.
 * @param {number[]} aspects
 * @param {number} stageIndex
 * @param {Rect} box
 * @param {number} gap
 * @returns {Rect[]}
 */
export function stageRects(aspects, stageIndex, box, gap) {
  const stageAspect = aspects[stageIndex];
  const stripAspects = aspects.filter((_, index) => index !== stageIndex);
  if (!stripAspects.length) return [fit(stageAspect, box)];
  /** @type {{area: number, rects: Rect[]}} */
  let best = { area: -1, rects: [] };
  for (const below of [true, false]) {
    const stageBox = below
      ? { x: 0, y: 0, width: box.width, height: box.height * (1 - STRIP_SHARE) }
      : { x: 0, y: 0, width: box.width * (1 - STRIP_SHARE), height: box.height };
    const stage = fit(stageAspect, stageBox);
    const strip = below
      ? gridRects(stripAspects, { x: 0, y: 0, width: box.width, height: box.height - stage.height - gap }, gap)
      : gridRects(stripAspects, { x: 0, y: 0, width: box.width - stage.width - gap, height: box.height }, gap);
    const area = [stage, ...strip].reduce((sum, rect) => sum + rect.width * rect.height, 0);
    if (area <= best.area) continue;
    // The stage and the strip side by side, centred together in the box.
    const stripStart = Math.min(...strip.map((rect) => (below ? rect.y : rect.x)));
    const stripEnd = Math.max(...strip.map((rect) => (below ? rect.y + rect.height : rect.x + rect.width)));
    if (below) {
      const top = box.y + (box.height - (stage.height + gap + stripEnd - stripStart)) / 2;
      const stripShift = top + stage.height + gap - stripStart;
      best = {
        area,
        rects: [
          { ...stage, x: box.x + (box.width - stage.width) / 2, y: top },
          ...strip.map((rect) => ({ ...rect, x: box.x + rect.x, y: rect.y + stripShift })),
        ],
      };
    } else {
      const left = box.x + (box.width - (stage.width + gap + stripEnd - stripStart)) / 2;
      const stripShift = left + stage.width + gap - stripStart;
      best = {
        area,
        rects: [
          { ...stage, x: left, y: box.y + (box.height - stage.height) / 2 },
          ...strip.map((rect) => ({ ...rect, x: rect.x + stripShift, y: box.y + rect.y })),
        ],
      };
    }
  }
  // Back in the tiles' own order.
  const [stage, ...strip] = best.rects;
  strip.splice(stageIndex, 0, stage);
  return strip;
}
