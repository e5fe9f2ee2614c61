// Scrawl's page, part 1 of 2: showing answers. Probability bars, the boxes over the pad or the photo
// with labels that never overlap, and the reading of /api/read (a line model's or the segmenter's):
// the text, each character with its confidence (uncertain ones marked; pieces of ink the model calls
// "not a character" marked as such, and left out of the text), and the alternatives for each line. No state and no requests here: app.js (part 2) owns those and calls window.ScrawlAnswers.
"use strict";

window.ScrawlAnswers = (function () {
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function pct(p) {
    return (100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + "%";
  }

  // One row of a bar chart: the label, a bar as long as the probability, the percentage.
  function barRow(label, probability, labelClass) {
    const li = el("li");
    const bar = el("span", "bar");
    const fill = el("span", "fill");
    fill.style.width = (100 * probability).toFixed(1) + "%"; // CSSOM: allowed by the CSP
    bar.append(fill);
    li.append(el("span", labelClass || "cls", label), bar, el("span", "pct", pct(probability)));
    return li;
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

  // characters: [{label, box: [x, y, w, h], uncertain, rejected, line}] in the picture's pixels; a rejected
  // one (not a character) gets a dotted box and a cross, never a character.
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
      const kind = c.rejected ? "rejected" : c.uncertain ? "uncertain" : "";
      if (kind) rect.setAttribute("class", kind);
      const text = document.createElementNS(SVG, "text");
      text.setAttribute("x", spots[i].x.toFixed(1));
      text.setAttribute("y", spots[i].y.toFixed(1));
      text.setAttribute("font-size", fontSize);
      if (kind) text.setAttribute("class", kind);
      text.textContent = c.label;
      svg.append(rect, text);
    });
  }

  // --- a reading (/api/read) ----------------------------------------------------------------------

  // Where a line model's character is shown: its box from the reader covers the few columns where the
  // model spotted it (CTC answers in spikes), often a sliver; shown, it spans from halfway to the character
  // before it to halfway to the one after (the line's ends at the ends), over the line's height.
  function spread(line) {
    const mid = (c) => (c.box[0] + c.box[2]) / 2;
    return line.chars.map((c, i, all) => {
      const x0 = i ? (mid(all[i - 1]) + mid(c)) / 2 : line.box[0];
      const x1 = i < all.length - 1 ? (mid(c) + mid(all[i + 1])) / 2 : line.box[2];
      return [Math.round(x0), line.box[1], Math.round(Math.max(x1, x0 + 1)), line.box[3]];
    });
  }

  // The characters worth a box and a card (not the spaces between words; the segmenter's pieces of ink
  // that are not characters too, marked), each with the box it is shown in.
  function inkCharacters(data) {
    const out = [];
    data.lines.forEach((line, k) => {
      const shown = data.method === "line" ? spread(line) : line.chars.map((c) => c.box);
      line.chars.forEach((c, i) => {
        if (c.char.trim() || c.rejected) out.push({ ...c, line: k, shown: shown[i] });
      });
    });
    return out;
  }

  const NOT_A_CHARACTER = "Not a character";
  const CROSS = "\u00d7"; // a rejected piece's mark on the picture

  // A card per character: what it reads as, how sure (uncertain ones marked, in words too), and for the
  // segmenter the 28x28 image the character model saw with its alternatives.
  function characterCard(c) {
    if (c.rejected) return rejectedCard(c);
    const li = el("li", c.uncertain ? "uncertain" : "");
    if (c.framed) li.append(seenImage(c.framed, `the model saw this for ${c.char}`));
    const label = el("span", "c-label", c.char);
    const sure = el("span", "c-conf", pct(c.confidence));
    li.append(label, sure);
    if (c.uncertain) {
      const flag = el("span", "c-flag", "?"); // seen; screen readers hear "not sure" instead
      flag.setAttribute("aria-hidden", "true");
      li.append(flag, el("span", "sr-only", " (not sure)"));
    }
    if (c.top_k) li.append(alternativesText(c.top_k));
    return li;
  }

  // A piece of ink the model calls no character (a speck, a slip of the pen): said in words, with how
  // likely, and the characters it looks most like; it is not part of the text.
  function rejectedCard(c) {
    const li = el("li", "rejected");
    if (c.framed) li.append(seenImage(c.framed, "the model saw this, and says it is not a character"));
    const what = el("span", "c-none"); // the words over their probability: the card keeps its width
    what.append(el("span", "c-label", NOT_A_CHARACTER), el("span", "c-conf", pct(c.not_a_character || 0)));
    li.append(what);
    if (c.top_k) li.append(alternativesText(c.top_k));
    return li;
  }

  function seenImage(src, alt) {
    const img = el("img");
    img.src = src;
    img.width = img.height = 42;
    img.alt = alt;
    return img;
  }

  function alternativesText(topK) {
    return el("span", "c-alt", topK.map((a) => `${a.label}  ${pct(a.probability)}`).join("\n"));
  }

  // The alternatives of each line, best first, as bars (a heading per line when there are several).
  function alternatives(container, lines) {
    container.replaceChildren();
    lines.forEach((line, k) => {
      if (!line.alternatives.length) return;
      const title = lines.length > 1 ? `Line ${k + 1}: other readings` : "Other readings";
      const id = `alts-${k}`;
      container.append(el("h2", "alts-title", title));
      container.lastChild.id = id;
      const list = el("ol", "bars alts");
      list.setAttribute("aria-labelledby", id);
      for (const alt of line.alternatives) list.append(barRow(alt.text, alt.probability, "alt-text"));
      container.append(list);
    });
  }

  // Fill #text, #chars and #alternatives with `data` (an /api/read answer), draw its boxes on `svg`
  // (width x height: the picture's pixels); returns the status line.
  function showReading(data, svg, width, height) {
    document.getElementById("text").textContent = data.text;
    const chars = inkCharacters(data);
    const boxes = chars.map((c) => ({ label: c.rejected ? CROSS : c.char, uncertain: c.uncertain, rejected: !!c.rejected,
                                      line: c.line,
                                      box: [c.shown[0], c.shown[1], c.shown[2] - c.shown[0], c.shown[3] - c.shown[1]] }));
    drawBoxes(svg, boxes, width, height);
    const cards = document.getElementById("chars");
    cards.replaceChildren(...chars.map(characterCard));
    cards.classList.toggle("compact", !chars.some((c) => c.framed)); // a line model's: no images
    alternatives(document.getElementById("alternatives"), data.lines);
    const read = chars.filter((c) => !c.rejected);
    const unsure = read.filter((c) => c.uncertain).length;
    const none = chars.length - read.length;
    const lines = data.lines.length > 1 ? ` on ${data.lines.length} lines` : "";
    return `${read.length} character(s) found${lines}` + (unsure ? `, ${unsure} uncertain (dashed)` : "")
      + (none ? `, ${none} ${none > 1 ? "marks" : "mark"} not a character (${CROSS}, dotted)` : "");
  }

  return { pct, barRow, clearBoxes, drawBoxes, showReading, NOT_A_CHARACTER };
})();
