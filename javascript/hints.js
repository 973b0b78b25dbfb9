// Tooltips of the tool buttons (A1111 hints.js titles), set as each button appears (Gradio mounts tabs lazily);
// a symbol button without a hint gets its aria-label; localization.js translates them.
// `window.titles` is A1111's global hint table: extension scripts add their own (`titles = {...titles, ...}`,
// sd-dynamic-prompts) and A1111 shows them on buttons and labels whose text is a key.
window.titles = {
    "\u{1F3B2}\uFE0F": "Set seed to -1, which will cause a new random number to be used every time",
    "\u{1F3B2}": "Set seed to -1, which will cause a new random number to be used every time",
    "\u267B\uFE0F": "Reuse seed from last generation, mostly useful if it was randomized",
    "\u2199\uFE0F": "Read generation parameters from prompt or last generation if prompt is empty into user interface.",
    "\u{1F5D1}\uFE0F": "Clear prompt",
    "\u{1F4CB}": "Apply selected styles to current prompt",
    "\u{1F4BE}": "Save the current prompts as a style",
    "\u{1F504}": "Refresh",
    "\u21C5": "Switch width/height",
    "\u270F\uFE0F": "Edit styles",
    "\u{1F58C}\uFE0F": "Edit styles",
    "\u{1F4C2}": "Open images output directory",
    "\u{1F5C3}\uFE0F": "Save zip archive with images to a dedicated directory (log/images)",
    "\u2728": "Create an upscaled version of the current image using hires fix settings.",
    "\u{1F3B4}": "Show/hide extra networks",
    "\u274C": "Close",
    "\u21BA": "Reset to default value",
    "Generate": "Right click generate forever menu",
    "Interrupt": "Stop processing images and return any results accumulated so far.",
    "Skip": "Stop processing current image and continue processing.",
};
(function () {
  const ownHints = Object.keys(window.titles).length;
  // By element id (tab name stripped): the same icon means different things in different places (💾).
  const byId = {
    save_: "Save the image to a dedicated directory (log/images).",
    save_zip_: "Save zip archive with images to a dedicated directory (log/images)",
  };
  const bySuffix = {
    _open_folder: "Open images output directory",
    _send_to_img2img: "Send image and generation parameters to img2img tab.",
    _send_to_inpaint: "Send image and generation parameters to img2img inpaint tab.",
    _send_to_extras: "Send image and generation parameters to extras tab.",
    _upscale: "Create an upscaled version of the current image using hires fix settings.",
  };
  function titleFor(btn) {
    const id = btn.id || "";
    for (const tab of ["txt2img", "img2img"]) {
      if (id === "save_zip_" + tab) return byId.save_zip_;
      if (id === "save_" + tab) return byId.save_;
      for (const [suffix, text] of Object.entries(bySuffix)) {
        if (id === tab + suffix) return text;
      }
    }
    return window.titles[btn.textContent.trim()];
  }
  // Ids whose icon means something else here than its usual hint.
  const byFullId = { txt2img_style_create: "Save the current prompts as a style",
    img2img_style_create: "Save the current prompts as a style" };
  function apply() {
    for (const btn of document.querySelectorAll("button")) {
      if (btn.title) continue;
      const t = byFullId[btn.id] || titleFor(btn) || btn.getAttribute("aria-label");
      if (t) btn.title = t;
    }
    // Labels, options and spans whose text is a key of `titles` (A1111 hints.js updateTooltip).
    const extra = Object.keys(window.titles).length > ownHints;  // only once extensions added hints
    for (const el of extra ? document.querySelectorAll("span, label, p, option") : []) {
      if (el.title || el.children.length) continue;
      const t = window.titles[el.textContent.trim()];
      if (typeof t === "string" && t) el.title = t;
    }
    // Top-bar boxes: their help line becomes the tooltip of the whole box (style.css hides the line).
    for (const info of document.querySelectorAll("#quicksettings .info-text")) {
      const block = info.closest("[id^='setting_']") || info.parentElement;
      const text = info.textContent.trim();
      if (block && text && block.title !== text) block.title = text;
    }
  }
  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; apply(); });
  }
  apply();
  new MutationObserver(schedule).observe(document.body, { childList: true, subtree: true, characterData: true });
})();
