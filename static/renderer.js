// Draws an env's render() primitives (game/render.py) on a 2D canvas, scaled from the logical
// viewport (default 800 x 600) to the canvas, keeping the aspect ratio (letterboxed).

const DEFAULT_VIEWPORT = {width: 800, height: 600, background: "#000"};
const images = new Map();   // src -> HTMLImageElement, loaded once

function image(src) {
  let img = images.get(src);
  if (!img) {
    img = new Image();
    img.decoding = "async";
    img.src = src;
    images.set(src, img);
  }
  return img;
}

/** The viewport primitive of a frame (the first one), or the default. */
export function viewportOf(primitives) {
  const first = Array.isArray(primitives) ? primitives[0] : null;
  if (first && first.type === "viewport" && first.width > 0 && first.height > 0) {
    return {...DEFAULT_VIEWPORT, ...first};
  }
  return DEFAULT_VIEWPORT;
}

/** Size `canvas` to the largest `ratio` (width / height) box within maxWidth x maxHeight CSS pixels,
 *  with a backing store at the device's pixel ratio (the replay viewer and the dashboard's live view). */
export function fitCanvas(canvas, maxWidth, maxHeight, ratio) {
  if (!maxWidth) return;
  const width = Math.floor(Math.min(maxWidth, maxHeight * ratio));
  const height = Math.floor(width / ratio);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const scale = window.devicePixelRatio || 1;
  const wide = Math.round(width * scale), high = Math.round(height * scale);
  if (wide !== canvas.width || high !== canvas.height) {
    canvas.width = wide;
    canvas.height = high;
  }
}

const num = (value, fallback = 0) => (Number.isFinite(value) ? value : fallback);

function fillOrStroke(ctx, item, filled) {
  if (filled) {
    ctx.fillStyle = item.color;
    ctx.fill();
  } else {
    ctx.strokeStyle = item.color;
    ctx.lineWidth = num(item.width, 1);
    ctx.stroke();
  }
}

const DRAW = {
  viewport() {},
  rect(ctx, p) {
    if (p.fill === false) {
      ctx.strokeStyle = p.color;
      ctx.lineWidth = num(p.width, 1);
      ctx.strokeRect(p.x, p.y, p.w, p.h);
    } else {
      ctx.fillStyle = p.color;
      ctx.fillRect(p.x, p.y, p.w, p.h);
    }
  },
  circle(ctx, p) {
    ctx.beginPath();
    ctx.arc(p.x, p.y, Math.max(0, num(p.r)), 0, Math.PI * 2);
    fillOrStroke(ctx, p, p.fill !== false);
  },
  line(ctx, p) {
    ctx.beginPath();
    ctx.moveTo(p.x1, p.y1);
    ctx.lineTo(p.x2, p.y2);
    ctx.strokeStyle = p.color;
    ctx.lineWidth = num(p.width, 1);
    ctx.lineCap = "round";
    ctx.stroke();
  },
  polygon(ctx, p) {
    if (!Array.isArray(p.points) || p.points.length < 2) return;
    ctx.beginPath();
    p.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    fillOrStroke(ctx, p, p.fill !== false);
  },
  text(ctx, p) {
    ctx.fillStyle = p.color;
    ctx.font = `${num(p.size, 16)}px ${p.font || "system-ui, -apple-system, 'Segoe UI', sans-serif"}`;
    ctx.textAlign = ["left", "center", "right"].includes(p.align) ? p.align : "left";
    ctx.textBaseline = "alphabetic";
    ctx.fillText(String(p.text), p.x, p.y);
  },
  image(ctx, p) {
    const img = image(p.src);
    if (img.complete && img.naturalWidth > 0) ctx.drawImage(img, p.x, p.y, p.w, p.h);
  },
};

/**
 * Draw `primitives` on `ctx`, whose canvas is `width` x `height` device pixels.
 * Unknown or malformed primitives are skipped; the rest of the frame is still drawn.
 */
export function draw(ctx, primitives, width, height) {
  const view = viewportOf(primitives);
  const scale = Math.min(width / view.width, height / view.height);
  const offsetX = (width - view.width * scale) / 2;
  const offsetY = (height - view.height * scale) / 2;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.setTransform(scale, 0, 0, scale, offsetX, offsetY);
  ctx.save();
  ctx.beginPath();
  ctx.rect(0, 0, view.width, view.height);
  ctx.clip();
  ctx.fillStyle = view.background || DEFAULT_VIEWPORT.background;
  ctx.fillRect(0, 0, view.width, view.height);
  for (const item of Array.isArray(primitives) ? primitives : []) {
    const fn = item && DRAW[item.type];
    if (!fn) continue;
    try {
      fn(ctx, item);
    } catch (error) {
      // a bad primitive (e.g. an invalid colour) must not stop the frame
    }
  }
  ctx.restore();
}
