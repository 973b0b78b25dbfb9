// How Extra Networks cards look (A1111 ui_extra_networks.py builds the same rules into the page's CSS):
// `extra_networks_card_width` / `extra_networks_card_height` in pixels (0 keeps the built-in size),
// `extra_networks_card_text_scale` scales the card's name and description (1 = original size) and
// `extra_networks_card_show_desc` off hides the description. The cards are modules/ui/extra_networks.py's.
(function () {
  function applyCardStyle() {
    let el = document.getElementById("sd-extra-network-card-style");
    if (!el) {
      el = document.createElement("style");
      el.id = "sd-extra-network-card-style";
      document.head.appendChild(el);
    }
    const rules = [];
    const width = Number(window.opts.extra_networks_card_width) || 0;
    const height = Number(window.opts.extra_networks_card_height) || 0;
    const scale = Number(window.opts.extra_networks_card_text_scale ?? 1);
    if (width > 0) rules.push(".extra-network-card { width: " + width + "px !important; }");
    if (height > 0) rules.push(".extra-network-card { height: " + height + "px !important; }");
    if (Number.isFinite(scale) && scale !== 1) {
      rules.push(".extra-network-card .extra-network-name { font-size: " + scale + "em; }");
      rules.push(".extra-network-card .extra-network-desc { font-size: " + (0.8 * scale) + "em; }");
    }
    if (!(window.opts.extra_networks_card_show_desc ?? true)) {
      rules.push(".extra-network-card .extra-network-desc { display: none !important; }");
    }
    el.textContent = rules.join("\n");
  }

  if (window.onOptionsAvailable) window.onOptionsAvailable(applyCardStyle);
  if (window.onOptionsChanged) window.onOptionsChanged(applyCardStyle);
})();
