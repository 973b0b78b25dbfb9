// Applies what the server sends on every page load (modules/ui/app.py assets_payload):
// localization, user.css, --theme, notification sound, key-edit precision. A1111: javascript/ui.js + localization.js.
(function () {
  window.sdOpts = window.sdOpts || {};
  window.sdApplyAssets = function (json) {
    let p = {};
    try { p = JSON.parse(json || "{}"); } catch (e) { return; }
    window.localization = p.localization || {};
    window.sdOpts = Object.assign(window.sdOpts, p);
    let userCss = document.getElementById("sd-user-css");
    if (!userCss) {
      userCss = document.createElement("style");
      userCss.id = "sd-user-css";
      document.head.appendChild(userCss);
    }
    userCss.textContent = p.user_css || "";
    if (p.theme === "dark") document.body.classList.add("dark");
    if (p.theme === "light") document.body.classList.remove("dark");
    if (window.localization.rtl) document.documentElement.setAttribute("dir", "rtl");
    if (window.sdLocalizeAll) window.sdLocalizeAll();
    document.body.setAttribute("data-sd-ready", "1");
  };
  window.sdApp = function () { return document.querySelector("gradio-app") || document; };
  window.sdEl = function (id) { return document.getElementById(id); };
  // Sets a Gradio textbox value from script and lets Gradio see it (input event), A1111 updateInput().
  window.sdSetText = function (elemId, value) {
    const box = document.querySelector("#" + elemId + " textarea, #" + elemId + " input");
    if (!box) return false;
    box.value = value;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    return true;
  };
})();
