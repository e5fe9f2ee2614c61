// Scrawl's page: a drawing pad (Pointer Events: mouse, touch and pen), live recognition, a multi-character
// mode and photo upload, talking to the JSON API. Plain JS, no build step, no inline code (CSP-safe).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  // Pad sizes in canvas pixels (the PNG the server gets); CSS scales the canvas to the screen.
  const PADS = {
    single: { width: 280, height: 280, pen: 18 },
    multi: { width: 640, height: 320, pen: 13 },
  };
  const DEBOUNCE_MS = 200; // live recognition waits this long after the last pen movement

  const pad = $("pad");
  const ctx = pad.getContext("2d");
  const state = {
    mode: "single",
    strokes: [], // each: array of {x, y} in canvas pixels
    current: null, // the stroke being drawn
    pointerId: null,
    timer: 0,
    seq: 0, // answers to older requests are ignored
    controller: null,
    model: null,
    charset: "",
    photoUrl: null,
    photoFile: null, // the picture on show, read again when the model or charset changes
  };
  const HINTS = {
    single: "Draw a character on the pad.",
    multi: "Write a number or a word on the pad.",
    photo: "Drop a photo or a scan of some writing, or choose a file.",
  };

  // --- drawing ------------------------------------------------------------------------------

  function point(e) {
    const r = pad.getBoundingClientRect();
    return { x: ((e.clientX - r.left) / r.width) * pad.width, y: ((e.clientY - r.top) / r.height) * pad.height };
  }

  function drawStroke(pts) {
    ctx.beginPath();
    if (pts.length === 1) {
      ctx.arc(pts[0].x, pts[0].y, ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    // Quadratic curves through the midpoints: smooth strokes from jagged pointer samples.
    ctx.moveTo(pts[0].x, pts[0].y);
    for (let i = 1; i < pts.length - 1; i++) {
      const mx = (pts[i].x + pts[i + 1].x) / 2;
      const my = (pts[i].y + pts[i + 1].y) / 2;
      ctx.quadraticCurveTo(pts[i].x, pts[i].y, mx, my);
    }
    const last = pts[pts.length - 1];
    ctx.lineTo(last.x, last.y);
    ctx.stroke();
  }

  let frameRequested = false;
  function redraw() {
    if (frameRequested) return;
    frameRequested = true;
    requestAnimationFrame(() => {
      frameRequested = false;
      // Transparent background, dark ink: the server reads the alpha channel as the ink.
      ctx.clearRect(0, 0, pad.width, pad.height);
      ctx.lineWidth = PADS[state.mode === "multi" ? "multi" : "single"].pen;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.strokeStyle = ctx.fillStyle = "#111827";
      for (const s of state.strokes) drawStroke(s);
      $("pad-hint").hidden = state.strokes.length > 0;
      $("undo").disabled = $("clear").disabled = state.strokes.length === 0;
    });
  }

  pad.addEventListener("pointerdown", (e) => {
    if (state.current || (e.pointerType === "mouse" && e.button !== 0)) return;
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    state.pointerId = e.pointerId;
    state.current = [point(e)];
    state.strokes.push(state.current);
    clearBoxes($("pad-boxes"));
    redraw();
  });

  pad.addEventListener("pointermove", (e) => {
    if (!state.current || e.pointerId !== state.pointerId) return;
    e.preventDefault();
    // Coalesced events: every sample the hardware delivered since the last frame, for smooth curves.
    const events = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
    for (const ev of events.length ? events : [e]) state.current.push(point(ev));
    redraw();
    schedule(DEBOUNCE_MS);
  });

  function endStroke(e) {
    if (!state.current || e.pointerId !== state.pointerId) return;
    state.current = null;
    state.pointerId = null;
    schedule(60);
  }
  pad.addEventListener("pointerup", endStroke);
  pad.addEventListener("pointercancel", endStroke);
  pad.addEventListener("contextmenu", (e) => e.preventDefault());

  function undo() {
    if (state.current) return;
    state.strokes.pop();
    redraw();
    schedule(0);
  }
  function clearPad() {
    state.strokes = [];
    state.current = null;
    redraw();
    schedule(0);
  }
  $("undo").addEventListener("click", undo);
  $("clear").addEventListener("click", clearPad);
  document.addEventListener("keydown", (e) => {
    if (state.mode === "photo") return;
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); undo(); }
    if (e.key === "Escape") clearPad();
  });

  // --- talking to the API -----------------------------------------------------------------------

  function schedule(ms) {
    clearTimeout(state.timer);
    state.timer = setTimeout(recognisePad, ms);
  }

  function query() {
    const q = new URLSearchParams({ top_k: "3" });
    if (state.model) q.set("model", state.model);
    if (state.charset) q.set("charset", state.charset);
    return q.toString();
  }

  // Forget the request on its way, if any: its answer (or its error) belongs to an input that is gone.
  function cancel() {
    clearTimeout(state.timer);
    if (state.controller) state.controller.abort();
    state.controller = null;
    return ++state.seq;
  }

  // The answer to the newest request, or null for a request overtaken by a newer one (its errors too).
  async function post(endpoint, body, headers) {
    const seq = cancel(); // only the newest drawing matters
    const controller = new AbortController();
    state.controller = controller;
    try {
      const res = await fetch(`/api/${endpoint}?${query()}`, { method: "POST", body, headers, signal: controller.signal });
      let data;
      try {
        data = await res.json();
      } catch (err) {
        throw new Error(`the server answered ${res.status} without JSON`);
      }
      if (seq !== state.seq) return null; // a newer request was sent meanwhile
      if (!res.ok) throw new Error(data.error || `the server answered ${res.status}`);
      return data;
    } catch (err) {
      if (seq !== state.seq || err.name === "AbortError") return null;
      throw err;
    }
  }

  // An error replaces the answer: nothing of the previous input stays on show.
  function showError(message) {
    hideResults();
    setStatus(message, "error");
  }

  function recognisePad() {
    if (state.mode === "photo") return;
    if (state.strokes.length === 0) {
      cancel(); // drop answers still on their way
      showNothing("nothing to read: the pad is empty");
      return;
    }
    const endpoint = state.mode === "multi" ? "read" : "predict";
    pad.toBlob(async (blob) => {
      if (!blob) return;
      try {
        setStatus("reading…");
        const data = await post(endpoint, blob, { "Content-Type": "image/png" });
        if (!data) return;
        if (endpoint === "predict") showSingle(data);
        else showMulti(data, $("pad-boxes"), pad.width, pad.height);
      } catch (err) {
        showError(err.message);
      }
    }, "image/png");
  }

  // --- showing answers --------------------------------------------------------------------------

  function setStatus(text, kind) {
    const s = $("status");
    s.textContent = text;
    s.className = "status" + (kind ? " " + kind : "");
  }

  function pct(p) {
    return (100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + "%";
  }

  // Take the answer off the page (not only out of sight): nothing of it can show up with the next one.
  function hideResults() {
    $("single-result").hidden = true;
    $("multi-result").hidden = true;
    $("label").textContent = $("text").textContent = "";
    $("top3").replaceChildren();
    $("chars").replaceChildren();
    clearBoxes($("pad-boxes"));
    clearBoxes($("photo-boxes"));
  }

  function showNothing(message) {
    hideResults();
    setStatus(message || "nothing to read", "empty");
  }

  function showSingle(data) {
    if (data.empty) return showNothing(data.message);
    $("multi-result").hidden = true;
    $("single-result").hidden = false;
    $("label").textContent = data.label;
    $("uncertain").hidden = !data.uncertain;
    const list = $("top3");
    list.replaceChildren();
    for (const alt of data.top_k) {
      const li = document.createElement("li");
      const cls = document.createElement("span");
      cls.className = "cls";
      cls.textContent = alt.label;
      const bar = document.createElement("span");
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.width = (100 * alt.probability).toFixed(1) + "%"; // CSSOM: allowed by the CSP
      bar.append(fill);
      const p = document.createElement("span");
      p.className = "pct";
      p.textContent = pct(alt.probability);
      li.append(cls, bar, p);
      list.append(li);
    }
    $("framed").src = data.framed;
    setStatus(data.uncertain ? `probably ${data.label}, but not sure: see the alternatives` : `it reads ${data.label}`);
  }

  // --- boxes and their labels -------------------------------------------------------------------

  const measure = document.createElement("canvas").getContext("2d");

  function clearBoxes(svg) {
    svg.replaceChildren();
  }

  function median(values) {
    const v = [...values].sort((a, b) => a - b);
    return v.length ? v[v.length >> 1] : 0;
  }

  // Where each character's label goes, in the picture's pixels ({x, y}: the middle of its baseline).
  // Centred above its box, else centred below it, else the nearest free spot slid sideways along either:
  // two labels never overlap, even for a narrow "1" written close to a "7", whose labels would share a spot.
  function placeLabels(characters, fontSize, width, height) {
    const ascent = 0.8 * fontSize, descent = 0.25 * fontSize, gap = 0.2 * fontSize, margin = 6;
    const placed = [];
    const rect = (cx, y, half) => ({ x0: cx - half, x1: cx + half, y0: y - ascent, y1: y + descent });
    const blocking = (r) => placed.filter((p) => r.x0 < p.x1 + gap && p.x0 < r.x1 + gap && r.y0 < p.y1 && p.y0 < r.y1);
    // The first free centre from `cx` on, sliding past what is in the way (dir 1: right, -1: left), or null.
    const slide = (cx, base, half, dir, lo, hi) => {
      for (let step = 0; step <= placed.length && cx >= lo && cx <= hi; step++) {
        const hits = blocking(rect(cx, base, half));
        if (!hits.length) return cx;
        cx = dir > 0 ? Math.max(...hits.map((p) => p.x1)) + gap + half : Math.min(...hits.map((p) => p.x0)) - gap - half;
      }
      return null;
    };
    const spots = new Array(characters.length);
    const order = characters.map((_, i) => i)
      .sort((a, b) => (characters[a].line || 0) - (characters[b].line || 0) || characters[a].box[0] - characters[b].box[0]);
    for (const i of order) {
      const [x, y, w, h] = characters[i].box;
      const half = measure.measureText(characters[i].label).width / 2 + 2; // and the white halo
      const lo = half, hi = Math.max(half, width - half);
      const centre = Math.min(Math.max(x + w / 2, lo), hi);
      const above = Math.max(ascent, y - margin - descent);
      const below = Math.min(height - descent, y + h + margin + ascent);
      let spot = null;
      for (const base of [above, below]) { // centred: above, else below
        if (!spot && !blocking(rect(centre, base, half)).length) spot = { x: centre, y: base };
      }
      for (const base of spot ? [] : [above, below]) { // else the nearest free spot to either side
        for (const dir of [1, -1]) {
          const cx = slide(centre, base, half, dir, lo, hi);
          if (cx !== null && (!spot || Math.abs(cx - centre) < Math.abs(spot.x - centre))) spot = { x: cx, y: base };
        }
      }
      spot = spot || { x: centre, y: above }; // a crowd with no free spot at all: above its box, as before
      placed.push(rect(spot.x, spot.y, half));
      spots[i] = spot;
    }
    return spots;
  }

  function drawBoxes(svg, characters, width, height) {
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.replaceChildren();
    // Labels sized to the writing (about half a character's height) within limits set by the picture.
    const side = Math.min(width, height);
    const fit = Math.min(side / 14, Math.max(side / 40, 0.45 * median(characters.map((c) => c.box[3]))));
    const shown = svg.getBoundingClientRect().width; // 0 while the picture is still loading
    const readable = shown > 0 ? (14 * width) / shown : 12; // at least 14 CSS pixels on the screen
    const fontSize = Math.max(12, Math.round(Math.max(fit, readable)));
    measure.font = `700 ${fontSize}px ${getComputedStyle(svg).fontFamily || "sans-serif"}`;
    const spots = placeLabels(characters, fontSize, width, height);
    characters.forEach((c, i) => {
      const [x, y, w, h] = c.box;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", x - 2);
      rect.setAttribute("y", y - 2);
      rect.setAttribute("width", w + 4);
      rect.setAttribute("height", h + 4);
      if (c.uncertain) rect.setAttribute("class", "uncertain");
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", spots[i].x.toFixed(1));
      text.setAttribute("y", spots[i].y.toFixed(1));
      text.setAttribute("font-size", fontSize);
      if (c.uncertain) text.setAttribute("class", "uncertain");
      text.textContent = c.label;
      svg.append(rect, text);
    });
  }

  function showMulti(data, svg, width, height) {
    if (data.empty) return showNothing(data.message);
    $("single-result").hidden = true;
    $("multi-result").hidden = false;
    $("text").textContent = data.text;
    drawBoxes(svg, data.characters, width || data.size[0], height || data.size[1]);
    const list = $("chars");
    list.replaceChildren();
    for (const c of data.characters) {
      const li = document.createElement("li");
      if (c.uncertain) li.className = "uncertain";
      const img = document.createElement("img");
      img.src = c.framed;
      img.width = img.height = 42;
      img.alt = `the model saw this for ${c.label}`;
      const label = document.createElement("span");
      label.className = "c-label";
      label.textContent = c.label;
      const alts = document.createElement("span");
      alts.className = "c-alt";
      alts.textContent = c.top_k.map((a) => `${a.label}  ${pct(a.probability)}`).join("\n");
      li.append(img, label, alts);
      list.append(li);
    }
    const unsure = data.characters.filter((c) => c.uncertain).length;
    const lines = data.lines > 1 ? ` on ${data.lines} lines` : "";
    setStatus(`${data.characters.length} character(s) found${lines}` + (unsure ? `, ${unsure} uncertain (dashed)` : ""));
  }


  // --- photos ---------------------------------------------------------------------------------

  // What the server reads (scrawl.vision.ink decodes PNG, JPEG, BMP, GIF, TIFF and WebP). A file without
  // a media type (browsers often give none) goes to the server, which says what is wrong with it.
  const TYPES = ["image/png", "image/jpeg", "image/bmp", "image/x-ms-bmp", "image/gif", "image/tiff", "image/webp"];
  const FORMATS = "PNG, JPEG, BMP, GIF, TIFF or WebP";

  // Forget the picture on show: the photo, its boxes and its answer go together.
  function clearPhoto() {
    if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
    state.photoUrl = null;
    state.photoFile = null;
    state.photoView = ""; // "" while loading, "shown", or "failed" (a format the browser cannot show, e.g. TIFF)
    state.photoRead = false;
    $("photo").removeAttribute("src");
    $("photo-wrap").hidden = true;
    $("photo-note").hidden = true;
    clearBoxes($("photo-boxes"));
  }

  function showPhotoNote() {
    $("photo-note").hidden = !(state.photoRead && state.photoView === "failed");
  }

  $("photo").addEventListener("load", () => {
    if (!state.photoUrl || $("photo").src !== state.photoUrl) return;
    state.photoView = "shown";
    $("photo-wrap").hidden = false; // only a picture that loaded: never a broken-image icon
  });
  $("photo").addEventListener("error", () => {
    if (!state.photoUrl || $("photo").src !== state.photoUrl) return;
    state.photoView = "failed";
    showPhotoNote();
  });

  async function readPhoto(file) {
    if (!file) return;
    cancel();
    hideResults(); // the answer of the previous picture goes at once
    if (file !== state.photoFile || !state.photoUrl) {
      clearPhoto();
      if (file.type && !TYPES.includes(file.type)) {
        $("file").value = "";
        showError(`${file.name} is ${file.type}, not a picture Scrawl reads: choose a ${FORMATS} file`);
        return;
      }
      state.photoFile = file;
      state.photoUrl = URL.createObjectURL(file);
      $("photo").src = state.photoUrl; // shown once it has loaded
    }
    const form = new FormData();
    form.append("file", file, file.name || "photo");
    try {
      setStatus(`reading ${file.name || "the picture"}…`);
      const data = await post("read", form, {});
      if (!data) return;
      state.photoRead = true;
      showMulti(data, $("photo-boxes"), data.size[0], data.size[1]);
      showPhotoNote();
    } catch (err) {
      clearPhoto(); // a picture the server cannot read is not shown either
      $("file").value = "";
      showError(file.name ? `${file.name}: ${err.message}` : err.message);
    }
  }

  const drop = $("drop");
  $("file").addEventListener("change", (e) => readPhoto(e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    readPhoto(e.dataTransfer.files[0]);
  });

  // --- modes and models -----------------------------------------------------------------------

  const tabs = [...document.querySelectorAll('.tabs [role="tab"]')];

  function setMode(mode) {
    state.mode = mode;
    for (const tab of tabs) {
      const selected = tab.dataset.mode === mode;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1; // one tab stop; the arrow keys move between tabs
    }
    $("draw-panel").hidden = mode === "photo";
    $("photo-panel").hidden = mode !== "photo";
    cancel(); // an answer on its way belongs to the mode being left
    hideResults();
    clearPhoto(); // leaving the photo tab forgets the photo: coming back starts afresh
    $("file").value = "";
    setStatus(HINTS[mode]);
    if (mode === "photo") return;
    const size = PADS[mode];
    pad.width = size.width;
    pad.height = size.height;
    $("pad-wrap").className = `pad-wrap ${mode}`;
    state.strokes = [];
    state.current = null;
    redraw();
  }
  tabs.forEach((tab, k) => {
    tab.addEventListener("click", () => {
      if (tab.dataset.mode !== state.mode) setMode(tab.dataset.mode);
    });
    tab.addEventListener("keydown", (e) => {
      const to = { ArrowRight: k + 1, ArrowLeft: k - 1, Home: 0, End: tabs.length - 1 }[e.key];
      if (to === undefined) return;
      e.preventDefault();
      const next = tabs[(to + tabs.length) % tabs.length];
      next.focus();
      if (next.dataset.mode !== state.mode) setMode(next.dataset.mode);
    });
  });

  const CHARSET_TITLES = {
    digits: "Digits (0-9)", upper: "Capitals (A-Z)", lower: "Small letters (a-z)",
    letters: "Letters (A-Z, a-z)", alnum: "Letters and digits",
  };

  // The footer's line and the details one click away ("About this model").
  function showModel(m) {
    $("model-info").textContent = m ? `model: ${m.title || m.name} · ${m.classes.length} classes` : "";
    $("model-details").hidden = !m;
    if (!m) return;
    $("about-description").textContent = m.description;
    $("about-classes").textContent = m.classes.join(m.classes.every((c) => c.length === 1) ? "" : " ");
    $("about-arch").textContent = m.arch || "not recorded";
    $("about-data").textContent = m.trained_on || "not recorded";
    $("about-name").textContent = `model=${m.name}`;
  }

  // A charset picker only when one would change the answers (the server offers only those).
  function offerCharsets(m) {
    const sets = (m && m.charsets) || [];
    const select = $("charset");
    select.replaceChildren();
    for (const name of ["", ...sets]) {
      const opt = document.createElement("option");
      opt.value = name;
      opt.textContent = name ? CHARSET_TITLES[name] || name : "All";
      select.append(opt);
    }
    state.charset = "";
    $("charset-picker").hidden = sets.length === 0;
  }

  // Read again after the model or charset changed; an empty pad keeps its hint.
  function rerun() {
    if (state.mode === "photo") {
      if (state.photoFile) readPhoto(state.photoFile);
      return;
    }
    if (state.strokes.length === 0) {
      cancel();
      hideResults();
      setStatus(HINTS[state.mode]);
      return;
    }
    schedule(0);
  }

  async function loadModels() {
    try {
      const res = await fetch("/api/models");
      const models = await res.json();
      const select = $("model");
      for (const m of models) {
        const opt = document.createElement("option");
        opt.value = m.name;
        opt.textContent = m.title || m.name; // short: the details are under "About this model"
        if (m.default) {
          opt.selected = true;
          state.model = m.name;
        }
        select.append(opt);
      }
      $("model-picker").hidden = models.length < 2; // a picker only once there is a choice
      const current = () => models.find((x) => x.name === state.model) || models[0];
      showModel(current());
      offerCharsets(current());
      select.addEventListener("change", () => {
        state.model = select.value;
        showModel(current());
        offerCharsets(current());
        rerun();
      });
      $("charset").addEventListener("change", () => {
        state.charset = $("charset").value;
        rerun();
      });
    } catch (err) {
      setStatus(`cannot reach the server: ${err.message}`, "error");
    }
  }

  setMode("single");
  loadModels();
})();
