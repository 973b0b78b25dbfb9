// Tooltips of the tool buttons (A1111 hints.js titles); localization.js translates them.
(function () {
  const titles = {
    "\u{1F3B2}\uFE0F": "Set seed to -1, which will cause a new random number to be used every time",
    "\u{1F3B2}": "Set seed to -1, which will cause a new random number to be used every time",
    "\u267B\uFE0F": "Reuse seed from last generation, mostly useful if it was randomized",
    "\u2199\uFE0F": "Read generation parameters from prompt or last generation if prompt is empty into user interface.",
    "\u{1F5D1}\uFE0F": "Clear prompt",
    "\u{1F4CB}": "Apply selected styles to current prompt",
    "\u{1F4BE}": "Save the current prompts as a style",
    "\u{1F504}": "Refresh",
    "\u21C5": "Switch width/height",
    "Generate": "Right click generate forever menu",
    "Interrupt": "Stop processing images and return any results accumulated so far.",
    "Skip": "Stop processing current image and continue processing.",
  };
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
    return titles[btn.textContent.trim()];
  }
  function apply() {
    for (const btn of document.querySelectorAll("button")) {
      if (btn.title) continue;
      const t = titleFor(btn);
      if (t) btn.title = t;
    }
  }
  setInterval(apply, 1000);
})();
