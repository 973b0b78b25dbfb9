// What the page does around a running job and the output panel (A1111 javascript/progressbar.js, ui.js and the
// CSS A1111 adds from settings), driven by the settings in `opts`:
// * show_progress_in_title: the window title starts with "[45% ETA: 12s]" while a job runs, restored after;
// * prevent_screen_sleep_during_generation: a screen wake lock is held while a job runs (navigator.wakeLock);
// * show_progressbar: off hides the bar ("45% ETA") of the progress area, its text stays;
// * gallery_height: any CSS height for the txt2img/img2img result galleries ("" keeps the built-in height);
// * disable_token_counters: hides the "N/75" token counters of the prompts;
// * Gradio's own progress overlay on the results is hidden unless started with --no-progressbar-hiding.
// The progress area's `data-job-state` (modules/ui/gallery.py progress_html) tells when a job runs.
(function () {
  const TABS = ["txt2img", "img2img"];
  let baseTitle = null;
  let wakeLock = null;
  let wakeWanted = false;

  function styleSheet() {
    let el = document.getElementById("sd-progress-ui-style");
    if (!el) {
      el = document.createElement("style");
      el.id = "sd-progress-ui-style";
      document.head.appendChild(el);
    }
    return el;
  }

  function applyStyles() {
    // Gradio's own progress on the output panel, shown only with --no-progressbar-hiding (modules/ui/gallery.py
    // gradio_progress gives it "full" then); A1111 hides it with its css_hide_progressbar.
    const rules = ["#txt2img_results [data-testid='status-tracker'].minimal, " +
                   "#img2img_results [data-testid='status-tracker'].minimal { display: none !important; }"];
    if (!(window.opts.show_progressbar ?? true)) {
      rules.push(".progress-area .progressDiv { display: none !important; }");
    }
    if (window.opts.disable_token_counters) rules.push(".token-counter { display: none !important; }");
    const height = String(window.opts.gallery_height || "").trim();
    if (height && !/[;{}<>]/.test(height)) {
      for (const tab of TABS) {
        rules.push("#" + tab + "_gallery { height: " + height + " !important; max-height: none !important; }");
        rules.push("#" + tab + "_gallery .grid-wrap, #" + tab + "_gallery .preview { height: 100% !important; " +
                   "max-height: none !important; }");
      }
    }
    styleSheet().textContent = rules.join("\n");
  }

  function runningBar() {
    for (const tab of TABS) {
      const state = document.querySelector("#" + tab + "_progress [data-job-state='running']");
      if (state) return state;
    }
    return null;
  }

  function setTitle(running) {
    if (baseTitle === null) baseTitle = document.title;
    if (!running || !(window.opts.show_progress_in_title ?? true)) {
      if (document.title !== baseTitle) document.title = baseTitle;
      return;
    }
    const bar = running.querySelector(".progress");
    const text = bar ? bar.textContent.trim() : "";
    const title = text ? "[" + text + "] " + baseTitle : baseTitle;
    if (document.title !== title) document.title = title;
  }

  function holdWakeLock(running) {
    const want = !!running && !!(window.opts.prevent_screen_sleep_during_generation ?? true);
    if (want === wakeWanted) return;
    wakeWanted = want;
    if (want) {
      document.body.dataset.wakeLock = "requested";
      if (!navigator.wakeLock) return;
      navigator.wakeLock.request("screen").then(function (lock) {
        if (!wakeWanted) { lock.release(); return; }
        wakeLock = lock;
        document.body.dataset.wakeLock = "held";
      }).catch(function () { document.body.dataset.wakeLock = "refused"; });
    } else {
      if (wakeLock) wakeLock.release().catch(function () {});
      wakeLock = null;
      if (document.body.dataset.wakeLock) document.body.dataset.wakeLock = "released";
    }
  }

  function tick() {
    const running = runningBar();
    setTitle(running);
    holdWakeLock(running);
  }

  if (window.onOptionsChanged) window.onOptionsChanged(applyStyles);
  if (window.onOptionsAvailable) window.onOptionsAvailable(applyStyles);
  setInterval(tick, 200);
})();
