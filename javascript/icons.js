// Icon buttons drawn as SVG (issue 17 item 8): A1111 labels its tool buttons with emoji (🔄 ↙️ 🗑️ 📋 💾 🎲 …),
// which show as empty boxes on a machine without a colour-emoji font. Each button whose whole text is one of
// these symbols gets `data-sd-icon=<name>`; style.css hides the text and paints the icon below as a CSS mask in
// the button's text colour. The SVG paths are drawn for this project (24×24 grid, 2 px strokes); no icon font or
// third-party artwork is bundled. The emoji stays the button's text, so A1111 scripts that find buttons by their
// text (and the hints in hints.js) still work.
(function () {
  const dot = (x, y) => `<circle cx='${x}' cy='${y}' r='1.6' fill='black' stroke='none'/>`;
  const icons = {
    refresh: [["\u{1F504}"], "<path d='M20 11a8 8 0 0 0-14.5-4.5M4 4v4h4M4 13a8 8 0 0 0 14.5 4.5M20 20v-4h-4'/>"],
    paste: [["\u2199\uFE0F", "\u2199"], "<path d='M18 6 6 18M6 9v9h9'/>"],
    clear: [["\u{1F5D1}\uFE0F", "\u{1F5D1}"], "<path d='M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13M10 11v6M14 11v6'/>"],
    styles: [["\u{1F4CB}"], "<path d='M9 3h6v4H9zM9 5H5v16h14V5h-4M8 12h8M8 16h6'/>"],
    edit: [["\u270F\uFE0F", "\u270F", "\u{1F58C}\uFE0F", "\u{1F58C}", "\u{1F4DD}"], "<path d='M4 20l1.2-5L16 4.2 19.8 8 9 18.8zM13.5 6.7l3.8 3.8'/>"],
    save: [["\u{1F4BE}"], "<path d='M4 4h12l4 4v12H4zM8 4v5h7V4M7 20v-7h10v7'/>"],
    archive: [["\u{1F5C3}\uFE0F", "\u{1F5C3}"], "<path d='M3 4h18v5H3zM5 9v11h14V9M10 13h4'/>"],
    folder: [["\u{1F4C2}", "\u{1F4C1}"], "<path d='M3 19V5h6l2 2h8v3M3 19l3-9h16l-3 9z'/>"],
    dice: [["\u{1F3B2}\uFE0F", "\u{1F3B2}"], "<rect x='3.5' y='3.5' width='17' height='17' rx='3'/>" +
      dot(8, 8) + dot(16, 8) + dot(12, 12) + dot(8, 16) + dot(16, 16)],
    reuse: [["\u267B\uFE0F", "\u267B"], "<path d='M7.5 5.5 10 3M7.5 5.5 10 8M7.5 5.5H13a7 7 0 1 1-7 7'/>"],
    swap: [["\u21C5"], "<path d='M8 20V4M4 8l4-4 4 4M16 4v16M12 16l4 4 4-4'/>"],
    sparkles: [["\u2728"], "<path d='M10 4l1.8 5.2L17 11l-5.2 1.8L10 18l-1.8-5.2L3 11l5.2-1.8zM18 3v5M15.5 5.5h5'/>"],
    networks: [["\u{1F3B4}"], "<path d='M7 3h10a1 1 0 0 1 1 1v16a1 1 0 0 1-1 1H7a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1zM9 8h6M9 12h6'/>"],
    close: [["\u274C", "\u2716\uFE0F", "\u2716"], "<path d='M6 6l12 12M18 6 6 18'/>"],
  };
  const byText = new Map();
  for (const [name, [chars]] of Object.entries(icons)) {
    for (const ch of chars) byText.set(ch, name); // with and without the emoji selector U+FE0F
  }
  function svgUrl(body) {
    const svg = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' stroke='black' " +
      "stroke-width='2' stroke-linecap='round' stroke-linejoin='round'>" + body + "</svg>";
    return `url("data:image/svg+xml,${encodeURIComponent(svg)}")`;
  }
  const css = Object.entries(icons)
    .map(([name, [, body]]) => `button[data-sd-icon='${name}'] { --sd-icon: ${svgUrl(body)}; }`).join("\n");
  const style = document.createElement("style");
  style.id = "sd-icons";
  style.textContent = css;
  document.head.appendChild(style);

  function mark(root) {
    for (const btn of root.querySelectorAll("button")) {
      const name = byText.get(btn.textContent.trim());
      if (name) {
        if (btn.dataset.sdIcon !== name) btn.dataset.sdIcon = name;
      } else if (btn.dataset.sdIcon) {
        delete btn.dataset.sdIcon; // the button's text changed to something else
      }
    }
  }
  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; mark(document); });
  }
  mark(document);
  new MutationObserver(schedule).observe(document.body, { childList: true, subtree: true, characterData: true });
  window.sdIconNames = () => Array.from(new Set(byText.values()));
})();
