// A small time-series line chart drawn on a canvas: no library, nothing fetched at run time.

const COLOURS = ["#58a6ff", "#d2a8ff", "#3fb950", "#d29922", "#f85149"];

export function colour(index) {
  return COLOURS[index % COLOURS.length];
}

// series: Map name -> [[t_ms, value], ...]; draws the last `windowMs` up to now.
export function drawLines(canvas, series, { windowMs = 300000, unit = "" } = {}) {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  canvas.width = width * dpr;
  canvas.height = height * dpr;
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, width, height);
  const pad = { left: 48, right: 8, top: 8, bottom: 18 };
  const now = Date.now();
  const t0 = now - windowMs;
  let max = 0;
  for (const points of series.values()) {
    for (const [t, v] of points) if (t >= t0 && v > max) max = v;
  }
  max = niceCeil(max || 1);
  const x = (t) => pad.left + ((t - t0) / windowMs) * (width - pad.left - pad.right);
  const y = (v) => pad.top + (1 - v / max) * (height - pad.top - pad.bottom);

  ctx.strokeStyle = "#263241";
  ctx.fillStyle = "#7f8da0";
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.left, y(v));
    ctx.lineTo(width - pad.right, y(v));
    ctx.stroke();
    ctx.fillText(format(v) + unit, 2, y(v) + 4);
  }
  for (let m = 0; m <= windowMs / 60000; m++) {
    const t = now - m * 60000;
    ctx.fillText(m === 0 ? "now" : `-${m}m`, x(t) - 10, height - 4);
  }
  let index = 0;
  for (const points of series.values()) {
    ctx.strokeStyle = colour(index++);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let started = false;
    for (const [t, v] of points) {
      if (t < t0 || v == null) continue;
      if (started) ctx.lineTo(x(t), y(v));
      else ctx.moveTo(x(t), y(v));
      started = true;
    }
    ctx.stroke();
  }
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function format(v) {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}
