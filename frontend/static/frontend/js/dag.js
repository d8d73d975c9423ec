// Zoom for the DAG picture: −, Fit and + buttons. The picture opens at its natural size, or
// fitted to its frame when that keeps the labels readable.

const MIN_ZOOM = 0.3;
const MAX_ZOOM = 2;
const READABLE = 0.75; // below this, open at READABLE and let the frame scroll

export function enableZoom(frame) {
  const svg = frame.querySelector("svg.dag");
  const scroller = frame.querySelector(".dag-scroll");
  if (!svg || !scroller) return;
  const width = Number(svg.dataset.width);
  const height = Number(svg.dataset.height);
  let zoom = 1;

  const fitZoom = () => Math.min(1, (scroller.clientWidth - 10) / width);
  const apply = (value) => {
    zoom = Math.max(MIN_ZOOM, Math.min(MAX_ZOOM, value));
    svg.setAttribute("width", String(Math.round(width * zoom)));
    svg.setAttribute("height", String(Math.round(height * zoom)));
    frame.dataset.zoom = zoom.toFixed(2);
  };
  frame.querySelectorAll("[data-zoom]").forEach((button) => {
    button.addEventListener("click", () => {
      const action = button.dataset.zoom;
      if (action === "fit") apply(Math.max(MIN_ZOOM, fitZoom()));
      else apply(zoom * (action === "in" ? 1.25 : 0.8));
    });
  });
  apply(Math.max(READABLE, fitZoom()));
  if (fitZoom() >= 1) frame.querySelector(".dag-tools").classList.add("dag-tools-quiet");
}

export function enableAllZooms(root = document) {
  root.querySelectorAll(".dag-frame").forEach(enableZoom);
}
