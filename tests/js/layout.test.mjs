import assert from 'node:assert/strict';
import { test } from 'node:test';

import { bestGrid, fit, gridRects, stageRects } from '../../static/js/layout.js';

const WIDE = 16 / 9;
const CAMERA = 4 / 3;
const GAP = 8;
// What the page leaves for the tiles at 1280 × 800 and on a 390 × 844 phone.
const LAPTOP = { x: 8, y: 8, width: 1264, height: 720 };
const PHONE = { x: 8, y: 8, width: 374, height: 760 };

const EPSILON = 1e-6;

/** @param {{x: number, y: number, width: number, height: number}} rect */
const area = (rect) => rect.width * rect.height;

function assertInside(rect, box) {
  assert.ok(rect.x >= box.x - EPSILON && rect.y >= box.y - EPSILON, `${JSON.stringify(rect)} starts outside ${JSON.stringify(box)}`);
  assert.ok(rect.x + rect.width <= box.x + box.width + EPSILON, `${JSON.stringify(rect)} ends right of ${JSON.stringify(box)}`);
  assert.ok(rect.y + rect.height <= box.y + box.height + EPSILON, `${JSON.stringify(rect)} ends below ${JSON.stringify(box)}`);
}

function assertApart(rects, gap) {
  for (const [i, a] of rects.entries()) {
    for (const b of rects.slice(i + 1)) {
      const apart =
        a.x + a.width + gap <= b.x + EPSILON || b.x + b.width + gap <= a.x + EPSILON ||
        a.y + a.height + gap <= b.y + EPSILON || b.y + b.height + gap <= a.y + EPSILON;
      assert.ok(apart, `${JSON.stringify(a)} and ${JSON.stringify(b)} are closer than ${gap}`);
    }
  }
}

function assertAspect(rect, aspect) {
  assert.ok(Math.abs(rect.width / rect.height - aspect) < 1e-9, `${JSON.stringify(rect)} is not ${aspect}`);
}

test('two tiles sit side by side on a wide screen and one above the other on a phone', () => {
  assert.deepEqual(
    [{ width: 1264, height: 600 }, PHONE].map((box) => {
      const grid = bestGrid(2, WIDE, box.width, box.height, GAP);
      return [grid.columns, grid.rows];
    }),
    [[2, 1], [1, 2]],
  );
});

test('three cameras in a 3-way call at 1280 × 800 are no longer slivers', () => {
  const grid = bestGrid(3, CAMERA, LAPTOP.width, LAPTOP.height, GAP);
  assert.deepEqual([grid.columns, grid.rows], [2, 2]);
  assert.ok(grid.width > 450 && grid.height > 350, JSON.stringify(grid));
});

test('no other column count gives larger tiles, and the chosen grid fits', () => {
  for (const aspect of [WIDE, CAMERA, 9 / 16, 1]) {
    for (const box of [LAPTOP, PHONE, { width: 800, height: 200 }, { width: 333, height: 1000 }]) {
      for (let count = 1; count <= 12; count += 1) {
        const grid = bestGrid(count, aspect, box.width, box.height, GAP);
        assert.ok(grid.columns * grid.rows >= count);
        assert.ok((grid.columns - 1) * grid.rows < count || grid.columns * (grid.rows - 1) < count, 'a whole row or column is empty');
        assert.ok(grid.columns * grid.width + (grid.columns - 1) * GAP <= box.width + EPSILON);
        assert.ok(grid.rows * grid.height + (grid.rows - 1) * GAP <= box.height + EPSILON);
        for (let columns = 1; columns <= count; columns += 1) {
          const rows = Math.ceil(count / columns);
          const width = Math.min((box.width - GAP * (columns - 1)) / columns, ((box.height - GAP * (rows - 1)) / rows) * aspect);
          assert.ok(width <= grid.width + EPSILON, `${count} tiles in ${columns} columns would be ${width} wide, not ${grid.width}`);
        }
      }
    }
  }
});

test('no tiles, no grid', () => {
  assert.equal(bestGrid(0, WIDE, 100, 100, GAP).width, 0);
  assert.deepEqual(gridRects([], LAPTOP, GAP), []);
});

test('fit centres the largest rectangle of a ratio in a box', () => {
  assert.deepEqual(fit(2, { x: 10, y: 20, width: 100, height: 100 }), { x: 10, y: 45, width: 100, height: 50 });
  assert.deepEqual(fit(0.5, { x: 0, y: 0, width: 100, height: 100 }), { x: 25, y: 0, width: 50, height: 100 });
});

test('every tile takes its own video ratio, inside the box, apart from the others', () => {
  for (const box of [LAPTOP, PHONE]) {
    for (let count = 1; count <= 12; count += 1) {
      const aspects = Array.from({ length: count }, (_, index) => (index % 3 === 2 ? 9 / 16 : index % 2 ? WIDE : CAMERA));
      const rects = gridRects(aspects, box, GAP);
      assert.equal(rects.length, count);
      rects.forEach((rect, index) => {
        assertAspect(rect, aspects[index]);
        assertInside(rect, box);
      });
      assertApart(rects, GAP);
    }
  }
});

test('a last row with fewer tiles is centred', () => {
  const rects = gridRects([WIDE, WIDE, WIDE], { x: 0, y: 0, width: 1000, height: 600 }, GAP);
  const [first, second, third] = rects;
  assert.equal(first.y, second.y);
  assert.ok(third.y > first.y);
  const middle = (rect) => rect.x + rect.width / 2;
  assert.ok(Math.abs(middle(third) - 500) < EPSILON, `the third tile is centred at ${middle(third)}`);
  assert.ok(Math.abs((middle(first) + middle(second)) / 2 - 500) < EPSILON);
});

test('a wide screen share takes the stage with the cameras in a strip below it', () => {
  for (const box of [LAPTOP, PHONE]) {
    const aspects = [CAMERA, WIDE, CAMERA, CAMERA, CAMERA, CAMERA];
    const rects = stageRects(aspects, 1, box, GAP);
    assert.equal(rects.length, 6);
    const stage = rects[1];
    assertAspect(stage, WIDE);
    rects.forEach((rect) => assertInside(rect, box));
    assertApart(rects, GAP);
    for (const [index, rect] of rects.entries()) {
      if (index === 1) continue;
      assertAspect(rect, CAMERA);
      assert.ok(rect.y >= stage.y + stage.height, 'the strip is below the stage');
      assert.ok(area(rect) < area(stage) / 2, 'the stage is larger than any camera');
    }
    assert.ok(stage.height >= box.height * 0.5 || stage.width >= box.width - EPSILON, JSON.stringify(stage));
  }
});

test('a tall picture on a wide screen has the strip beside it', () => {
  const rects = stageRects([9 / 16, WIDE, WIDE], 0, LAPTOP, GAP);
  const [stage, ...strip] = rects;
  assert.ok(Math.abs(stage.height - LAPTOP.height) < EPSILON, 'the tall picture uses the whole height');
  for (const rect of strip) assert.ok(rect.x >= stage.x + stage.width, 'the strip is beside the stage');
  rects.forEach((rect) => assertInside(rect, LAPTOP));
  assertApart(rects, GAP);
});

test('alone on the stage, a tile fills the box at its ratio', () => {
  assert.deepEqual(stageRects([WIDE], 0, { x: 0, y: 0, width: 1600, height: 1000 }, GAP), [{ x: 0, y: 50, width: 1600, height: 900 }]);
});
