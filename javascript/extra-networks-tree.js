// The directory view beside each Extra Networks page's cards (A1111 1.8+ "tree view"): the folders the page's
// networks sit in, from the cards' paths; a click on a folder shows only the cards inside it (click again: all).
// `extra_networks_tree_view_style` "Dirs" lists every folder as a button, "Tree" as a nested, collapsible tree;
// `extra_networks_tree_view_default_enabled` shows the view when the page opens (the 🗂 button toggles it);
// `extra_networks_tree_view_default_width` is its width in pixels; `extra_networks_show_hidden_directories` off
// leaves out dot folders, `extra_networks_dir_button_function` starts the Dirs labels with "/". Cards come from
// modules/ui/extra_networks.py (their `title` is the file's path).
(function () {
  function folders(cards) {
    const dirs = cards.map(function (card) {
      const path = (card.getAttribute("title") || "").replace(/\\/g, "/");
      return path.slice(0, path.lastIndexOf("/"));
    });
    let root = dirs.length ? dirs[0] : "";
    for (const dir of dirs) {
      while (root && dir !== root && !dir.startsWith(root + "/")) root = root.slice(0, root.lastIndexOf("/"));
    }
    const relative = new Set();
    for (const dir of dirs) {
      const parts = dir.slice(root.length).split("/").filter(Boolean);
      for (let i = 1; i <= parts.length; i++) relative.add(parts.slice(0, i).join("/"));
    }
    return { root: root, list: Array.from(relative).sort() };
  }

  function filter(page, root, folder) {
    const active = page.dataset.folder === folder ? "" : folder;
    page.dataset.folder = active;
    for (const card of page.querySelectorAll(".extra-network-card")) {
      const path = (card.getAttribute("title") || "").replace(/\\/g, "/");
      const inside = !active || path.startsWith(root + "/" + active + "/");
      card.classList.toggle("extra-network-outside-folder", !inside);
    }
    for (const el of page.querySelectorAll(".extra-network-folder")) {
      el.classList.toggle("selected", el.dataset.folder === active && !!active);
    }
  }

  function folderButton(page, root, folder, label) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "extra-network-folder";
    button.dataset.folder = folder;
    button.textContent = label;
    button.addEventListener("click", function (ev) { ev.preventDefault(); filter(page, root, folder); });
    return button;
  }

  function tree(page, root, list) {
    const nodes = { "": document.createElement("div") };
    for (const folder of list) {
      const cut = folder.lastIndexOf("/");
      const parent = nodes[cut === -1 ? "" : folder.slice(0, cut)] || nodes[""];
      const item = document.createElement("details");
      item.open = true;
      const summary = document.createElement("summary");
      summary.appendChild(folderButton(page, root, folder, folder.slice(cut + 1)));
      item.appendChild(summary);
      parent.appendChild(item);
      nodes[folder] = item;
    }
    return nodes[""];
  }

  function build(page) {
    const grid = page.querySelector(".extra-network-cards");
    if (!grid || page.querySelector(".extra-network-dirs")) return;
    const cards = Array.from(grid.querySelectorAll(".extra-network-card"));
    const found = folders(cards);
    // extra_networks_show_hidden_directories off: no buttons for folders whose name starts with "." (A1111)
    if (window.opts.extra_networks_show_hidden_directories === false) {
      found.list = found.list.filter(function (folder) {
        return !folder.split("/").some(function (part) { return part.startsWith("."); });
      });
    }
    // extra_networks_dir_button_function: Dirs buttons read "/sub/dir", from the model folder (A1111)
    const slash = window.opts.extra_networks_dir_button_function ? "/" : "";
    const panel = document.createElement("div");
    panel.className = "extra-network-dirs";
    panel.style.width = (Number(window.opts.extra_networks_tree_view_default_width) || 180) + "px";
    if ((window.opts.extra_networks_tree_view_style ?? "Dirs") === "Tree") {
      panel.dataset.style = "tree";
      panel.appendChild(tree(page, found.root, found.list));
    } else {
      panel.dataset.style = "dirs";
      for (const folder of found.list) panel.appendChild(folderButton(page, found.root, folder, slash + folder));
    }
    const shown = !!(window.opts.extra_networks_tree_view_default_enabled ?? true);
    panel.style.display = shown ? "" : "none";
    const body = document.createElement("div");
    body.className = "extra-network-body";
    grid.parentNode.insertBefore(body, grid);
    body.appendChild(panel);
    body.appendChild(grid);
    const controls = page.querySelector(".extra-network-controls");
    if (controls) {
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "extra-network-tree-toggle";
      toggle.title = "Show / hide the directory view";
      toggle.textContent = "\u{1F5C2}";
      toggle.addEventListener("click", function (ev) {
        ev.preventDefault();
        panel.style.display = panel.style.display === "none" ? "" : "none";
      });
      controls.appendChild(toggle);
    }
  }

  const style = document.createElement("style");
  style.textContent = [
    ".extra-network-body { display: flex; gap: 0.5em; align-items: flex-start; }",
    ".extra-network-body > .extra-network-cards { flex: 1; }",
    ".extra-network-dirs { flex: none; overflow: auto; max-height: 40em; display: flex; flex-direction: column;",
    "  gap: 0.2em; }",
    ".extra-network-dirs details { margin-left: 0.8em; } .extra-network-dirs > div > details { margin-left: 0; }",
    ".extra-network-folder { text-align: left; padding: 0.1em 0.4em; border-radius: 0.3em; cursor: pointer;",
    "  background: var(--button-secondary-background-fill, #444); }",
    ".extra-network-folder.selected { outline: 2px solid var(--color-accent, #f97316); }",
    ".extra-network-card.extra-network-outside-folder { display: none !important; }",
  ].join("\n");
  document.head.appendChild(style);

  if (window.onUiUpdate) {
    window.onUiUpdate(function () {
      for (const page of document.querySelectorAll(".extra-network-page")) build(page);
    });
  }
})();
