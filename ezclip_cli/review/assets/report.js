// ezclip report: renders the run's data (the JSON above) into the page. No network, no libraries.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("ezclip-data").textContent);
  const S = data.summary, R = data.run, palette = data.palette;
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value !== undefined && value !== null) node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  };
  const fmt = (x, digits = 3) => (x === null || x === undefined ? "" : Number(x).toFixed(digits));
  const secs = (t) => (t === null || t === undefined ? "" : `${Number(t).toFixed(1)} s`);
  const color = (label) => palette[label] || "#888";
  const unit = S.kind === "videos" ? "video" : S.kind === "windows" ? "window" : "segment";

  // ---- per video: its best label and score (whole video: the row's; windows: the best window's)
  for (const v of data.videos) {
    const pairs = v.labels ? v.labels : (v.spans || []).filter((s) => s[2] !== null).map((s) => [s[2], s[3]]);
    v.allLabels = new Set(pairs.map((p) => p[0]));
    const best = pairs.reduce((a, b) => (a === null || b[1] > a[1] ? b : a), null);
    v.top = best ? best[0] : null;
    v.score = best ? best[1] : null;
    v.hasError = Boolean(v.failed || v.error || v.thumbError);
  }

  // ---- summary
  $("run-line").textContent =
    `${S.videos} videos${S.kind === "videos" ? "" : `, ${S.rows} ${unit}s`}; model ${R.model || R.modelIds.join(", ") || "unknown"}; ` +
    `${R.labels.length} labels; generated ${R.generated} by ezclip ${R.version}`;
  const stat = (name, value, bad) => el("div", { class: bad ? "stat bad" : "stat" }, el("b", { text: String(value) }), ` ${name}`);
  $("stats").append(
    stat("videos", S.videos), stat("tagged", S.tagged), stat("failed", S.failed, S.failed > 0),
    ...(S.kind === "videos" ? [] : [stat(`${unit}s`, S.rows)]), stat("abstained", S.abstained), stat("thumbnails unreadable", S.unreadable, S.unreadable > 0));
  if (S.sample) { $("sample-note").hidden = false; $("sample-note").textContent = S.sample; }
  const most = Math.max(1, ...S.histogram.map((h) => h[1]));
  for (const [label, count] of S.histogram) {
    $("label-hist").append(el("div", { class: "hbar", "data-label": label, onclick: () => { $("f-label").value = label; update(); } },
      el("span", { class: "name", text: label }),
      el("span", { class: "track" }, el("span", { class: "fill", style: `width:${(100 * count) / most}%;background:${color(label)}` })),
      el("span", { class: "n", text: String(count) })));
  }
  const bins = S.scores.bins, peak = Math.max(1, ...bins), width = 300, height = 80;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 14}`);
  bins.forEach((count, i) => {
    const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    const w = width / bins.length, h = (height * count) / peak;
    bar.setAttribute("x", i * w); bar.setAttribute("y", height - h); bar.setAttribute("width", Math.max(w - 1, 1));
    bar.setAttribute("height", h); bar.setAttribute("fill", "#4e79a7");
    svg.append(bar);
  });
  const line = document.createElementNS("http://www.w3.org/2000/svg", "line");
  line.setAttribute("y1", 0); line.setAttribute("y2", height); line.setAttribute("stroke", "#e15759"); line.setAttribute("visibility", "hidden");
  svg.append(line);
  for (const [x, text] of [[0, S.scores.low], [width - 18, S.scores.high]]) {
    const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
    label.setAttribute("x", x); label.setAttribute("y", height + 12); label.setAttribute("font-size", "10"); label.textContent = text;
    svg.append(label);
  }
  $("score-hist").append(svg);
  const info = [["model", R.model || ""], ["model ids", R.modelIds.join(", ")], ["label set", R.labelSpec || "as the rows rank"],
    ["label-set ids", R.labelsIds.join(", ")], ["top-k", R.topK], ["sources", R.sources.join(", ")]];
  for (const [k, v] of info) $("run-info").append(el("dt", { text: k }), el("dd", { text: String(v) }));
  $("footer").textContent = `ezclip report, ${data.videos.length} cards of ${S.videos} videos.`;
  for (const label of R.labels) $("f-label").append(el("option", { value: label, text: label }));

  // ---- the player: a video opens at a segment's start where the browser can play it
  function play(v, start) {
    const video = $("player-video");
    $("player-title").textContent = v.path;
    const playable = !v.mime || video.canPlayType(v.mime) !== "";
    $("player-note").textContent = playable ? `from ${secs(start || 0)}` : `this browser cannot play ${v.mime}; open ${v.href}`;
    video.src = `${v.href}#t=${Number(start || 0).toFixed(2)}`;
    if (typeof $("player").showModal === "function") $("player").showModal();
  }
  $("player-close").addEventListener("click", () => { $("player-video").pause(); $("player").close(); });

  // ---- cards
  function card(v) {
    const node = el("article", { class: v.hasError ? "card failed" : "card", "data-path": v.path });
    node.append(el("header", {}, el("a", { class: "path", href: v.href, text: v.path, onclick: (e) => { e.preventDefault(); play(v, 0); } }),
      el("span", { class: "muted", text: ` ${secs(v.duration)}` })));
    if (v.thumbs && v.thumbs.length) {
      const sheet = el("div", { class: "sheet" });
      for (const [t, uri] of v.thumbs) sheet.append(el("figure", { onclick: () => play(v, t) }, el("img", { src: uri, alt: `frame at ${secs(t)}` }), el("figcaption", { text: secs(t) })));
      node.append(sheet);
    }
    if (v.labels) {
      const list = el("ul", { class: "labels" });
      for (const [label, score] of v.labels) {
        list.append(el("li", {}, el("span", { class: "name", text: label }),
          el("span", { class: "bar" }, el("i", { style: `width:${Math.max(0, Math.min(1, score)) * 100}%;background:${color(label)}` })),
          el("span", { class: "s", text: fmt(score) })));
      }
      node.append(list);
    }
    if (v.spans && v.spans.length) {
      const end = Math.max(v.duration || 0, ...v.spans.map((s) => s[1])) || 1;
      const timeline = el("div", { class: "timeline" });
      for (const [s, e, label, score, error] of v.spans) {
        timeline.append(el("span", {
          class: error ? "span error" : "span",
          style: `left:${(100 * s) / end}%;width:${Math.max((100 * (e - s)) / end, 0.5)}%;background:${error ? "#ccc" : color(label)}`,
          title: `${secs(s)}-${secs(e)} ${error || `${label || "(none)"} ${fmt(score)}`}`,
          onclick: () => play(v, s),
        }));
      }
      node.append(timeline);
    }
    if (v.error) node.append(el("p", { class: "error", text: v.error }));
    if (v.thumbError) node.append(el("p", { class: "error", text: `thumbnails: ${v.thumbError}` }));
    return node;
  }

  // ---- filters, sorting, pages
  let page = 0;
  function matching() {
    const label = $("f-label").value, min = parseFloat($("f-min").value), errors = $("f-errors").checked;
    const query = $("f-q").value.trim().toLowerCase();
    let shown = data.videos.filter((v) =>
      (!label || v.allLabels.has(label)) &&
      (isNaN(min) || (v.score !== null && v.score >= min)) &&
      (!errors || v.hasError) &&
      (!query || v.path.toLowerCase().includes(query)));
    const sort = $("f-sort").value;
    if (sort === "score-desc") shown = shown.slice().sort((a, b) => (b.score ?? -9) - (a.score ?? -9));
    if (sort === "score-asc") shown = shown.slice().sort((a, b) => (a.score ?? 9) - (b.score ?? 9));
    return shown;
  }
  function update(keepPage) {
    if (!keepPage) page = 0;
    const shown = matching(), pages = Math.max(1, Math.ceil(shown.length / data.pageSize));
    page = Math.min(page, pages - 1);
    $("cards").replaceChildren(...shown.slice(page * data.pageSize, (page + 1) * data.pageSize).map(card));
    if (!shown.length) $("cards").append(el("p", { class: "empty", text: "No video matches these filters." }));
    $("count").value = `${shown.length} of ${data.videos.length} videos`;
    $("count").textContent = $("count").value;
    $("page").textContent = `page ${page + 1} of ${pages}`;
    $("prev").disabled = page === 0; $("next").disabled = page >= pages - 1;
    for (const bar of document.querySelectorAll(".hbar")) bar.classList.toggle("on", bar.dataset.label === $("f-label").value);
    const min = parseFloat($("f-min").value);
    if (!isNaN(min)) {
      const x = ((min - S.scores.low) / (S.scores.high - S.scores.low)) * width;
      line.setAttribute("x1", x); line.setAttribute("x2", x); line.setAttribute("visibility", "visible");
      const kept = data.videos.filter((v) => v.score !== null && v.score >= min).length;
      $("score-line").textContent = `${kept} of ${data.videos.length} videos score at least ${min}`;
    } else { line.setAttribute("visibility", "hidden"); $("score-line").textContent = ""; }
    if (!$("labels-view").hidden) gallery();
  }
  for (const id of ["f-label", "f-min", "f-errors", "f-q", "f-sort"]) $(id).addEventListener("input", () => update());
  $("f-reset").addEventListener("click", () => { $("filters").reset(); update(); });
  $("prev").addEventListener("click", () => { page -= 1; update(true); });
  $("next").addEventListener("click", () => { page += 1; update(true); });

  // ---- per label: a gallery of its videos, best score first
  function gallery() {
    const view = $("labels-view"), shown = matching();
    view.replaceChildren();
    for (const [label, count] of S.histogram) {
      if ($("f-label").value && label !== $("f-label").value) continue;
      const videos = shown.filter((v) => v.top === label).sort((a, b) => b.score - a.score);
      if (!videos.length) continue;
      const strip = el("div", { class: "strip" });
      for (const v of videos.slice(0, 24)) {
        const thumb = v.thumbs && v.thumbs.length ? el("img", { src: v.thumbs[Math.floor(v.thumbs.length / 2)][1], alt: v.path }) : null;
        strip.append(el("figure", { onclick: () => play(v, 0), title: v.path }, thumb, el("figcaption", { text: `${fmt(v.score)} ${v.path.split("/").pop()}` })));
      }
      view.append(el("section", { class: "gallery" },
        el("h2", {}, el("span", { class: "swatch", style: `background:${color(label)}` }), ` ${label} `,
          el("span", { class: "muted", text: `(${count} ${unit}s, ${videos.length} videos shown)` })), strip));
    }
  }
  function tab(which) {
    $("tab-videos").classList.toggle("active", which === "videos"); $("tab-labels").classList.toggle("active", which === "labels");
    $("videos-view").hidden = which !== "videos"; $("labels-view").hidden = which !== "labels";
    if (which === "labels") gallery();
  }
  $("tab-videos").addEventListener("click", () => tab("videos"));
  $("tab-labels").addEventListener("click", () => tab("labels"));
  update();
})();
