// Alt+Left / Alt+Right move the comma-separated prompt element under the cursor (or the elements the selection
// touches) one place left or right, when `keyedit_move` is on (A1111 javascript/edit-order.js). Elements are
// re-joined with ", "; the moved element stays selected so repeated presses keep moving it.
(function () {
  function isPromptBox(el) {
    return el && el.tagName === "TEXTAREA" && el.closest(".prompt");
  }

  // Returns [newText, newSelStart, newSelEnd], or null when nothing can move.
  window.sdMovePromptElement = function (text, s, e, delta) {
    const items = text.split(",").map(function (item) { return item.trim(); });
    const first = (text.slice(0, s).match(/,/g) || []).length;
    const last = (text.slice(0, e).match(/,/g) || []).length;
    const target = first + delta;
    if (target < 0 || last + delta >= items.length) return null;
    const moved = items.splice(first, last - first + 1);
    items.splice(target, 0, ...moved);
    const joined = items.join(", ");
    const start = items.slice(0, target).join(", ").length + (target > 0 ? 2 : 0);
    return [joined, start, start + moved.join(", ").length];
  };

  document.addEventListener("keydown", function (ev) {
    if (!ev.altKey || ev.ctrlKey || ev.metaKey || (ev.key !== "ArrowLeft" && ev.key !== "ArrowRight")) return;
    const box = ev.target;
    if (!isPromptBox(box) || !window.opts.keyedit_move) return;
    ev.preventDefault();
    const result = window.sdMovePromptElement(box.value, box.selectionStart, box.selectionEnd,
                                              ev.key === "ArrowLeft" ? -1 : 1);
    if (!result) return;
    box.value = result[0];
    box.setSelectionRange(result[1], result[2]);
    box.dispatchEvent(new Event("input", { bubbles: true }));
  });
})();
