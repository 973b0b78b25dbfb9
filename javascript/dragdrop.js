// Drop a PNG (or JPEG/WebP) onto a prompt box: its infotext is read on the server with the PNG Info parser and
// pasted into the tab (A1111 dragdrop.js). The file travels as a data URL through a hidden textbox.
(function () {
  function tabOf(el) {
    const box = el.closest && el.closest("#txt2img_prompt, #txt2img_neg_prompt, #img2img_prompt, #img2img_neg_prompt");
    return box ? box.id.split("_")[0] : null;
  }
  document.addEventListener("dragover", function (ev) {
    if (tabOf(ev.target) && ev.dataTransfer && Array.from(ev.dataTransfer.types).includes("Files")) {
      ev.preventDefault();
      ev.dataTransfer.dropEffect = "copy";
    }
  });
  document.addEventListener("drop", function (ev) {
    const tab = tabOf(ev.target);
    if (!tab || !ev.dataTransfer || !ev.dataTransfer.files.length) return;
    const file = ev.dataTransfer.files[0];
    if (!file.type.startsWith("image/")) return;
    ev.preventDefault();
    ev.stopPropagation();
    const reader = new FileReader();
    reader.onload = function () { window.sdSetText(tab + "_drop_data", String(reader.result)); };
    reader.readAsDataURL(file);
  }, true);
})();
