// Line charts over uPlot (vendored): a title, labelled axes with units, a legend, zoom by dragging, and data
// that grows in place — new points never undo the reader's zoom.

import uPlot from "../vendor/uPlot.esm.js";

// Ten colours that stay apart for most kinds of colour blindness (Tableau 10); past ten, the same again dashed.
export const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#79706e",
];
const HEIGHT = 300;

/** The i-th line's look when many are drawn together. */
export function lineStyle(i) {
  return { color: PALETTE[i % PALETTE.length], dash: i >= PALETTE.length ? [8, 4] : undefined };
}

export class LineChart {
  /**
   * `container` gets a chart titled `title`; `x`/`y`: {label, format(value) → text, range: [min, max]}, and
   * `x.fractions` where x values lie between whole numbers (steps within epochs);
   * `series`: [{label, color, dash, width, points: bool}].
   */
  constructor(container, { title, x, y, series }) {
    // Ticks at whole epochs (or halves and quarters where steps lie between them), never at 1.05.
    const incrs = [x.fractions ? [0.25, 0.5] : [], 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].flat();
    this.container = container;
    this.data = [[], ...series.map(() => [])];
    container.classList.add("chart");
    container.setAttribute("role", "figure");
    container.setAttribute("aria-label", title);
    const format = (fmt) => (fmt ? (_, values) => values.map((v) => (v === null ? "" : fmt(v))) : undefined);
    const opts = {
      title,
      width: Math.max(320, container.clientWidth),
      height: HEIGHT,
      scales: {
        x: { time: false },
        y: y.range ? { range: () => y.range } : {},
      },
      axes: [
        { label: x.label, values: format(x.format), incrs, grid: { stroke: "#e6e8eb" } },
        { label: y.label, values: format(y.format), size: 60, grid: { stroke: "#e6e8eb" } },
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: x.label, value: (_, v) => (v === null ? "—" : x.format ? x.format(v) : String(v)) },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: s.width ?? 2,
          dash: s.dash,
          spanGaps: true,
          points: s.points === false ? { show: false } : { show: true, size: 7, fill: s.color, stroke: s.color },
          value: (_, v) => (v === null || v === undefined ? "—" : y.format ? y.format(v) : v.toFixed(3)),
        })),
      ],
    };
    this.plot = new uPlot(opts, this.data, container);
    this.resize = new ResizeObserver(() => {
      const width = Math.max(320, container.clientWidth);
      if (width !== this.plot.width) this.plot.setSize({ width, height: HEIGHT });
    });
    this.resize.observe(container);
  }

  /** Whether the reader has zoomed in: the x scale shows less than all of the data. */
  zoomed() {
    const xs = this.data[0];
    if (xs.length < 2) return false;
    const { min, max } = this.plot.scales.x;
    const span = xs[xs.length - 1] - xs[0];
    return min > xs[0] + span * 1e-6 || max < xs[xs.length - 1] - span * 1e-6;
  }

  /** Replace the data ([xs, ys1, ys2, …], nulls for gaps), keeping the reader's zoom if there is one. */
  update(data) {
    const keep = this.zoomed();
    this.data = data;
    this.plot.setData(data, !keep);
  }
}

/**
 * Series that each have their own x values (epochs of different jobs, steps and epochs of one job) on one
 * shared x axis: uPlot wants one x array, with null where a series has no point.
 */
export function align(series) {
  const xs = [...new Set(series.flatMap((s) => s.map(([x]) => x)))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const columns = series.map((s) => {
    const ys = new Array(xs.length).fill(null);
    for (const [x, y] of s) ys[index.get(x)] = y;
    return ys;
  });
  return [xs, ...columns];
}
