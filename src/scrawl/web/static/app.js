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

  async function post(endpoint, body, headers) {
    if (state.controller) state.controller.abort(); // only the newest drawing matters
    const controller = new AbortController();
    state.controller = controller;
    const seq = ++state.seq;
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
  }

  function recognisePad() {
    if (state.mode === "photo") return;
    if (state.strokes.length === 0) {
      state.seq++; // drop answers still on their way
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
        if (err.name !== "AbortError") setStatus(err.message, "error");
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

  function showNothing(message) {
    $("single-result").hidden = true;
    $("multi-result").hidden = true;
    clearBoxes($("pad-boxes"));
    clearBoxes($("photo-boxes"));
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

  function clearBoxes(svg) {
    svg.replaceChildren();
  }

  function drawBoxes(svg, characters, width, height) {
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.replaceChildren();
    const fontSize = Math.max(12, Math.round(Math.min(width, height) / 14));
    for (const c of characters) {
      const [x, y, w, h] = c.box;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", x - 2);
      rect.setAttribute("y", y - 2);
      rect.setAttribute("width", w + 4);
      rect.setAttribute("height", h + 4);
      if (c.uncertain) rect.setAttribute("class", "uncertain");
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", x);
      text.setAttribute("y", Math.max(fontSize, y - 6));
      text.setAttribute("font-size", fontSize);
      if (c.uncertain) text.setAttribute("class", "uncertain");
      text.textContent = c.label;
      svg.append(rect, text);
    }
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

  const TYPES = ["image/png", "image/jpeg", "image/webp"];

  async function readPhoto(file) {
    if (!file) return;
    if (file.type && !TYPES.includes(file.type)) {
      setStatus(`${file.name} is ${file.type}: choose a PNG, JPEG or WebP picture`, "error");
      return;
    }
    if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
    state.photoUrl = URL.createObjectURL(file);
    $("photo").src = state.photoUrl;
    $("photo-wrap").hidden = false;
    clearBoxes($("photo-boxes"));
    const form = new FormData();
    form.append("file", file, file.name || "photo");
    try {
      setStatus(`reading ${file.name || "the picture"}…`);
      const data = await post("read", form, {});
      if (data) showMulti(data, $("photo-boxes"), data.size[0], data.size[1]);
    } catch (err) {
      if (err.name !== "AbortError") setStatus(err.message, "error");
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

  function setMode(mode) {
    state.mode = mode;
    for (const tab of document.querySelectorAll(".tabs button")) {
      tab.setAttribute("aria-selected", String(tab.dataset.mode === mode));
    }
    $("draw-panel").hidden = mode === "photo";
    $("photo-panel").hidden = mode !== "photo";
    $("single-result").hidden = $("multi-result").hidden = true;
    if (mode === "photo") {
      setStatus("Drop a photo or a scan of some writing, or choose a file.");
      return;
    }
    const size = PADS[mode];
    pad.width = size.width;
    pad.height = size.height;
    $("pad-wrap").className = `pad-wrap ${mode}`;
    state.strokes = [];
    state.current = null;
    clearBoxes($("pad-boxes"));
    redraw();
    setStatus(mode === "multi" ? "Write a number or a word on the pad." : "Draw a character on the pad.");
  }
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.addEventListener("click", () => setMode(tab.dataset.mode));
  }

  async function loadModels() {
    try {
      const res = await fetch("/api/models");
      const models = await res.json();
      const select = $("model");
      for (const m of models) {
        const opt = document.createElement("option");
        opt.value = m.name;
        opt.textContent = `${m.name}: ${m.description}`;
        if (m.default) {
          opt.selected = true;
          state.model = m.name;
        }
        select.append(opt);
      }
      $("model-picker").hidden = models.length < 2; // a picker only once there is a choice
      const charsetSelect = $("charset");
      const rerun = () => {
        if (state.mode === "photo") readPhoto($("file").files[0]);
        else schedule(0);
      };
      const describe = () => {
        const m = models.find((x) => x.name === state.model) || models[0];
        $("model-info").textContent = m ? `model: ${m.name} (${m.description})` : "";
        // A charset picker only for a model that reads more than one kind of character.
        const sets = (m && m.charsets) || [];
        charsetSelect.replaceChildren();
        for (const name of ["all", ...sets]) {
          const opt = document.createElement("option");
          opt.value = name === "all" ? "" : name;
          opt.textContent = name;
          charsetSelect.append(opt);
        }
        state.charset = "";
        $("charset-picker").hidden = sets.length < 2;
      };
      describe();
      select.addEventListener("change", () => {
        state.model = select.value;
        describe();
        rerun();
      });
      charsetSelect.addEventListener("change", () => {
        state.charset = charsetSelect.value;
        rerun();
      });
    } catch (err) {
      setStatus(`cannot reach the server: ${err.message}`, "error");
    }
  }

  setMode("single");
  loadModels();
})();
