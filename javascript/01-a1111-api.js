// The page API A1111 extension scripts call (A1111 script.js / ui.js names): gradioApp(), onUiLoaded(),
// onUiUpdate(), onAfterUiUpdate(), onOptionsChanged(), onOptionsAvailable(), onUiTabChange(), executeCallbacks(),
// the `opts` object (current settings, sent with each page load), get_uiCurrentTab(), get_uiCurrentTabContent(),
// updateInput(), uiElementIsVisible(), uiElementInSight(). Extension scripts are added after the app's own
// (modules/ui/app.py); onUiLoaded callbacks run once the UI, every script and `opts` are there (A1111 may run them
// before `opts` is filled) and every extension tab was mounted, onUiUpdate ones on every DOM change, onAfterUiUpdate
// ones 200 ms after the last change.
(function () {
  const queues = { loaded: [], update: [], after: [], options: [], available: [], tab: [] };
  let loaded = false;
  let scriptsIn = false;
  let optsIn = false;
  let started = false;
  let afterTimer = null;
  let lastTab = null;

  window.opts = window.opts || {};

  window.gradioApp = function () {
    const apps = document.getElementsByTagName("gradio-app");
    const app = apps.length ? apps[0] : document;
    // Gradio 6 has no shadow root: A1111 then gives the <gradio-app> element a getElementById (extensions call
    // gradioApp().getElementById(...)), answered by the document.
    if (app !== document && !app.getElementById) app.getElementById = function (id) { return document.getElementById(id); };
    return app.shadowRoot ? app.shadowRoot : app;
  };

  window.executeCallbacks = function (queue, arg) {
    for (const callback of queue) {
      try {
        callback(arg);
      } catch (e) {
        console.error("error running callback", callback, ":", e);
      }
    }
  };

  window.onUiLoaded = function (callback) { queues.loaded.push(callback); };
  window.onUiUpdate = function (callback) { queues.update.push(callback); };
  window.onAfterUiUpdate = function (callback) { queues.after.push(callback); };
  window.onOptionsChanged = function (callback) { queues.options.push(callback); };
  window.onOptionsAvailable = function (callback) {
    if (optsIn) callback(); else queues.available.push(callback);
  };
  window.onUiTabChange = function (callback) { queues.tab.push(callback); };

  function visible(el) {
    return !!el && getComputedStyle(el).display !== "none" && el.offsetParent !== null;
  }

  window.get_uiCurrentTab = function () {
    const root = gradioApp().querySelector("#tabs");
    if (!root) return null;
    return root.querySelector("[role='tab'][aria-selected='true'], button.selected");
  };

  window.get_uiCurrentTabContent = function () {
    const contents = gradioApp().querySelectorAll("#tabs > .tabitem, #tabs [role='tabpanel']");
    for (const el of contents) {
      if (el.closest("#tabs") === gradioApp().querySelector("#tabs") && visible(el) &&
          el.parentElement.closest("[role='tabpanel']") === null) return el;
    }
    for (const el of gradioApp().querySelectorAll("[id^='tab_']")) {
      if (visible(el) && el.parentElement.closest("[id^='tab_']") === null) return el;
    }
    return null;
  };

  window.updateInput = function (target) {
    const e = new Event("input", { bubbles: true });
    Object.defineProperty(e, "target", { value: target });
    target.dispatchEvent(e);
  };

  window.uiElementIsVisible = function (el) {
    if (el === document) return true;
    const style = getComputedStyle(el);
    if (style.display === "none") return false;
    return el.parentNode ? uiElementIsVisible(el.parentNode.host || el.parentNode) : true;
  };

  window.uiElementInSight = function (el) {
    const rect = el.getBoundingClientRect();
    return rect.bottom > 0 && rect.top < window.innerHeight;
  };

  function uiReady() {
    return !!gradioApp().querySelector("#txt2img_prompt");
  }

  // Gradio 6 mounts a tab's contents when it is first opened (and keeps them); Gradio 3, which A1111 extensions were
  // written for, had every tab in the page, and their page scripts look up their tab's elements from onUiLoaded
  // (images-browser). So each extension tab (a top-level tab marked `render_children` by
  // modules/ui/extension_ui.py) and the sub-tabs inside it are opened once, then the selected ones again, before the
  // onUiLoaded callbacks run.
  async function mountExtensionTabs() {
    const config = window.gradio_config;
    const ids = !config ? [] : config.components.filter(function (c) {
      return c.type === "tabitem" && c.props && c.props.render_children === true && c.props.elem_id;
    }).map(function (c) { return c.props.elem_id; });
    const top = document.querySelector("#tabs > .tab-wrapper [role='tablist'] > button[aria-selected='true']");
    const currentId = (top || get_uiCurrentTab() || {}).id;
    let opened = false;
    for (const id of ids) {
      const button = document.getElementById(id + "-button");
      if (document.getElementById(id) || !button) continue;
      button.click();
      opened = true;
      for (let i = 0; i < 100 && !document.getElementById(id); i++) await pause(20);
      // the tab's own sub-tabs too (images-browser reads every one of them), then its first choice again
      for (let pass = 0; pass < 2; pass++) await openInnerTabs(document.getElementById(id));
    }
    const current = currentId ? document.getElementById(currentId) : null;
    if (opened && current) current.click();
  }

  function pause(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  async function openInnerTabs(container) {
    if (!container) return;
    const buttons = Array.from(container.querySelectorAll("button[role='tab']"));
    const selected = buttons.filter(function (b) { return b.getAttribute("aria-selected") === "true"; })
      .map(function (b) { return b.id; });
    for (const button of buttons) {
      if (button.id && selected.indexOf(button.id) >= 0) continue;
      button.click();
      await pause(30);
    }
    for (const id of selected) {  // looked up again: Gradio may have re-rendered the buttons
      const button = id ? document.getElementById(id) : null;
      if (button) button.click();
      await pause(30);
    }
  }

  function afterChanges(mutations) {
    if (!loaded && uiReady() && started) {
      loaded = true;
      mountExtensionTabs().catch(function (e) { console.error("opening the extension tabs:", e); })
        .then(function () { executeCallbacks(queues.loaded); });
    }
    executeCallbacks(queues.update, mutations);
    clearTimeout(afterTimer);
    afterTimer = setTimeout(function () { executeCallbacks(queues.after); }, 200);
    const tab = get_uiCurrentTabContent();
    if (tab && tab !== lastTab) {
      lastTab = tab;
      executeCallbacks(queues.tab);
    }
  }

  function start() {
    if (started || !scriptsIn || !optsIn) return;
    started = true;
    afterChanges([]);
    new MutationObserver(afterChanges).observe(gradioApp(), { childList: true, subtree: true });
  }

  // Called by the page-load script once every extension script was added.
  window.sdExtensionsReady = function () {
    scriptsIn = true;
    start();
  };

  // Settings arrive with the page-load assets (modules/ui/app.py assets_payload).
  const applyAssets = window.sdApplyAssets;
  window.sdApplyAssets = function (json) {
    if (applyAssets) applyAssets(json);
    let payload = {};
    try { payload = JSON.parse(json || "{}"); } catch (e) { return; }
    if (payload.opts) {
      Object.assign(window.opts, payload.opts);
      if (!optsIn) {
        optsIn = true;
        executeCallbacks(queues.available);
      }
      executeCallbacks(queues.options);
      start();
    }
  };
})();
