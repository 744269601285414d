// The HTML build report: draws the report JSON (the `--format json` schema of
// buildkit_progressui::report) embedded in <script id="report-data">. Vanilla JS, no library;
// every text from the data goes in through textContent or an attribute, never as markup.
"use strict";
(function () {
  const report = JSON.parse(document.getElementById("report-data").textContent);
  const timeline = report.timeline || [];
  const byDigest = new Map(timeline.map((s) => [s.digest, s]));
  const OUTCOMES = ["done", "cached", "failed", "canceled", "interrupted"];
  // Stage colours stay clear of the outcome colours (blue, grey, red, purple, orange).
  const STAGE_COLOURS = ["#59a14f", "#76b7b2", "#b07aa1", "#9c755f", "#edc948", "#ff9da7", "#8cd17d", "#bab0ac"];

  // The time axis spans the wall time (or the latest end, if later); never 0.
  let span = report.wall_time_s || 0;
  for (const s of timeline) {
    span = Math.max(span, s.end_s || 0);
    for (const [, b] of s.intervals || []) span = Math.max(span, b);
  }
  if (!(span > 0)) span = 1;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function secs(s) {
    if (!(s >= 0)) return "–";
    if (s >= 60) return Math.floor(s / 60) + "m " + String(Math.round(s % 60)).padStart(2, "0") + "s";
    return s.toFixed(s < 10 ? 2 : 1) + "s";
  }
  function pct(s) {
    return (100 * Math.min(Math.max(s, 0), span)) / span + "%";
  }
  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }
  // A round tick step giving about 8 ticks over the span: 1, 2 or 5 × 10^k seconds.
  function tickStep() {
    const raw = span / 8;
    const pow = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / pow;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * pow;
  }

  // ---- header: the totals -------------------------------------------------------------------
  const steps = report.steps || {};
  const totals = document.getElementById("totals");
  function card(key, label, value, sub) {
    const c = el("div", "card");
    c.dataset.total = key;
    c.append(el("div", "label", label), el("div", "value", value));
    if (sub) c.append(el("div", "sub", sub));
    totals.append(c);
  }
  const counts = OUTCOMES.concat(["pending"])
    .filter((k) => steps[k] > 0 || k === "done" || k === "cached")
    .map((k) => steps[k] + " " + k)
    .join(" · ");
  card("wall_time_s", "Wall time", secs(report.wall_time_s));
  card("steps", "Steps", String(steps.total || 0), counts);
  card("cache_ratio", "Cache hits", Math.round(100 * (report.cache_ratio || 0)) + "%", "cached / (done + cached)");
  const share = report.wall_time_s > 0 ? Math.round((100 * report.critical_path_s) / report.wall_time_s) + "% of wall time" : "";
  card("critical_path_s", "Critical path", secs(report.critical_path_s), share);
  card("warnings", "Warnings", String(report.warnings || 0));
  card("log_bytes", "Log output", bytes(report.log_bytes || 0));

  const failure = report.failed || (report.build_error ? { name: "Build failed", error: report.build_error } : null);
  if (failure) {
    const banner = el("div", "banner", "✖ " + failure.name + (failure.error ? " — " + failure.error : ""));
    banner.id = "failure";
    banner.title = banner.textContent;
    if (failure.digest) banner.addEventListener("click", () => select(failure.digest, true));
    document.querySelector("header").append(banner);
  }

  // ---- legend ---------------------------------------------------------------------------------
  const legend = document.getElementById("legend");
  for (const [cls, label] of [["done", "Done"], ["cached", "Cached"], ["failed", "Failed"],
    ["canceled", "Canceled"], ["interrupted", "Interrupted"], ["critical", "Critical path"]]) {
    const item = el("span");
    item.append(el("i", "swatch " + cls), label);
    legend.append(item);
  }

  // ---- waterfall ------------------------------------------------------------------------------
  const chart = document.getElementById("chart");
  const step = tickStep();
  chart.style.setProperty("--tick", (100 * step) / span + "%");

  function row(cls, name, title, dur) {
    const r = el("div", "row " + cls);
    const n = el("div", "name", name);
    n.title = title;
    const track = el("div", "track");
    r.append(n, track, el("div", "dur", dur));
    return [r, track];
  }

  const [axis, ticks] = row("axis", "Step", "Steps in the order they started", "Time");
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  for (let t = 0; t <= span + step / 1e6; t += step) {
    const tick = el("span", "tick", t.toFixed(decimals) + "s");
    tick.style.left = pct(t);
    ticks.append(tick);
  }
  chart.append(axis);

  const stageColour = new Map();
  (report.stages || []).forEach((st, i) => stageColour.set(st.stage, STAGE_COLOURS[i % STAGE_COLOURS.length]));
  if ((report.stages || []).length > 0) {
    chart.append(el("div", "section-title", "Stages"));
    for (const st of report.stages) {
      const label = st.stage === "" ? "(single stage)" : st.stage;
      const [r, track] = row("stage-row", label, label, secs(st.duration_s));
      const bar = el("div", "stage-span");
      bar.style.left = pct(st.start_s);
      bar.style.width = "calc(" + pct(st.end_s) + " - " + pct(st.start_s) + ")";
      bar.style.background = stageColour.get(st.stage);
      bar.append(el("span", null, st.steps + (st.steps === 1 ? " step" : " steps")));
      bar.title = label + ": " + st.steps + " steps, " + secs(st.start_s) + " → " + secs(st.end_s);
      track.append(bar);
      chart.append(r);
    }
    chart.append(el("div", "section-title", "Steps"));
  }

  const rows = el("div", "rows");
  for (const s of timeline) {
    const outcome = OUTCOMES.includes(s.outcome) ? s.outcome : "done";
    const flags = outcome + (s.critical ? " critical" : "") + (s.internal ? " internal" : "");
    const dur = outcome === "cached" && !(s.duration_s >= 0.05) ? "cached" : secs(s.duration_s);
    const [r, track] = row("step " + flags, s.name, s.name, dur);
    r.dataset.digest = s.digest;
    if (s.stage !== null && s.stage !== undefined && stageColour.has(s.stage)) {
      r.style.borderLeftColor = stageColour.get(s.stage);
    }
    // One bar per merged run interval (a step without any: its start to its end).
    const runs = s.intervals && s.intervals.length ? s.intervals : [[s.start_s, s.end_s]];
    for (const [a, b] of runs) {
      const bar = el("div", "bar " + flags);
      bar.dataset.digest = s.digest;
      bar.style.left = pct(a);
      bar.style.width = "calc(" + pct(b) + " - " + pct(a) + ")";
      bar.title = s.name + "\n" + secs(a) + " → " + secs(b) + " (" + secs(b - a) + ")";
      track.append(bar);
    }
    rows.append(r);
  }
  chart.append(rows);
  if (timeline.length === 0) chart.append(el("div", "empty", "No step started."));

  // ---- details panel --------------------------------------------------------------------------
  const details = document.getElementById("details");
  let pinned = null;

  function show(s) {
    details.replaceChildren();
    if (!s) {
      details.append(el("div", "hint", "Hover over a step to see its details; click to keep them."));
      return;
    }
    details.append(el("h2", null, s.name));
    const dl = el("dl");
    function item(label, value) {
      const dd = el("dd");
      if (value instanceof Node) dd.append(value); else dd.textContent = value;
      dl.append(el("dt", null, label), dd);
    }
    item("Outcome", el("span", "badge " + s.outcome, s.outcome));
    item("Duration", secs(s.duration_s));
    item("Ran", secs(s.start_s) + " → " + secs(s.end_s) +
      ((s.intervals || []).length > 1 ? " in " + s.intervals.length + " runs" : ""));
    if (s.stage !== null && s.stage !== undefined) item("Stage", s.stage === "" ? "(single stage)" : s.stage);
    if (s.critical) {
      const of = report.wall_time_s > 0 ? " (" + Math.round((100 * s.duration_s) / report.wall_time_s) + "% of wall time)" : "";
      item("Critical", "on the critical path" + of);
    }
    item("Inputs", String((s.inputs || []).length));
    item("Digest", el("span", "mono", s.digest));
    details.append(dl);
    if (s.error) {
      details.append(el("h2", null, "Error"), el("pre", "error", s.error));
    }
    const lines = s.last_lines || [];
    details.append(el("h2", null, lines.length ? "Last log lines" : "No log output"));
    if (lines.length) {
      const log = el("pre", "log", lines.join("\n"));
      details.append(log);
      log.scrollTop = log.scrollHeight; // the latest lines in view
    }
  }

  function select(digest, pin) {
    const s = byDigest.get(digest);
    for (const r of rows.querySelectorAll(".step.selected")) r.classList.remove("selected");
    if (pin) pinned = s ? digest : null;
    if (s && pin) {
      const r = rows.querySelector('.step[data-digest="' + CSS.escape(digest) + '"]');
      if (r) {
        r.classList.add("selected");
        r.scrollIntoView({ block: "nearest" });
      }
    }
    show(s);
  }

  rows.addEventListener("mouseover", (e) => {
    const r = e.target.closest(".step");
    if (r && !pinned) show(byDigest.get(r.dataset.digest));
  });
  rows.addEventListener("click", (e) => {
    const r = e.target.closest(".step");
    if (!r) return;
    const digest = r.dataset.digest === pinned ? null : r.dataset.digest;
    select(digest, true);
    try {
      history.replaceState(null, "", digest ? "#" + digest : location.pathname + location.search);
    } catch (_) { /* e.g. an opaque origin: the link to the step is only a convenience */ }
  });

  // ---- critical path list ---------------------------------------------------------------------
  const path = document.getElementById("path");
  const cp = report.critical_path || [];
  path.append(el("h2", null, "Critical path · " + secs(report.critical_path_s)));
  if (cp.length === 0) path.append(el("div", "hint", "No step took any time."));
  const ol = el("ol", "path");
  for (const p of cp) {
    const li = el("li");
    li.title = p.name;
    li.append(secs(p.duration_s) + " ", el("span", "share", "(" + Math.round(100 * p.share) + "%)"), " " + p.name);
    li.addEventListener("click", () => select(p.digest, true));
    ol.append(li);
  }
  path.append(ol);

  // A step named in the address (`report.html#sha256:…`) is selected on load.
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted && byDigest.has(wanted)) select(wanted, true); else show(null);
})();
