// Client-side localization (A1111 localization.js, reference §14): exact trimmed matches of text nodes, title and
// placeholder attributes are replaced; numbers, emoji, SCRIPT/STYLE/TEXTAREA and the option lists of checkpoint,
// VAE, style and upscaler dropdowns are left alone; a MutationObserver translates nodes added later.
(function () {
  const skipIds = ["setting_sd_model_checkpoint", "setting_sd_vae", "txt2img_styles", "img2img_styles",
    "extras_upscaler_1", "extras_upscaler_2", "txt2img_hr_upscaler", "txt2img_hr_checkpoint"];
  const original = new WeakMap();
  function tr(text) {
    const loc = window.localization || {};
    const key = text.trim();
    if (!key || /^[\d.,\s%/:-]+$/.test(key)) return null;
    return Object.prototype.hasOwnProperty.call(loc, key) ? text.replace(key, loc[key]) : null;
  }
  function skip(node) {
    const el = node.nodeType === 3 ? node.parentElement : node;
    if (!el) return true;
    if (el.closest("script, style, textarea, .infotext-area, .token-counter")) return true;
    for (const id of skipIds) if (el.closest("#" + id + " ul, #" + id + " .token, #" + id + " input")) return true;
    return false;
  }
  function localizeNode(root) {
    if (!window.localization || !Object.keys(window.localization).length) return;
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, null);
    let n;
    while ((n = walker.nextNode())) {
      if (skip(n)) continue;
      if (!original.has(n)) original.set(n, n.nodeValue);
      const t = tr(original.get(n));
      if (t !== null && n.nodeValue !== t) n.nodeValue = t;
    }
    const els = root.querySelectorAll ? root.querySelectorAll("[title], [placeholder]") : [];
    for (const el of els) {
      for (const attr of ["title", "placeholder"]) {
        const v = el.getAttribute(attr);
        if (!v) continue;
        const t = tr(v);
        if (t !== null && t !== v) el.setAttribute(attr, t);
      }
    }
  }
  window.sdLocalizeAll = function () { localizeNode(document.body); };
  let pending = false;
  new MutationObserver(function () {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; window.sdLocalizeAll(); });
  }).observe(document.body, { childList: true, subtree: true, characterData: true });
})();
