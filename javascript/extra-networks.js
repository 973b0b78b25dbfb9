// Extra Networks cards (modules/ui/extra_networks.py): search, sort, click to insert into the prompt or load a
// checkpoint. A1111 behaviour (extraNetworks.js): the text goes at the end of the active tab's prompt, separated by
// the "extra_networks_add_text_separator" setting (opts.extra_networks_add_text_separator, default a space); a card
// whose text is already in the prompt is removed again, with its separator, on a second click.
(function () {
  function app() {
    const root = document.querySelector("gradio-app");
    return root && root.shadowRoot ? root.shadowRoot : document;
  }

  function setValue(el, value) {
    el.value = value;
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function insertIntoPrompt(tab, text) {
    const box = app().querySelector("#" + tab + "_prompt textarea");
    if (!box) return;
    const current = box.value;
    const wanted = window.opts && typeof opts.extra_networks_add_text_separator === "string" ?
      opts.extra_networks_add_text_separator : " ";
    if (current.includes(text)) {
      const added = wanted + text;
      const rest = wanted && current.includes(added) ? current.replace(added, "") : current.replace(text, "");
      setValue(box, rest.replace(/ {2,}/g, " ").trim());
    } else {
      const separator = current.length ? wanted : "";
      setValue(box, current + separator + text);
    }
    box.focus();
  }

  function selectCheckpoint(tab, title) {
    const box = app().querySelector("#" + tab + "_extra_networks_checkpoint textarea, #" + tab +
                                    "_extra_networks_checkpoint input");
    const button = app().querySelector("#" + tab + "_extra_networks_checkpoint_apply");
    if (!box || !button) return;
    setValue(box, title);
    setTimeout(function () { button.click(); }, 0);
  }

  function cardKey(card, field) {
    if (field === "Name") return card.dataset.name;
    if (field === "Date Created") return parseFloat(card.dataset.created);
    if (field === "Date Modified") return parseFloat(card.dataset.modified);
    return card.dataset.path;
  }

  function applySearchAndSort(page) {
    const query = (page.querySelector(".extra-network-search").value || "").toLowerCase().trim();
    const field = page.querySelector(".extra-network-sort").value;
    const descending = page.querySelector(".extra-network-order").dataset.descending === "1";
    const grid = page.querySelector(".extra-network-cards");
    const cards = Array.from(grid.querySelectorAll(".extra-network-card"));
    cards.sort(function (a, b) {
      const ka = cardKey(a, field), kb = cardKey(b, field);
      const order = ka < kb ? -1 : ka > kb ? 1 : 0;
      return descending ? -order : order;
    });
    for (const card of cards) {
      // extra_networks_hidden_models "When searched": cards from hidden (dot) folders show only for a search
      const hidden = card.dataset.hiddenDir === "1" && !query;
      card.style.display = !hidden && (!query || card.dataset.search.includes(query)) ? "" : "none";
      grid.appendChild(card);
    }
  }

  function pageOf(el) {
    return el.closest ? el.closest(".extra-network-page") : null;
  }

  function onClick(event) {
    const target = event.composedPath ? event.composedPath()[0] : event.target;
    if (!(target instanceof Element)) return;
    const order = target.closest(".extra-network-order");
    if (order) {
      order.dataset.descending = order.dataset.descending === "1" ? "0" : "1";
      order.textContent = order.dataset.descending === "1" ? "\u2193" : "\u2191";
      applySearchAndSort(pageOf(order));
      return;
    }
    const card = target.closest(".extra-network-card");
    if (!card) return;
    const action = JSON.parse(card.dataset.action);
    if (action.checkpoint) selectCheckpoint(action.tab, action.checkpoint);
    else if (action.insert) insertIntoPrompt(action.tab, action.insert);
  }

  function onInput(event) {
    const target = event.composedPath ? event.composedPath()[0] : event.target;
    if (!(target instanceof Element)) return;
    if (target.matches(".extra-network-search, .extra-network-sort")) applySearchAndSort(pageOf(target));
  }

  function onKey(event) {
    const target = event.composedPath ? event.composedPath()[0] : event.target;
    if (event.key === "Enter" && target instanceof Element && target.matches(".extra-network-card")) onClick(event);
  }

  document.addEventListener("click", onClick, true);
  document.addEventListener("input", onInput, true);
  document.addEventListener("change", onInput, true);
  document.addEventListener("keydown", onKey, true);
  // Sort new cards (page load, refresh) with the page's default field and order.
  new MutationObserver(function (records) {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (!(node instanceof Element)) continue;
        const pages = node.matches(".extra-network-page") ? [node] : node.querySelectorAll(".extra-network-page");
        for (const page of pages) applySearchAndSort(page);
      }
    }
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
