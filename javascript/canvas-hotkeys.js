// Canvas hotkeys of the img2img image editors (Sketch, Inpaint, Inpaint sketch), as A1111's built-in
// canvas-zoom-and-pan extension offers them, mapped onto the Gradio 6 editor's own controls:
// * `canvas_hotkey_zoom` (Shift/Ctrl/Alt) + wheel zooms the canvas in/out (the editor's Zoom in / Zoom out);
// * `canvas_hotkey_adjust` + wheel, `canvas_hotkey_shrink_brush` (Q) and `canvas_hotkey_grow_brush` (W) change
//   the brush size;
// * holding `canvas_hotkey_move` (F) pans the canvas with the mouse (the editor's Pan tool while the key is held);
// * `canvas_hotkey_fullscreen` (S) fits the editor to the window, `canvas_hotkey_reset` (R) resets zoom and size;
// * `canvas_hotkey_overlap` (O) lets the editor overlap the rest of the page (raised above it);
// * `canvas_show_tooltip` adds an ⓘ listing the hotkeys; `canvas_blur_prompt` takes the focus off the prompt when
//   the mouse enters a canvas (so typed hotkeys do not land in it); `canvas_disabled_functions` turns single
//   functions off; `canvas_auto_expand` on fits a new image to the canvas (the editor's own behaviour), off shows
//   it at 100%.
// Hotkeys act while the mouse is over an editor and no text box has the focus.
(function () {
  const EDITORS = ["img2img_sketch", "img2maskimg", "inpaint_sketch"];
  const MODIFIERS = { Shift: "shiftKey", Ctrl: "ctrlKey", Alt: "altKey" };
  let hovered = null;
  let panning = false;

  function disabled(name) {
    return (window.opts.canvas_disabled_functions ?? ["Overlap"]).includes(name);
  }

  function key(setting, fallback) {
    return String(setting ?? fallback).trim().toLowerCase();
  }

  function control(editor, label) {
    return editor.querySelector("button[aria-label='" + label + "']");
  }

  function zoom(editor, direction) {
    const button = control(editor, direction > 0 ? "Zoom in" : "Zoom out");
    if (button) button.click();
  }

  // Picks an entry of the editor's zoom menu ("Fit to screen", "100%", ...); the menu opens on a click on the
  // zoom number and is drawn a moment later.
  function zoomTo(editor, label, tries) {
    const number = editor.querySelector(".zoom-number [role='button']");
    if (!number) return;
    for (const button of editor.querySelectorAll(".zoom-controls button")) {
      if (button.textContent.trim() === label) { button.click(); return; }
    }
    if (tries === undefined) number.click();
    if ((tries || 0) < 20) setTimeout(function () { zoomTo(editor, label, (tries || 0) + 1); }, 50);
  }

  function resetZoom(editor) {
    editor.classList.remove("canvas-fullscreen");
    zoomTo(editor, "Fit to screen");
  }

  function brushSlider(editor) {
    let slider = editor.querySelector("input[type='range']");
    if (!slider) {
      const button = control(editor, "Brush Size");
      if (button) button.click();
      slider = editor.querySelector("input[type='range']");
    }
    return slider;
  }

  function resizeBrush(editor, delta) {
    const slider = brushSlider(editor);
    if (!slider) return;
    const min = Number(slider.min || 1), max = Number(slider.max || 100);
    const value = Math.min(max, Math.max(min, Number(slider.value) + delta));
    slider.value = String(value);
    slider.dispatchEvent(new Event("input", { bubbles: true }));
    slider.dispatchEvent(new Event("change", { bubbles: true }));
    editor.dataset.brushSize = String(value);
  }

  function setPan(editor, on) {
    if (panning === on) return;
    panning = on;
    const button = control(editor, on ? "Pan" : "Brush");
    if (button) button.click();
    editor.classList.toggle("canvas-panning", on);
  }

  const TEXT_INPUTS = ["text", "number", "search", "email", "password", "url"];
  function typing() {
    const el = document.activeElement;
    return !!el && (el.tagName === "TEXTAREA" || el.isContentEditable ||
                    (el.tagName === "INPUT" && TEXT_INPUTS.includes(el.type)));
  }

  function tooltip(editor) {
    if (editor.querySelector(".canvas-tooltip") || !(window.opts.canvas_show_tooltip ?? true)) return;
    const lines = [
      [key(window.opts.canvas_hotkey_zoom, "Alt") + " + wheel", "Zoom canvas", "Zoom"],
      [key(window.opts.canvas_hotkey_adjust, "Ctrl") + " + wheel", "Adjust brush size", "Adjust brush size"],
      [key(window.opts.canvas_hotkey_shrink_brush, "Q"), "Shrink the brush", "Hotkey shrink brush"],
      [key(window.opts.canvas_hotkey_grow_brush, "W"), "Enlarge the brush", "Hotkey enlarge brush"],
      [key(window.opts.canvas_hotkey_move, "F") + " (hold)", "Move the canvas", "Moving canvas"],
      [key(window.opts.canvas_hotkey_fullscreen, "S"), "Fullscreen", "Fullscreen"],
      [key(window.opts.canvas_hotkey_reset, "R"), "Reset zoom and canvas position", "Reset Zoom"],
      [key(window.opts.canvas_hotkey_overlap, "O"), "Toggle overlap", "Overlap"],
    ].filter(function (line) { return !disabled(line[2]); });
    const tip = document.createElement("div");
    tip.className = "canvas-tooltip";
    tip.textContent = "\u24D8";
    tip.title = lines.map(function (line) { return line[0].toUpperCase() + ": " + line[1]; }).join("\n");
    editor.appendChild(tip);
  }

  function install(editor) {
    if (editor.dataset.canvasHotkeys) return;
    editor.dataset.canvasHotkeys = "1";
    editor.addEventListener("mouseenter", function () {
      hovered = editor;
      if (window.opts.canvas_blur_prompt && document.activeElement && document.activeElement.closest &&
          document.activeElement.closest(".prompt")) document.activeElement.blur();
    });
    editor.addEventListener("mouseleave", function () {
      if (hovered === editor) hovered = null;
      setPan(editor, false);
    });
    editor.addEventListener("wheel", function (ev) {
      const direction = ev.deltaY < 0 ? 1 : -1;
      const zoomMod = MODIFIERS[window.opts.canvas_hotkey_zoom ?? "Alt"];
      const adjustMod = MODIFIERS[window.opts.canvas_hotkey_adjust ?? "Ctrl"];
      if (zoomMod && ev[zoomMod] && !disabled("Zoom")) {
        zoom(editor, direction);
      } else if (adjustMod && ev[adjustMod] && !disabled("Adjust brush size")) {
        resizeBrush(editor, direction * 5);
      } else {
        return;
      }
      ev.preventDefault();
      ev.stopPropagation();
    }, { passive: false, capture: true });
    // canvas_auto_expand: a new image is fitted to the canvas (the editor does this); off shows it at 100%
    editor.addEventListener("change", function (ev) {
      if (ev.target.type !== "file" || (window.opts.canvas_auto_expand ?? true)) return;
      for (const wait of [800, 2500]) setTimeout(function () { zoomTo(editor, "100%"); }, wait);
    }, true);
    tooltip(editor);
  }

  document.addEventListener("keydown", function (ev) {
    const editor = hovered;
    if (!editor || typing() || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const pressed = ev.key.toLowerCase();
    if (pressed === key(window.opts.canvas_hotkey_move, "F") && !disabled("Moving canvas")) {
      setPan(editor, true);
    } else if (pressed === key(window.opts.canvas_hotkey_shrink_brush, "Q") && !disabled("Hotkey shrink brush")) {
      resizeBrush(editor, -5);
    } else if (pressed === key(window.opts.canvas_hotkey_grow_brush, "W") && !disabled("Hotkey enlarge brush")) {
      resizeBrush(editor, 5);
    } else if (pressed === key(window.opts.canvas_hotkey_fullscreen, "S") && !disabled("Fullscreen")) {
      editor.classList.toggle("canvas-fullscreen");
    } else if (pressed === key(window.opts.canvas_hotkey_reset, "R") && !disabled("Reset Zoom")) {
      resetZoom(editor);
    } else if (pressed === key(window.opts.canvas_hotkey_overlap, "O") && !disabled("Overlap")) {
      editor.classList.toggle("canvas-overlap");
    } else {
      return;
    }
    ev.preventDefault();
  });
  document.addEventListener("keyup", function (ev) {
    if (hovered && ev.key.toLowerCase() === key(window.opts.canvas_hotkey_move, "F")) setPan(hovered, false);
  });

  const style = document.createElement("style");
  style.textContent = [
    ".canvas-fullscreen { position: fixed !important; inset: 0 !important; z-index: 1000 !important;",
    "  width: 100vw !important; height: 100vh !important; max-height: none !important; }",
    ".canvas-overlap { z-index: 999 !important; overflow: visible !important; }",
    ".canvas-tooltip { position: absolute; top: 0.3em; right: 0.5em; z-index: 5; cursor: help; opacity: 0.8; }",
  ].join("\n");
  document.head.appendChild(style);

  if (window.onUiUpdate) {
    window.onUiUpdate(function () {
      for (const id of EDITORS) {
        const editor = document.getElementById(id);
        if (editor) install(editor);
      }
    });
  }
})();
