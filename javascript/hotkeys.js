// Ctrl/Alt+Enter generate, Alt+Enter skip while running, Esc interrupt (A1111 ui.js / generationParams);
// right-click "Generate forever" on Generate (A1111 contextMenus.js); notification.mp3 when a job ends.
(function () {
  function activeTab() {
    const t2i = document.getElementById("tab_txt2img");
    if (t2i && t2i.offsetParent !== null) return "txt2img";
    const i2i = document.getElementById("tab_img2img");
    if (i2i && i2i.offsetParent !== null) return "img2img";
    return null;
  }
  function click(id) { const el = document.getElementById(id); if (el) el.click(); }
  function running(tab) { return !!document.querySelector("#" + tab + "_progress [data-job-state='running']"); }
  document.addEventListener("keydown", function (ev) {
    const tab = activeTab();
    if (!tab) return;
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey) && !ev.altKey) {
      ev.preventDefault(); click(tab + "_generate");
    } else if (ev.key === "Enter" && ev.altKey) {
      ev.preventDefault(); click(running(tab) ? tab + "_skip" : tab + "_generate");
    } else if (ev.key === "Escape" && running(tab)) {
      ev.preventDefault(); click(tab + "_interrupt");
    }
  });

  // Generate forever: a context menu on the Generate buttons.
  window.sdForever = {};
  let menu = null;
  function closeMenu() { if (menu) { menu.remove(); menu = null; } }
  // only a user's click closes the menu: the forever loop's own click on Generate must not close it under the mouse
  document.addEventListener("click", function (ev) { if (ev.isTrusted) closeMenu(); });
  document.addEventListener("contextmenu", function (ev) {
    // while a job runs Interrupt/Skip cover Generate, so the menu is on them too (A1111 adds "Cancel generate
    // forever" to the Interrupt button as well)
    const btn = ev.target.closest && ev.target.closest(
      "#txt2img_generate, #img2img_generate, #txt2img_interrupt, #img2img_interrupt, #txt2img_skip, #img2img_skip");
    if (!btn) return;
    ev.preventDefault();
    closeMenu();
    const tab = btn.id.replace(/_(generate|interrupt|skip)$/, "");
    menu = document.createElement("nav");
    menu.id = "context-menu";
    menu.className = "context-menu";
    const item = document.createElement("a");
    item.textContent = window.sdForever[tab] ? "Cancel generate forever" : "Generate forever";
    item.addEventListener("click", function () {
      window.sdForever[tab] = !window.sdForever[tab];
      if (window.sdForever[tab] && !running(tab)) startAgain(tab);
      closeMenu();
    });
    menu.appendChild(item);
    menu.style.left = ev.pageX + "px";
    menu.style.top = ev.pageY + "px";
    document.body.appendChild(menu);
    if (window.sdLocalizeAll) window.sdLocalizeAll();
  });

  // Watch each tab's progress area: running -> done plays the sound and restarts a "forever" loop.
  const last = {};
  const pending = {};  // tab -> time a forever start was requested; cleared when a job runs or after 15 s
  function startAgain(tab) {
    if (tab in pending && Date.now() - pending[tab] < 15000) return;
    pending[tab] = Date.now();
    setTimeout(function () { if (window.sdForever[tab] && !running(tab)) click(tab + "_generate"); }, 300);
  }
  setInterval(function () {
    for (const tab of ["txt2img", "img2img"]) {
      const el = document.querySelector("#" + tab + "_progress [data-job-state]");
      const state = el ? el.getAttribute("data-job-state") : "idle";
      if (last[tab] === "running" && state === "done") {
        document.body.setAttribute("data-last-job-end", tab + ":" + Date.now());
        const src = (window.sdOpts || {}).notification;
        if (src) {
          const audio = new Audio(src);
          audio.volume = Math.min(1, Math.max(0, Number((window.sdOpts || {}).notification_volume ?? 100) / 100));
          audio.play().catch(function () {});
          window.sdNotificationsPlayed = (window.sdNotificationsPlayed || 0) + 1;
        }
        if (window.sdForever[tab]) startAgain(tab);
      } else if (window.sdForever[tab] && state !== "running") {
        // forever is on but no job runs or is being started (it was switched on while the page still showed the
        // previous job as running, or a start was lost): start one
        startAgain(tab);
      }
      if (state === "running") delete pending[tab];
      last[tab] = state;
    }
  }, 200);
})();
