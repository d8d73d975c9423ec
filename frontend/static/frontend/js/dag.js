// Zoom for the DAG picture: −, Fit and + buttons. The picture opens at its natural size, or
// fitted to its frame's width when that keeps the labels readable. Fit shows the whole
// picture: it fits the frame's width and its height (the frame is at most 70% of the window).

const MIN_ZOOM = 0.3; // the least − goes to
const MIN_FIT = 0.02; // Fit may go further: a picture many columns wide must still fit
const MAX_ZOOM = 2;
const READABLE = 0.75; // below this, open at READABLE and let the frame scroll

export function enableZoom(frame) {
  const svg = frame.querySelector("svg.dag");
  const scroller = frame.querySelector(".dag-scroll");
  if (!svg || !scroller) return;
  const width = Number(svg.dataset.width);
  const height = Number(svg.dataset.height);
  let zoom = 1;

  const widthZoom = () => Math.min(1, (scroller.clientWidth - 20) / width);
  const fitZoom = () => {
    const style = getComputedStyle(scroller);
    const padding = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom) + 4;
    const room = Math.min(parseFloat(style.maxHeight) || Infinity, window.innerHeight) - padding;
    return Math.min(widthZoom(), room / height);
  };
  const apply = (value, least = MIN_ZOOM) => {
    zoom = Math.max(least, Math.min(MAX_ZOOM, value));
    svg.setAttribute("width", String(Math.floor(width * zoom)));
    svg.setAttribute("height", String(Math.floor(height * zoom)));
    frame.dataset.zoom = zoom.toFixed(3);
  };
  frame.querySelectorAll("[data-zoom]").forEach((button) => {
    button.addEventListener("click", () => {
      const action = button.dataset.zoom;
      if (action === "fit") {
        apply(fitZoom(), MIN_FIT);
        scroller.scrollTo(0, 0);
      } else apply(zoom * (action === "in" ? 1.25 : 0.8), Math.min(MIN_ZOOM, zoom));
    });
  });
  apply(Math.max(READABLE, widthZoom()));
  if (widthZoom() >= 1 && fitZoom() >= 1) frame.querySelector(".dag-tools").classList.add("dag-tools-quiet");
}

export function enableAllZooms(root = document) {
  root.querySelectorAll(".dag-frame").forEach(enableZoom);
}
