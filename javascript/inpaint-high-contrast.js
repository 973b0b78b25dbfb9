// Inpaint mask drawn with a high-contrast checkerboard: setting img2img_inpaint_mask_high_contrast (A1111/Forge,
// default on: "use a checkerboard brush pattern instead of color brush"; Forge's inpaint canvas
// `ForgeCanvas(contrast_scribbles=...)`). Read here as opts.img2img_inpaint_mask_high_contrast, every frame, so
// turning it off in Settings shows the plain brush colour again.
//
// Gradio 6's ImageEditor draws its layers with pixi.js into one WebGL canvas, so CSS cannot reach the mask layer.
// pixi announces every Application through the devtools hook `globalThis.__PIXI_APP_INIT__`. For the Inpaint editor
// (#img2maskimg) each layer gets an overlay sprite in a container of its own on the stage (outside the image
// container, which is what the editor exports as background / layers / composite), following the layer's
// transform. The overlay's texture is composed from the layer's pixels without masks or filters (a sprite mask
// costs a full-size filter pass every frame and exhausted the software WebGL's memory):
//   inverse = white, then the layer drawn with the "erase" blend  -> alpha 1 - a
//   overlay = checkerboard, then `inverse` drawn with "erase"      -> checkerboard with the layer's alpha a
// The layer itself (what the editor draws into and sends as the mask) is only read.
(function () {
  "use strict";
  const EDITOR_ID = "img2maskimg";
  const apps = [];
  const previous = globalThis.__PIXI_APP_INIT__;
  globalThis.__PIXI_APP_INIT__ = function (app, version) {
    apps.push({app, parts: new Map(), composedAt: 0});
    if (typeof previous === "function") previous(app, version);
  };

  // the overlay is recomposed every frame shortly after pointer input in the editor, else twice a second
  let busyUntil = 0;
  for (const type of ["pointerdown", "pointermove", "pointerup", "click", "keydown"]) {
    document.addEventListener(type, (e) => {
      if (e.target && e.target.closest && e.target.closest("#" + EDITOR_ID)) busyUntil = performance.now() + 600;
    }, true);
  }

  // true / false once the page has the settings, null before (nothing changes until then)
  function enabled() {
    const opts = window.opts || {};
    return "img2img_inpaint_mask_high_contrast" in opts ? Boolean(opts.img2img_inpaint_mask_high_contrast) : null;
  }

  function checkerCanvas(square) {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = square * 2;
    const g = canvas.getContext("2d");
    g.fillStyle = "#ffffff";
    g.fillRect(0, 0, square * 2, square * 2);
    g.fillStyle = "#000000";
    g.fillRect(0, 0, square, square);
    g.fillRect(square, square, square, square);
    return canvas;
  }

  function findByLabel(node, label) {
    if (node.label === label) return node;
    for (const child of node.children || []) {
      const found = findByLabel(child, label);
      if (found) return found;
    }
    return null;
  }

  // The image container holds the background group (zIndex -1) and one container per layer with its sprite.
  function layerSprites(stage) {
    const out = [];
    for (const group of stage.children || []) {
      const inner = group.children || [];
      if (!inner.some((c) => c.zIndex === -1)) continue;
      for (const layer of inner) {
        if (layer.zIndex === -1) continue;
        const sprite = (layer.children || []).find((c) => c.label === "Sprite");
        if (sprite && !sprite.destroyed && sprite.texture && sprite.texture.width > 0) out.push(sprite);
      }
    }
    return out;
  }

  function attach(entry, sprite) {
    const app = entry.app;
    const tiling = findByLabel(app.stage, "TilingSprite");  // the editor's own transparency pattern
    if (!tiling) return null;
    const TilingSprite = tiling.constructor, Sprite = sprite.constructor, Container = app.stage.constructor;
    const Texture = tiling.texture.constructor, RenderTexture = sprite.texture.constructor;
    const w = sprite.texture.width, h = sprite.texture.height;
    const resolution = (sprite.texture.source && sprite.texture.source.resolution) || 1;
    const inverse = RenderTexture.create({width: w, height: h, resolution});
    const out = RenderTexture.create({width: w, height: h, resolution});
    const square = Math.max(2, Math.round(Math.max(w, h) / 64));
    const checkerTexture = Texture.from(checkerCanvas(square));

    const white = new Sprite(Texture.WHITE);
    white.width = w;
    white.height = h;
    const layerCopy = new Sprite(sprite.texture);
    layerCopy.blendMode = "erase";
    const inverseScene = new Container();
    inverseScene.addChild(white, layerCopy);

    const checker = new TilingSprite({texture: checkerTexture, width: w, height: h});
    const inverseCopy = new Sprite(inverse);
    inverseCopy.blendMode = "erase";
    const outScene = new Container();
    outScene.addChild(checker, inverseCopy);

    const overlay = new Sprite(out);
    overlay.eventMode = "none";
    const holder = new Container();
    holder.eventMode = "none";
    holder.zIndex = 998;  // above the layers, below the editor's brush cursor (999)
    holder.addChild(overlay);
    app.stage.addChild(holder);
    const parts = {texture: sprite.texture, inverse, out, checkerTexture, inverseScene, outScene, holder};
    entry.parts.set(sprite, parts);
    compose(app, parts);
    return parts;
  }

  function compose(app, parts) {
    app.renderer.render({container: parts.inverseScene, target: parts.inverse, clear: true});
    app.renderer.render({container: parts.outScene, target: parts.out, clear: true});
  }

  function detach(entry, sprite) {
    const parts = entry.parts.get(sprite);
    entry.parts.delete(sprite);
    if (!parts) return;
    if (parts.holder.parent) parts.holder.parent.removeChild(parts.holder);
    parts.holder.destroy({children: true});
    parts.inverseScene.destroy({children: true});
    parts.outScene.destroy({children: true});
    parts.inverse.destroy(true);
    parts.out.destroy(true);
    parts.checkerTexture.destroy(true);
  }

  function tick(entry, now) {
    const app = entry.app;
    const canvas = app.canvas;
    if (!canvas || !canvas.isConnected || !canvas.closest("#" + EDITOR_ID)) return;
    const on = enabled();
    if (on === null) return;
    const sprites = on ? layerSprites(app.stage) : [];
    for (const sprite of Array.from(entry.parts.keys())) {
      const parts = entry.parts.get(sprite);
      if (!sprites.includes(sprite) || parts.texture !== sprite.texture || !parts.holder.parent) detach(entry, sprite);
    }
    const recompose = now < busyUntil || now - entry.composedAt > 500;
    if (recompose) entry.composedAt = now;
    for (const sprite of sprites) {
      let parts = entry.parts.get(sprite);
      if (!parts) parts = attach(entry, sprite);
      else if (recompose) compose(app, parts);
      if (!parts) continue;
      parts.holder.setFromMatrix(sprite.worldTransform);
      parts.holder.visible = sprite.visible !== false && !(sprite.parent && sprite.parent.visible === false);
    }
  }

  function loop(now) {
    for (const entry of apps.slice()) {
      try {
        if (entry.app.stage && entry.app.renderer) tick(entry, now);
      } catch (e) {
        // a pixi structure this script does not know: leave that editor with the plain brush colour
        console.warn("inpaint high-contrast brush:", e);
        for (const sprite of Array.from(entry.parts.keys())) {
          try {
            detach(entry, sprite);
          } catch (_) { /* already gone */ }
        }
        apps.splice(apps.indexOf(entry), 1);
      }
    }
    requestAnimationFrame(loop);
  }
  requestAnimationFrame(loop);
})();
