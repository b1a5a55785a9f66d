// Numbers as people read them: 89.5 %, 1 min 20 s, 2026-11-29 17:03.

export function percent(fraction, digits = 1) {
  return fraction === null || fraction === undefined ? "—" : `${(fraction * 100).toFixed(digits)} %`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** The API's times are UTC; a time without a zone is read as UTC too, then shown in the reader's own zone. */
export function parseTime(iso) {
  if (!iso) return null;
  return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(iso) ? iso : `${iso}Z`);
}

export function when(iso) {
  const date = parseTime(iso);
  if (!date) return "—";
  const pad = (n) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = n / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export function number(value, digits = 3) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

/** "2/3 epochs · ETA 12 s" for a job's `progress`. */
export function progressText(job) {
  const p = job.progress;
  const parts = [`${p.epochs_completed}/${p.epochs_total} epochs`];
  if (job.status === "running" && p.eta_seconds !== null && p.eta_seconds !== undefined) {
    parts.push(`ETA ${duration(p.eta_seconds)}`);
  }
  return parts.join(" · ");
}

export const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
