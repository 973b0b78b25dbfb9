// Full page image viewer (A1111 javascript/imageviewer.js behaviour, written for the Gradio 6 gallery):
// clicking the large image of a result gallery opens it over the whole page when `js_modal_lightbox` is on;
// ←/→ (or the ‹ › buttons) step through the gallery's images and select the same one in the gallery;
// Esc / ✖ / a click beside the image closes it; ⤡ or a click on the image toggles zoom (natural size, scrollable) against
// fit-to-screen; it opens zoomed when `js_modal_lightbox_initially_zoomed` is on. The unfocused control icons use
// `sd_webui_modal_lightbox_icon_opacity`, the tool bar `sd_webui_modal_lightbox_toolbar_opacity`.
// `js_modal_lightbox_gamepad`: the left stick / d-pad of a gamepad steps through the images, repeating every
// `js_modal_lightbox_gamepad_repeat` ms while held. `js_live_preview_in_modal_lightbox`: while the viewer is open
// during a generation it shows the tab's live preview.
(function () {
  let modal = null;
  let image = null;
  let gallery = null;
  let index = 0;

  function galleryImages(root) {
    const grid = root.querySelectorAll(".grid-container .thumbnail-item img");
    const strip = root.querySelectorAll(".thumbnails .thumbnail-item img");
    return Array.from(grid.length ? grid : strip);
  }

  function galleryButtons(root) {
    const strip = root.querySelectorAll(".thumbnails .thumbnail-item");
    return Array.from(strip.length ? strip : root.querySelectorAll(".grid-container .thumbnail-item"));
  }

  function applyOpacity() {
    const icons = window.opts.sd_webui_modal_lightbox_icon_opacity ?? 1;
    const toolbar = window.opts.sd_webui_modal_lightbox_toolbar_opacity ?? 0.9;
    modal.style.setProperty("--lightbox-icon-opacity", String(icons));
    modal.style.setProperty("--lightbox-toolbar-opacity", String(toolbar));
  }

  function button(id, text, title, action) {
    const el = document.createElement("span");
    el.id = id;
    el.className = "lightbox-control cursor";
    el.textContent = text;
    el.title = title;
    el.addEventListener("click", function (ev) { ev.stopPropagation(); action(); });
    return el;
  }

  const CSS = [
    "#lightboxModal { position: fixed; inset: 0; z-index: 1001; background: rgba(20, 20, 20, 0.95);",
    "  align-items: center; justify-content: center; overflow: auto; outline: none; }",
    "#lightboxModal #modalImage { max-width: 100vw; max-height: 100vh; object-fit: contain; cursor: zoom-in;",
    "  image-rendering: auto; }",
    "#lightboxModal.lightbox-zoomed { align-items: flex-start; justify-content: flex-start; }",
    "#lightboxModal.lightbox-zoomed #modalImage { max-width: none; max-height: none; cursor: zoom-out; margin: auto; }",
    "#lightboxModal .modalControls { position: fixed; top: 0; left: 0; right: 0; display: flex; gap: 1em;",
    "  justify-content: flex-end; padding: 0.3em 1em; z-index: 1;",
    "  background: rgba(0, 0, 0, 0.5);",
    "  opacity: var(--lightbox-toolbar-opacity, 0.9); }",
    "#lightboxModal .lightbox-control { color: #fff; font-size: 2em; cursor: pointer; user-select: none;",
    "  opacity: var(--lightbox-icon-opacity, 1); text-shadow: 0 0 0.2em #000; }",
    "#lightboxModal .lightbox-control:hover { opacity: 1; }",
    "#lightboxModal #modal_prev, #lightboxModal #modal_next { position: fixed; top: 50%; padding: 0 0.4em;",
    "  font-size: 3em; transform: translateY(-50%); z-index: 1; }",
    "#lightboxModal #modal_prev { left: 0; } #lightboxModal #modal_next { right: 0; }",
    "[id$='_gallery'] .media-button img { cursor: zoom-in; }",
  ].join("\n");

  function build() {
    const style = document.createElement("style");
    style.id = "sd-lightbox-style";
    style.textContent = CSS;
    document.head.appendChild(style);
    modal = document.createElement("div");
    modal.id = "lightboxModal";
    modal.tabIndex = 0;
    modal.style.display = "none";
    const toolbar = document.createElement("div");
    toolbar.className = "modalControls";
    toolbar.appendChild(button("modal_zoom", "\u2921", "Toggle zoomed view", toggleZoom));
    toolbar.appendChild(button("modal_close", "\u2716", "Close image viewer", close));
    image = document.createElement("img");
    image.id = "modalImage";
    image.addEventListener("click", function (ev) { ev.stopPropagation(); toggleZoom(); });
    modal.appendChild(toolbar);
    modal.appendChild(button("modal_prev", "\u2039", "Previous image", function () { step(-1); }));
    modal.appendChild(image);
    modal.appendChild(button("modal_next", "\u203A", "Next image", function () { step(1); }));
    modal.addEventListener("click", close);
    // keys on the whole page while open (a gallery thumbnail clicked by step() may take the focus)
    document.addEventListener("keydown", function (ev) {
      if (!isOpen()) return;
      if (ev.key === "ArrowLeft") step(-1);
      else if (ev.key === "ArrowRight") step(1);
      else if (ev.key === "Escape") close();
      else return;
      ev.preventDefault();
      ev.stopImmediatePropagation();
    }, true);
    document.body.appendChild(modal);
  }

  function isOpen() { return !!modal && modal.style.display !== "none"; }

  function show(i) {
    const images = galleryImages(gallery);
    if (!images.length) return;
    index = ((i % images.length) + images.length) % images.length;
    image.src = images[index].src;
    modal.dataset.index = String(index);
  }

  function step(delta) {
    if (!isOpen() || !gallery) return;
    show(index + delta);
    modal.dataset.moves = String(Number(modal.dataset.moves || 0) + 1);
    const buttons = galleryButtons(gallery);
    if (buttons[index]) buttons[index].click();  // keep the gallery's selection (send-to, save) on this image
    modal.focus();
  }

  function toggleZoom() { modal.classList.toggle("lightbox-zoomed"); }

  function close() {
    if (!modal) return;
    modal.style.display = "none";
    delete modal.dataset.live;
  }

  function open(root, src) {
    if (!modal) build();
    gallery = root;
    applyOpacity();
    modal.classList.toggle("lightbox-zoomed", !!(window.opts.js_modal_lightbox_initially_zoomed ?? true));
    modal.dataset.moves = "0";
    const images = galleryImages(root).map(function (img) { return img.src; });
    modal.style.display = "flex";
    show(Math.max(0, images.indexOf(src)));
    modal.focus();
  }

  document.addEventListener("click", function (ev) {
    const target = ev.target;
    if (!target || target.tagName !== "IMG" || !(window.opts.js_modal_lightbox ?? true)) return;
    const root = target.closest("[id$='_gallery']");
    if (!root || !target.closest(".media-button, .preview")) return;
    if (target.closest(".thumbnails")) return;
    ev.preventDefault();
    ev.stopPropagation();
    open(root, target.src);
  }, true);

  // Live preview: the newest preview image of the tab whose gallery is shown (A1111 progressbar.js).
  setInterval(function () {
    if (!isOpen() || !gallery || !window.opts.js_live_preview_in_modal_lightbox) return;
    const tab = gallery.id.replace(/_gallery$/, "");
    const running = document.querySelector("#" + tab + "_progress [data-job-state='running']");
    const preview = document.querySelector("#" + tab + "_preview img");
    if (running && preview && preview.src && image.src !== preview.src) {
      image.src = preview.src;
      modal.dataset.live = "1";
    }
  }, 100);

  // Gamepad: stick or d-pad left/right steps, repeating every js_modal_lightbox_gamepad_repeat ms while held.
  let lastMove = 0;
  function pollGamepads() {
    if (!window.opts.js_modal_lightbox_gamepad || !isOpen() || !navigator.getGamepads) return;
    let direction = 0;
    for (const pad of navigator.getGamepads()) {
      if (!pad) continue;
      const axis = pad.axes && pad.axes.length ? pad.axes[0] : 0;
      const left = axis < -0.3 || (pad.buttons && pad.buttons[14] && pad.buttons[14].pressed);
      const right = axis > 0.3 || (pad.buttons && pad.buttons[15] && pad.buttons[15].pressed);
      direction = left ? -1 : right ? 1 : direction;
    }
    const now = Date.now();
    if (!direction) { lastMove = 0; return; }
    if (now - lastMove < Number(window.opts.js_modal_lightbox_gamepad_repeat ?? 250)) return;
    lastMove = now;
    step(direction);
  }
  window.addEventListener("gamepadconnected", function () {
    if (!window.sdGamepadTimer) window.sdGamepadTimer = setInterval(pollGamepads, 20);
  });
})();
