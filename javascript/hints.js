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
  function apply() {
    for (const btn of document.querySelectorAll("button")) {
      if (btn.title) continue;
      const t = titles[btn.textContent.trim()];
      if (t) btn.title = t;
    }
  }
  setInterval(apply, 1000);
})();
