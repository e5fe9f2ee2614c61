// Scrawl's page, part 2 of 2: a drawing pad (Pointer Events: mouse, touch and pen), live recognition
// while you write, a mode for numbers and words (a line model by default; the old segmenter in the
// model picker, for comparison) and photo upload, talking to the JSON API. Showing the answers is
// answers.js's (window.ScrawlAnswers). Plain JS, no build step, no inline code (CSP-safe).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const { barRow, clearBoxes, pct, showReading, NOT_A_CHARACTER } = window.ScrawlAnswers;
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
    models: [], // from /api/models
    picked: { single: null, reading: null }, // the model chosen for one character, and for numbers and words
    charset: "",
    // A line model prefers common words (never changing a number): on 300 words of UNIPEN's validation
    // writers drawn like on this pad, 62% read exactly right with it, 48% without.
    lexicon: true,
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
    const m = currentModel();
    if (m) q.set("model", m.name);
    if (state.charset) q.set("charset", state.charset);
    if (lexiconApplies()) q.set("lexicon", String(state.lexicon));
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
      if (!res.ok && data.empty) return { empty: true, message: data.error }; // /api/read: nothing to read
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

  // Take the answer off the page (not only out of sight): nothing of it can show up with the next one.
  function hideResults() {
    $("single-result").hidden = true;
    $("multi-result").hidden = true;
    $("label").textContent = $("text").textContent = "";
    $("label").classList.remove("rejected");
    $("top3").replaceChildren();
    $("chars").replaceChildren();
    $("alternatives").replaceChildren();
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
    // A model with a "not a character" class may say so (a tap, a dash, a scribble): then that is the
    // answer, in words, and the characters it looks most like are only alternatives.
    $("label").textContent = data.rejected ? NOT_A_CHARACTER : data.label;
    $("label").classList.toggle("rejected", !!data.rejected);
    $("uncertain").hidden = !data.uncertain || !!data.rejected;
    $("top3").replaceChildren(...data.top_k.map((alt) => barRow(alt.label, alt.probability)));
    $("framed").src = data.framed;
    if (data.rejected) {
      setStatus(`not a character (${pct(data.not_a_character)}): if it is one, perhaps ${data.label} (${pct(data.confidence)})`);
    } else {
      setStatus(data.uncertain ? `probably ${data.label}, but not sure: see the alternatives` : `it reads ${data.label}`);
    }
  }

  // An /api/read answer (answers.js draws it); width x height: the picture's pixels.
  function showMulti(data, svg, width, height) {
    if (data.empty) return showNothing(data.message);
    $("single-result").hidden = true;
    $("multi-result").hidden = false;
    setStatus(showReading(data, svg, width, height));
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
      const img = $("photo");
      const [w, h] = data.size || [img.naturalWidth, img.naturalHeight];
      showMulti(data, $("photo-boxes"), w, h);
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
    const before = slot();
    state.mode = mode;
    if (state.models.length && slot() !== before) fillPicker(); // another set of models
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
    digits: "Digits (0-9)", number: "Numbers (0-9 . , - / : ...)", upper: "Capitals (A-Z)", lower: "Small letters (a-z)",
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

  // Which models a mode offers: for one character the character models; for numbers, words and photos
  // the line models, then the character models through the old segmenter (for comparison).
  const slot = () => (state.mode === "single" ? "single" : "reading");
  const isLine = (m) => m.kind === "line";

  function offered(which) {
    const chars = state.models.filter((m) => !isLine(m));
    if (which === "single") return [["", chars]];
    const lines = state.models.filter(isLine);
    return lines.length ? [["", lines], ["Old segmenter, for comparison", chars]] : [["", chars]];
  }

  function defaultPick(which) {
    const group = offered(which).find(([, models]) => models.length);
    return group ? (group[1].find((m) => m.default) || group[1][0]).name : null;
  }

  function currentModel() {
    return state.models.find((m) => m.name === state.picked[slot()]) || null;
  }

  // The word prior, for a line model reading words: never for digits or numbers only (it never changes a
  // number, and it keeps only the alternatives with the same number, so they would all be lost).
  function lexiconApplies() {
    const m = currentModel();
    return state.mode !== "single" && !!m && isLine(m) && !["digits", "number"].includes(state.charset);
  }

  // The model picker holds the mode's models (a picker only once there is a choice); the chosen one's
  // details, charsets and word prior go with it.
  function fillPicker() {
    const select = $("model");
    select.replaceChildren();
    let count = 0;
    for (const [label, models] of offered(slot())) {
      if (!models.length) continue;
      let parent = select;
      if (label) {
        parent = document.createElement("optgroup");
        parent.label = label;
        select.append(parent);
      }
      for (const m of models) {
        const opt = document.createElement("option");
        opt.value = m.name;
        opt.textContent = m.title || m.name; // short: the details are under "About this model"
        parent.append(opt);
        count++;
      }
    }
    const m = currentModel();
    if (m) select.value = m.name;
    $("model-picker").hidden = count < 2;
    showModel(m);
    offerCharsets(m);
    $("lexicon-picker").hidden = !lexiconApplies();
  }

  async function loadModels() {
    try {
      const res = await fetch("/api/models");
      state.models = await res.json();
      state.picked = { single: defaultPick("single"), reading: defaultPick("reading") };
      fillPicker();
    } catch (err) {
      setStatus(`cannot reach the server: ${err.message}`, "error");
    }
  }

  $("model").addEventListener("change", () => {
    state.picked[slot()] = $("model").value;
    fillPicker();
    rerun();
  });
  $("charset").addEventListener("change", () => {
    state.charset = $("charset").value;
    $("lexicon-picker").hidden = !lexiconApplies();
    rerun();
  });
  $("lexicon").checked = state.lexicon;
  $("lexicon").addEventListener("change", () => {
    state.lexicon = $("lexicon").checked;
    rerun();
  });

  setMode("single");
  loadModels();
})();
