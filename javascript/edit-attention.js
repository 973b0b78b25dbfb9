// Ctrl+Up / Ctrl+Down change the weight of the selection or the word under the cursor (A1111 edit-attention.js):
// "word" -> "(word:1.1)"; "(word:1.1)" -> "(word:1.2)"; a weight back at 1.0 removes the parentheses.
// Step: keyedit_precision_attention (0.1), or keyedit_precision_extra (0.05) inside <lora:...:w>.
// Without a selection the word around the cursor ends at the characters of `keyedit_delimiters` and at the
// whitespace named in `keyedit_delimiters_whitespace` (Tab, Carriage Return, Line Feed), as in A1111.
(function () {
  function isPromptBox(el) {
    return el && el.tagName === "TEXTAREA" && el.closest(".prompt");
  }
  function round(v, step) {
    const digits = String(step).split(".")[1] ? String(step).split(".")[1].length : 0;
    return Number(v.toFixed(Math.max(digits, 1)));
  }
  const WHITESPACE = { "Tab": "\t", "Carriage Return": "\r", "Line Feed": "\n" };
  // The characters that end a word: keyedit_delimiters plus the chosen whitespace (A1111 defaults when unset).
  function delimiters() {
    const chars = window.opts.keyedit_delimiters ?? ".,\\/!?%^*;:{}=`~() ";
    const spaces = window.opts.keyedit_delimiters_whitespace ?? Object.keys(WHITESPACE);
    return chars + spaces.map(function (name) { return WHITESPACE[name] || ""; }).join("");
  }
  // Returns [newText, newSelStart, newSelEnd] for text with the selection [s, e) and a step (signed).
  window.sdEditAttention = function (text, s, e, step, extraStep, stops) {
    const ends = stops === undefined ? delimiters() : stops;
    // inside <...:w> (extra networks): edit that weight
    const before = text.lastIndexOf("<", s), closeBefore = text.lastIndexOf(">", s - 1);
    if (before !== -1 && before > closeBefore) {
      const end = text.indexOf(">", s);
      if (end !== -1) {
        const inner = text.slice(before + 1, end);
        const m = inner.match(/^(.*:)([-\d.]+)$/);
        if (m) {
          const w = round(parseFloat(m[2]) + Math.sign(step) * extraStep, extraStep);
          const rep = "<" + m[1] + w + ">";
          return [text.slice(0, before) + rep + text.slice(end + 1), s, s];
        }
      }
    }
    if (s === e) {
      // expand to the word (or to an enclosing "(...:w)")
      const open = text.lastIndexOf("(", s), close = text.indexOf(")", s);
      if (open !== -1 && close !== -1 && text.lastIndexOf(")", s - 1) < open && /:[-\d.]+$/.test(text.slice(open + 1, close))) {
        s = open + 1; e = text.slice(0, close).lastIndexOf(":");
      } else {
        while (s > 0 && !ends.includes(text[s - 1])) s--;
        while (e < text.length && !ends.includes(text[e])) e++;
      }
    }
    if (s === e) return [text, s, e];
    let sel = text.slice(s, e);
    // selection already wrapped as "(sel:w)"
    if (text[s - 1] === "(" && text.slice(e).match(/^:([-\d.]+)\)/)) {
      const m = text.slice(e).match(/^:([-\d.]+)\)/);
      const w = round(parseFloat(m[1]) + step, step);
      const tail = text.slice(e + m[0].length);
      if (w === 1) return [text.slice(0, s - 1) + sel + tail, s - 1, e - 1];
      return [text.slice(0, e) + ":" + w + ")" + tail, s, e];
    }
    const w = round(1 + step, step);
    return [text.slice(0, s) + "(" + sel + ":" + w + ")" + text.slice(e), s + 1, e + 1];
  };
  document.addEventListener("keydown", function (ev) {
    if (!(ev.ctrlKey || ev.metaKey) || (ev.key !== "ArrowUp" && ev.key !== "ArrowDown")) return;
    const box = ev.target;
    if (!isPromptBox(box)) return;
    ev.preventDefault();
    const opts = window.opts || {};
    const base = Number(opts.keyedit_precision_attention || 0.1);
    const extra = Number(opts.keyedit_precision_extra || 0.05);
    const step = ev.key === "ArrowUp" ? base : -base;
    const [text, s, e] = window.sdEditAttention(box.value, box.selectionStart, box.selectionEnd, step, extra);
    box.value = text;
    box.setSelectionRange(s, e);
    box.dispatchEvent(new Event("input", { bubbles: true }));
  });
})();
