// Groove Studio page: talks only to the JSON API of docs/studio.md.
//
// A groove is GrooVAE's tensor: one row per 16th-note step, 27 numbers per row —
// hits (9, 0/1) | velocities (9, 0–1) | offsets (9, −1…1, in half-steps: a note plays at
// (step − offset/2) steps). Classes, bottom row first on screen: kick … ride.
"use strict";

const DRUMS = ["kick", "snare", "closed_hihat", "open_hihat", "low_tom", "mid_tom", "high_tom", "crash", "ride"];
const LABELS = ["Kick", "Snare", "Hi-hat", "Open hat", "Low tom", "Mid tom", "High tom", "Crash", "Ride"];
const COLORS = ["#ff6b5a", "#ffb547", "#4fd1e8", "#6aa8ff", "#b28dff", "#c99bff", "#dcaeff", "#ffd96b", "#8fe36f"];
const STEPS_PER_BAR = 16;
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

// ---------------------------------------------------------------------------------------------
// State shared by the whole page

const studio = {
  health: null,
  grooves: [],            // every Groove on the page (tests read this)
  ready: null,            // performance.now() when the first groove could be played
  audio: null,
  slots: { a: null, b: null },
};
window.studio = studio;

const settings = {
  bpm: () => fieldValue($("#bpm")),
  dynamics: () => Number($("#dynamics").value) / 100,
  timing: () => Number($("#timing").value) / 100,
};
const muted = new Set();  // drum classes muted on playback and export

function clamp(x, lo, hi) { return Math.min(hi, Math.max(lo, x)); }

// A number field's value as used: a whole number within the field's min–max (the server's limits),
// or the field's default when it holds no number.
function fieldValue(input) {
  const typed = input.valueAsNumber;
  return Number.isFinite(typed) ? clamp(Math.round(typed), Number(input.min), Number(input.max)) : Number(input.defaultValue);
}

// On change, the field is set to the value used, and the status line says why: what the field shows
// is what plays and exports.
function settleField(input) {
  const typed = input.valueAsNumber, used = fieldValue(input), field = input.closest(".field");
  if (used === typed) {  // a good value: a notice about this field is past
    if ($("#status").dataset.notice === input.id) status("");
    return;
  }
  input.value = used;
  const unit = $(".unit", field);
  const name = field.firstChild.textContent.trim(), range = `${input.min}–${input.max}${unit ? ` ${unit.textContent}` : ""}`;
  notice(input, Number.isFinite(typed) ? `${name} takes ${range}; using ${used}` : `${name} needs a number; using ${used}`);
}

// A notice in the status line, highlighted for a few seconds. Not under the field: there it would
// cover the next row of controls in a narrow window, and pushing the rows down would move them.
function notice(input, text) {
  const line = $("#status");
  status(text);
  line.dataset.notice = input.id;
  line.classList.add("notice");
  clearTimeout(line.timer);
  line.timer = setTimeout(() => line.classList.remove("notice"), 4000);
}

// ---------------------------------------------------------------------------------------------
// Messages: one line of status; errors in a box over the page's foot, so nothing below moves

function status(text) {
  const line = $("#status");
  line.textContent = text;
  delete line.dataset.notice;
  line.classList.remove("notice");
}

function showError(text) {
  const box = $("#error");
  $(".message", box).textContent = String(text).split("\n")[0];
  box.hidden = false;
}

function clearError() { $("#error").hidden = true; }

async function api(path, options = {}) {
  let reply;
  try {
    reply = await fetch(path, options);
  } catch (err) {
    throw new Error("the studio server is not reachable (was it stopped?)");
  }
  if (!reply.ok) {
    let message = `${reply.status} ${reply.statusText}`;
    try { message = (await reply.json()).error || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return reply;
}

function postJSON(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

// ---------------------------------------------------------------------------------------------
// Feel: what playback and export apply to a tensor

// Velocities spread around their mean by `dynamics`, offsets scaled by `timing`, muted drums
// removed (unless `mutes` is false). Returns a new tensor.
function withFeel(tensor, mutes = true) {
  const dyn = settings.dynamics(), tim = settings.timing();
  let sum = 0, count = 0;
  for (const row of tensor) for (let c = 0; c < 9; c++) if (row[c] > 0.5) { sum += row[9 + c]; count++; }
  const mean = count ? sum / count : 0;
  return tensor.map((row) => {
    const out = row.slice();
    for (let c = 0; c < 9; c++) {
      if (row[c] <= 0.5 || (mutes && muted.has(c))) { out[c] = 0; out[9 + c] = 0; out[18 + c] = 0; continue; }
      out[9 + c] = clamp(mean + dyn * (row[9 + c] - mean), 1 / 127, 1);
      out[18 + c] = clamp(tim * row[18 + c], -1, 1);
    }
    return out;
  });
}

function feelIsNeutral() { return settings.dynamics() === 1 && settings.timing() === 1 && muted.size === 0; }

// ---------------------------------------------------------------------------------------------
// Audio: the server's drum takes, scheduled ahead on the AudioContext clock

class AudioEngine {
  constructor() {
    this.context = new AudioContext({ latencyHint: "interactive" });
    this.master = this.context.createGain();
    this.master.gain.value = Number($("#volume").value) / 100;
    const limiter = this.context.createDynamicsCompressor();  // the synth's −1 dBFS, live
    limiter.threshold.value = -2; limiter.knee.value = 0; limiter.ratio.value = 20;
    limiter.attack.value = 0.002; limiter.release.value = 0.1;
    this.master.connect(limiter).connect(this.context.destination);
    this.takes = null;     // [class] → {soft, loud} AudioBuffers
    this.player = null;
    this.scheduled = 0;    // notes scheduled since the page loaded (tests read this)
    this.log = [];         // the first 1000 notes: [AudioContext time, class, velocity]
  }

  async load() {
    const fetchTake = async (name, take) => {
      const data = await (await api(`/api/drums/${name}.wav?take=${take}`)).arrayBuffer();
      return this.context.decodeAudioData(data);
    };
    this.takes = await Promise.all(DRUMS.map(async (name) => {
      const [soft, loud] = await Promise.all([fetchTake(name, "soft"), fetchTake(name, "loud")]);
      return { soft, loud };
    }));
  }

  // One note, as musicvae.render.synthesize plays it: gain·((1 − b)·soft + b·loud).
  note(cls, velocity, when) {
    const v = clamp(Math.round(velocity * 127), 1, 127);
    const gain = Math.pow(v / 127, 1.5), bright = (v - 1) / 126;
    const out = this.context.createGain();
    out.connect(this.master);
    for (const [buffer, weight] of [[this.takes[cls].soft, 1 - bright], [this.takes[cls].loud, bright]]) {
      if (weight <= 0) continue;
      const source = this.context.createBufferSource();
      source.buffer = buffer;
      const level = this.context.createGain();
      level.gain.value = gain * weight;
      source.connect(level).connect(out);
      source.start(when);
    }
    this.scheduled++;
    if (this.log.length < 1000) this.log.push([when, cls, v]);
    return out;
  }

  async play(source) {
    if (this.context.state !== "running") await this.context.resume();
    this.stop();
    this.player = new Player(this, source);
    this.player.start();
    this.origin = this.player.origin;  // AudioContext time of the last start's first step
  }

  stop() {
    if (this.player) this.player.stop();
    this.player = null;
  }
}

// Loops one or more grooves (a strip plays them one after the other). Notes are scheduled
// 150 ms ahead from a 25 ms timer, at exact AudioContext times, so microtiming is heard to the
// sample. Edits, feel and tempo rebuild the notes not yet scheduled (retime); mutes are checked
// as each note is scheduled — all heard within 150 ms.
class Player {
  constructor(audio, source) {
    this.audio = audio;
    this.source = source;       // {grooves: [Groove], button}
    this.timer = null;
    this.choke = null;          // the open hi-hat that the next hi-hat hit silences
  }

  events() {
    const step = 60 / settings.bpm() / 4;
    let steps = 0;
    const list = [];
    for (const groove of this.source.grooves) {
      const tensor = withFeel(groove.tensor, false);
      tensor.forEach((row, s) => {
        for (let c = 0; c < 9; c++) {
          if (row[c] > 0.5) list.push({ time: (steps + s - row[18 + c] / 2) * step, cls: c, velocity: row[9 + c] });
        }
      });
      steps += tensor.length;
    }
    const length = steps * step;
    for (const e of list) e.time = ((e.time % length) + length) % length;  // early first notes wrap
    list.sort((x, y) => x.time - y.time);
    return { list, length, step };
  }

  start() {
    const ctx = this.audio.context;
    this.pass = this.events();
    this.loopStart = this.origin = ctx.currentTime + 0.06;
    this.index = 0;
    this.scheduledUntil = 0;  // loop-relative seconds up to which notes are scheduled
    if (this.source.button) { this.source.button.classList.add("playing"); this.source.button.textContent = "■"; }
    this.timer = setInterval(() => this.schedule(), 25);
    this.schedule();
    this.draw();
  }

  schedule() {
    const ctx = this.audio.context;
    const horizon = ctx.currentTime + 0.15;
    for (;;) {
      if (this.index >= this.pass.list.length) {
        if (this.loopStart + this.pass.length > horizon) break;
        this.loopStart += this.pass.length;
        this.index = 0;
        if (!this.pass.list.length) continue;
      }
      const e = this.pass.list[this.index];
      const when = this.loopStart + e.time;
      if (when > horizon) break;
      this.index++;
      if (when < ctx.currentTime - 0.005 || muted.has(e.cls)) continue;  // late (tab asleep) or muted
      if (e.cls === 2 || e.cls === 3) {  // any hi-hat hit chokes a ringing open hat
        if (this.choke && this.choke.time < when) {
          this.choke.gain.gain.setValueAtTime(1, when);
          this.choke.gain.gain.linearRampToValueAtTime(0, when + 0.01);
          this.choke = null;
        }
      }
      const out = this.audio.note(e.cls, e.velocity, when);
      if (e.cls === 3) this.choke = { gain: out, time: when };
    }
    this.scheduledUntil = horizon - this.loopStart;
  }

  // The grooves, feel or tempo changed: rebuild the notes, keeping the loop's place (a new tempo
  // stretches it around the present moment), and go on after what is already scheduled.
  retime() {
    const now = this.audio.context.currentTime, old = this.pass.length;
    this.pass = this.events();
    const ratio = this.pass.length / old;
    this.loopStart = now - (now - this.loopStart) * ratio;
    this.scheduledUntil *= ratio;
    this.index = this.pass.list.findIndex((e) => e.time > this.scheduledUntil);
    if (this.index < 0) this.index = this.pass.list.length;
  }

  // The playhead, redrawn each frame on the one grid it is in (a strip has many).
  draw() {
    if (!this.timer) return;
    const position = (this.audio.context.currentTime - this.loopStart) / this.pass.step;  // steps
    let offset = 0, current = null;
    for (const groove of this.source.grooves) {
      if (position >= offset && position < offset + groove.tensor.length) current = { groove, at: position - offset };
      offset += groove.tensor.length;
    }
    if (this.shown && this.shown !== current?.groove) this.shown.view.playhead(null);
    if (current) current.groove.view.playhead(current.at);
    this.shown = current?.groove;
    requestAnimationFrame(() => this.draw());
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.source.button) { this.source.button.classList.remove("playing"); this.source.button.textContent = "▶"; }
    for (const groove of this.source.grooves) groove.view.playhead(null);
  }
}

async function ensureAudio() {
  if (!studio.audio) throw new Error("audio is not ready yet");
  if (studio.audio.context.state !== "running") await studio.audio.context.resume();
  return studio.audio;
}

// ---------------------------------------------------------------------------------------------
// Grid view: one canvas per groove, editable

const GRID = { label: 74, rowH: 17, compactLabel: 0, compactRowH: 14, pad: 6 };

class GridView {
  constructor(groove, { compact = false } = {}) {
    this.groove = groove;
    this.compact = compact;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "grid";
    this.head = null;
    this.hover = null;
    this.canvas.addEventListener("pointerdown", (e) => this.down(e));
    this.canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    this.canvas.addEventListener("pointerleave", () => { this.hover = null; this.groove.info(""); });
  }

  get labelW() { return this.compact ? GRID.compactLabel : GRID.label; }
  get rowH() { return this.compact ? GRID.compactRowH : GRID.rowH; }

  layout(width) {
    const steps = this.groove.tensor.length;
    this.cellW = Math.max(3, (width - this.labelW - 2) / steps);
    this.width = Math.round(this.labelW + this.cellW * steps + 2);
    this.height = this.rowH * 9 + (this.compact ? 2 : GRID.pad + 14);
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = this.width * dpr;
    this.canvas.height = this.height * dpr;
    this.canvas.style.width = `${this.width}px`;
    this.canvas.style.height = `${this.height}px`;
    this.canvas.dataset.labelWidth = this.labelW;
    this.canvas.dataset.cellWidth = this.cellW;
    this.canvas.dataset.rowHeight = this.rowH;
    this.canvas.dataset.steps = steps;
    this.render();
  }

  // Row 0 (kick) at the bottom, as in a DAW's drum editor.
  y(cls) { return 1 + (8 - cls) * this.rowH; }
  x(step) { return this.labelW + 1 + step * this.cellW; }

  render() {
    const g = this.canvas.getContext("2d");
    const dpr = window.devicePixelRatio || 1;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const steps = this.groove.tensor.length, W = this.width, rowH = this.rowH;
    g.clearRect(0, 0, W, this.height);
    // Beats alternate in shade so the eye finds its place; bars get a strong line.
    for (let s = 0; s < steps; s += 4) {
      g.fillStyle = (s / 4) % 2 ? "#1d2129" : "#22262f";
      g.fillRect(this.x(s), 1, this.cellW * 4, rowH * 9);
    }
    g.fillStyle = "#2b303a";
    for (let s = 1; s < steps; s++) if (s % 4) g.fillRect(Math.round(this.x(s)), 1, 1, rowH * 9);
    for (let r = 1; r < 9; r++) g.fillRect(this.labelW, 1 + r * rowH, W - this.labelW, 1);
    g.fillStyle = "#59606e";
    for (let s = 0; s <= steps; s += STEPS_PER_BAR) g.fillRect(Math.round(this.x(s)) - (s === steps ? 1 : 0), 1, 1.5, rowH * 9);
    if (!this.compact) {
      g.font = "11px system-ui, sans-serif";
      g.textBaseline = "middle";
      for (let c = 0; c < 9; c++) {
        const y = this.y(c);
        g.fillStyle = muted.has(c) ? "#555b66" : COLORS[c];
        g.fillRect(4, y + rowH / 2 - 3, 6, 6);
        g.fillStyle = muted.has(c) ? "#5d6470" : "#c9ced8";
        g.fillText(LABELS[c], 15, y + rowH / 2 + 0.5);
        if (muted.has(c)) g.fillRect(15, y + rowH / 2, g.measureText(LABELS[c]).width, 1);
      }
      g.fillStyle = "#8a919e";
      g.font = "10px system-ui, sans-serif";
      g.textBaseline = "top";
      for (let s = 0; s < steps; s += 4) {
        const bar = Math.floor(s / 16) + 1, beat = (s % 16) / 4 + 1;
        if (this.cellW * 4 >= 24 || beat === 1) g.fillText(beat === 1 ? `${bar}` : `${bar}.${beat}`, this.x(s) + 2, rowH * 9 + 4);  // 24 px: room for a "2.3"
      }
    }
    // Hits: drawn where they are played (step − offset/2), brighter when louder.
    const t = this.groove.tensor;
    for (let s = 0; s < steps; s++) {
      for (let c = 0; c < 9; c++) {
        if (t[s][c] <= 0.5) continue;
        const v = t[s][9 + c], off = t[s][18 + c];
        const x = this.x(s - off / 2), y = this.y(c);
        // Velocity shows twice: a louder hit is taller and more opaque.
        const w = Math.max(2, this.cellW - (this.compact ? 1 : 2));
        const h = (rowH - (this.compact ? 2 : 3)) * (0.45 + 0.55 * v);
        g.globalAlpha = muted.has(c) ? 0.18 : 0.35 + 0.65 * v;
        g.fillStyle = COLORS[c];
        roundRect(g, x + 1, y + rowH / 2 - h / 2 + 0.5, w, h, Math.min(3, w / 3, h / 2));
        g.globalAlpha = 1;
        if (!this.compact && Math.abs(off) > 0.08) {  // a tick on the grid line the note belongs to
          g.fillStyle = "rgba(255,255,255,0.55)";
          g.fillRect(Math.round(this.x(s)), y + rowH - 3, 1, 3);
        }
      }
    }
    if (this.head !== null && this.head >= 0 && this.head < steps) {
      g.fillStyle = "rgba(255,255,255,0.85)";
      g.fillRect(this.x(this.head), 0, 1.5, rowH * 9 + 2);
    }
  }

  playhead(position) {
    this.head = position;
    this.render();
  }

  cell(event) {
    const rect = this.canvas.getBoundingClientRect();
    const px = event.clientX - rect.left, py = event.clientY - rect.top;
    const cls = 8 - Math.floor((py - 1) / this.rowH);
    if (cls < 0 || cls > 8) return null;
    if (px < this.labelW) return { cls, label: true };
    const step = Math.floor((px - this.labelW - 1) / this.cellW);
    if (step < 0 || step >= this.groove.tensor.length) return null;
    return { cls, step };
  }

  down(event) {
    const at = this.cell(event);
    if (!at) return;
    event.preventDefault();
    if (at.label) { toggleMute(at.cls); return; }
    const row = this.groove.tensor[at.step];
    const added = row[at.cls] <= 0.5;
    if (added) { row[at.cls] = 1; row[9 + at.cls] = 0.8; row[18 + at.cls] = 0; this.groove.changed(); }
    const startY = event.clientY, startV = row[9 + at.cls];
    let moved = false;
    this.canvas.setPointerCapture(event.pointerId);
    const onMove = (e) => {
      if (Math.abs(e.clientY - startY) < 3 && !moved) return;
      moved = true;
      row[9 + at.cls] = clamp(startV + (startY - e.clientY) / 120, 0.02, 1);
      this.groove.changed();
      this.showInfo(at.step, at.cls);
    };
    const onUp = () => {
      this.canvas.removeEventListener("pointermove", onMove);
      this.canvas.removeEventListener("pointerup", onUp);
      if (!moved && !added) { row[at.cls] = 0; row[9 + at.cls] = 0; row[18 + at.cls] = 0; this.groove.changed(); }
    };
    this.canvas.addEventListener("pointermove", onMove);
    this.canvas.addEventListener("pointerup", onUp);
  }

  wheel(event) {
    const at = this.cell(event);
    if (!at || at.label || this.groove.tensor[at.step][at.cls] <= 0.5) return;  // page scrolls
    event.preventDefault();
    const row = this.groove.tensor[at.step];
    row[9 + at.cls] = clamp(row[9 + at.cls] - Math.sign(event.deltaY) * 0.04, 0.02, 1);
    this.groove.changed();
    this.showInfo(at.step, at.cls);
  }

  move(event) {
    const at = this.cell(event);
    if (!at || at.label) { this.groove.info(at && at.label ? `click to ${muted.has(at.cls) ? "unmute" : "mute"} ${LABELS[at.cls]}` : ""); return; }
    this.showInfo(at.step, at.cls);
  }

  showInfo(step, cls) {
    const row = this.groove.tensor[step];
    const where = `${LABELS[cls]} · bar ${Math.floor(step / 16) + 1} beat ${Math.floor((step % 16) / 4) + 1}.${(step % 4) + 1}`;
    if (row[cls] <= 0.5) { this.groove.info(`${where} · click to add`); return; }
    const ms = Math.round((-row[18 + cls] / 2) * (60000 / settings.bpm() / 4));
    const timing = ms === 0 ? "on the grid" : `${ms > 0 ? "+" : ""}${ms} ms ${ms > 0 ? "late" : "early"}`;
    this.groove.info(`${where} · velocity ${Math.round(row[9 + cls] * 127)} · ${timing} · drag/scroll: velocity, click: remove`);
  }
}

function roundRect(g, x, y, w, h, r) {
  g.beginPath();
  g.moveTo(x + r, y);
  g.arcTo(x + w, y, x + w, y + h, r);
  g.arcTo(x + w, y + h, x, y + h, r);
  g.arcTo(x, y + h, x, y, r);
  g.arcTo(x, y, x + w, y, r);
  g.closePath();
  g.fill();
}

function toggleMute(cls) {
  if (muted.has(cls)) muted.delete(cls); else muted.add(cls);
  for (const groove of studio.grooves) { groove.view.render(); groove.exportChanged(); }
}

// ---------------------------------------------------------------------------------------------
// A groove on the page: its card, its MIDI (for download and drag-and-drop)

let grooveCount = 0;

class Groove {
  // entry: a groove of the API ({seed, index, bpm, tensor, midi}); title: what the card says.
  constructor(entry, { title, subtitle = "", compact = false, regenerate = null } = {}) {
    this.id = ++grooveCount;
    this.tensor = entry.tensor.map((row) => row.slice());
    this.seed = entry.seed;
    this.index = entry.index;
    this.title = title;
    this.edited = false;
    this.serverMidi = { bpm: entry.bpm, base64: entry.midi, meta: entry.meta };  // what the server wrote, unedited
    this.midiUrl = `data:audio/midi;base64,${entry.midi}`;
    this.pending = null;
    this.view = new GridView(this, { compact });
    this.card = this.build(subtitle, compact, regenerate);
    studio.grooves.push(this);
  }

  get name() { return this.title.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "") || "groove"; }

  build(subtitle, compact, regenerate) {
    const card = document.createElement("article");
    card.className = compact ? "card compact" : "card";
    card.dataset.groove = this.id;
    card.innerHTML = `
      <header>
        <button class="play icon" title="Play / stop (loops)" aria-label="Play">▶</button>
        <h3></h3><span class="sub"></span>
        <span class="info"></span>
        <span class="tools">
          ${compact ? "" : '<button class="pick" data-slot="a" title="Use as interpolation start">A</button><button class="pick" data-slot="b" title="Use as interpolation end">B</button>'}
          ${regenerate ? '<button class="again icon" title="Draw a new groove for this card (new seed)" aria-label="New seed">⟳</button>' : ""}
          <button class="download" title="Download as MIDI">⬇ MIDI</button>
          <a class="drag" draggable="true" title="Drag into your DAW (Chrome, Edge)">⠿ drag</a>
        </span>
      </header>`;
    $("h3", card).textContent = this.title;
    $(".sub", card).textContent = subtitle;
    card.append(this.view.canvas);
    $(".play", card).addEventListener("click", () => togglePlay({ grooves: [this], button: $(".play", card) }));
    $(".download", card).addEventListener("click", () => this.download().catch((e) => showError(e.message)));
    const drag = $(".drag", card);
    drag.href = this.midiUrl;
    drag.addEventListener("dragstart", (e) => {
      e.dataTransfer.setData("DownloadURL", `audio/midi:${this.name}.mid:${this.midiUrl}`);
      e.dataTransfer.setData("text/uri-list", this.midiUrl);
    });
    drag.addEventListener("click", (e) => e.preventDefault());
    for (const pick of $$(".pick", card)) pick.addEventListener("click", () => setSlot(pick.dataset.slot, this));
    if (regenerate) $(".again", card).addEventListener("click", () => regenerate(this));
    return card;
  }

  info(text) { $(".info", this.card).textContent = text; }

  // The tensor changed (an edit): redraw, and refresh the MIDI a drag or download will carry.
  changed() {
    this.edited = true;
    this.view.render();
    retimePlayer();
    this.exportChanged();
  }

  replace(entry, title, subtitle) {
    this.tensor = entry.tensor.map((row) => row.slice());
    this.seed = entry.seed; this.index = entry.index; this.title = title; this.edited = false;
    this.serverMidi = { bpm: entry.bpm, base64: entry.midi, meta: entry.meta };
    $("h3", this.card).textContent = title;
    $(".sub", this.card).textContent = subtitle;
    this.view.render();
    retimePlayer();
    this.exportChanged();
  }

  // The MIDI of what you hear: the server's own file when nothing changed, else /api/midi of
  // the tensor with feel and mutes applied at the current tempo. A groove only played at another
  // tempo keeps its marker (how `musicvae sample --bpm` makes it again); an edited one claims none.
  // Debounced for drags.
  exportChanged() {
    clearTimeout(this.pending);
    this.pending = setTimeout(() => this.midi().catch((e) => showError(e.message)), 120);
  }

  async midi() {
    clearTimeout(this.pending);
    const asMade = !this.edited && feelIsNeutral();
    if (asMade && this.serverMidi.bpm === settings.bpm()) {
      this.midiUrl = `data:audio/midi;base64,${this.serverMidi.base64}`;
    } else {
      // Unedited: the tensor as sent (a neutral feel could still round a velocity) and its marker.
      const groove = asMade ? { tensor: this.tensor, meta: this.serverMidi.meta } : { tensor: withFeel(this.tensor) };
      const reply = await postJSON("/api/midi", { ...groove, bpm: settings.bpm() });
      this.midiUrl = await blobToDataUrl(await reply.blob());
    }
    $(".drag", this.card).href = this.midiUrl;
    return this.midiUrl;
  }

  async download() {
    const url = await this.midi();
    saveAs(url, `${this.name}.mid`);
  }
}

function blobToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^;]*;/, "data:audio/midi;"));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function saveAs(url, filename) {
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
}

function layoutCards(root = document) {
  for (const canvas of $$("canvas.grid", root)) {
    const groove = studio.grooves.find((g) => g.view.canvas === canvas);
    if (!groove) continue;
    const card = canvas.closest(".card"), style = getComputedStyle(card);
    groove.view.layout(card.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight));
  }
}

async function togglePlay(source) {
  const audio = await ensureAudio().catch((e) => { showError(e.message); return null; });
  if (!audio) return;
  if (audio.player && audio.player.source.button === source.button) { audio.stop(); return; }
  await audio.play(source);
}

function forget(container) {
  const cards = new Set($$(".card", container));
  if (studio.audio?.player?.source.grooves.some((g) => cards.has(g.card))) studio.audio.stop();
  studio.grooves = studio.grooves.filter((g) => !cards.has(g.card));
  container.replaceChildren();
}

// ---------------------------------------------------------------------------------------------
// Devices

function modelOk(device) { return studio.health?.models?.[device]?.available; }

function busy(button, on, label) {
  if (on) { button.dataset.label = button.textContent; button.textContent = label; button.disabled = true; }
  else { button.textContent = button.dataset.label || button.textContent; button.disabled = false; }
}

// Generate
function generateRequest(extra = {}) {
  return {
    n: fieldValue($("#gen-n")),
    temperature: Number($("#gen-temperature").value),
    seed: fieldValue($("#gen-seed")),
    bpm: settings.bpm(),
    // Shown only for a model with a fitted prior; otherwise the server's defaults (normal, no spread).
    ...($("#gen-prior-field").hidden ? {} : { prior: $("#gen-prior").value }),
    ...($("#gen-spread-field").hidden ? {} : { spread: Number($("#gen-spread").value) / 100 }),
    ...extra,
  };
}

function sampleTitle(entry) { return [`Groove ${entry.index + 1}`, `seed ${entry.seed} · #${entry.index}`]; }

async function generate() {
  const button = $("#generate");
  busy(button, true, "Generating…");
  clearError();
  // A new seed each time, shown in the field so it can be noted, unless the musician keeps one.
  const seed = $("#gen-seed");
  if (!$("#gen-seed-keep").checked) seed.value = freshSeed(fieldValue(seed));
  try {
    const request = generateRequest();
    const t0 = performance.now();
    const { grooves } = await (await postJSON("/api/sample", request)).json();
    const container = $("#gen-results");
    forget(container);
    for (const entry of grooves) {
      const [title, sub] = sampleTitle(entry);
      const groove = new Groove(entry, { title, subtitle: sub, regenerate: redraw });
      groove.request = request;  // ⟳ redraws it with these settings, whatever the controls say later
      container.append(groove.card);
    }
    layoutCards(container);
    status(`${grooves.length} grooves · ${Math.round(performance.now() - t0)} ms`);
  } catch (err) {
    showError(err.message);
  } finally {
    busy(button, false);
  }
}

// A random seed other than `old`, short enough to note down.
function freshSeed(old) {
  let seed = old;
  while (seed === old) seed = Math.floor(Math.random() * 100000);
  return seed;
}

// ⟳ on a card: the same index and settings (temperature, prior, spread) under a fresh seed, so the
// groove is still reproducible; only the tempo follows the page.
async function redraw(groove) {
  try {
    const request = { ...groove.request, n: 1, seed: freshSeed(groove.seed), index: groove.index, bpm: settings.bpm() };
    const { grooves } = await (await postJSON("/api/sample", request)).json();
    const [title, sub] = sampleTitle(grooves[0]);
    groove.replace(grooves[0], title, sub);
  } catch (err) {
    showError(err.message);
  }
}

// Interpolate: a slot holds a groove on the page or a dropped file ({tensor, title, seed, index, card}).
function setSlot(slot, item) {
  studio.slots[slot] = item;
  const box = $(`.slot[data-slot="${slot}"]`);
  $(".what", box).textContent = `${item.title}${item.seed !== null && item.seed !== undefined ? ` (seed ${item.seed} · #${item.index})` : ""}`;
  box.classList.add("filled");
  for (const b of $$(`.pick[data-slot="${slot}"]`)) b.classList.toggle("on", b.closest(".card") === item.card);
  $("#interpolate").disabled = !(studio.slots.a && studio.slots.b) || !modelOk("interpolate");
  status(`${slot.toUpperCase()} = ${item.title}`);
}

async function interpolate() {
  const button = $("#interpolate");
  const { a, b } = studio.slots;
  if (!a || !b) return;
  busy(button, true, "Interpolating…");
  clearError();
  try {
    const steps = fieldValue($("#int-steps"));
    const request = { a: a.tensor, b: b.tensor, steps, temperature: 1.0, seed: 0, bpm: settings.bpm() };
    const { grooves } = await (await postJSON("/api/interpolate", request)).json();
    const area = $("#int-results");
    forget(area);
    const head = document.createElement("div");
    head.className = "strip-head";
    head.innerHTML = `<button class="play icon" aria-label="Play strip">▶</button><h3>A → B in ${grooves.length} steps</h3>
      <span class="sub">plays as one ${grooves.length * 4}-bar groove · the ends are the model's own readings of A and B</span><span class="tools"><button class="download">⬇ strip MIDI</button></span>`;
    const strip = document.createElement("div");
    strip.className = "strip";
    const members = grooves.map((entry, k) => {
      const title = k === 0 ? "A" : k === grooves.length - 1 ? "B" : `step ${k}`;
      const groove = new Groove(entry, { title, compact: true });
      strip.append(groove.card);
      return groove;
    });
    area.append(head, strip);
    layoutCards(strip);
    $(".play", head).addEventListener("click", () => togglePlay({ grooves: members, button: $(".play", head) }));
    $(".download", head).addEventListener("click", async () => {
      try {
        const tensor = members.flatMap((g) => withFeel(g.tensor));
        const blob = await (await postJSON("/api/midi", { tensor, bpm: settings.bpm() })).blob();
        saveAs(await blobToDataUrl(blob), "interpolation.mid");
      } catch (err) { showError(err.message); }
    });
    status(`interpolated in ${grooves.length} steps`);
  } catch (err) {
    showError(err.message);
  } finally {
    busy(button, false);
    button.disabled = !(studio.slots.a && studio.slots.b);
  }
}

async function readMidiInto(slot, file) {
  try {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("channel", $('.panel[data-panel="interpolate"] .channel').value);
    const body = await (await api("/api/read", { method: "POST", body: form })).json();
    setSlot(slot, { tensor: body.grooves[0].tensor, title: file.name, seed: null, card: null });
  } catch (err) {
    showError(err.message);
  }
}

// Groove / Drumify / Hi-hat / Transfer: files in, input and result side by side.
// regrooveInputs: device → {field: File | taps tensor}, each field's input as last given.
const regrooveInputs = {};

// A drop zone names the file it holds, or says the file was refused; taps are not a file.
function showInputs(device, given, refused = false) {
  for (const zone of $$(`.panel[data-panel="${device}"] .drop`)) {
    const input = given[zone.dataset.field];
    const name = input instanceof File ? input.name : null;
    zone.classList.toggle("filled", name !== null && !refused);
    zone.classList.toggle("refused", name !== null && refused);
    $("span", zone).textContent = name === null ? zone.dataset.hint
      : refused ? `${name} was not used (see the message below) · drop another file` : `${name} · drop another file to replace it`;
  }
}

// ⟳ on a result card runs the device again under a fresh seed: another take of the same input.
async function regroove(device, seed = 0, given = regrooveInputs[device] || {}) {
  const panel = $(`.panel[data-panel="${device}"]`);
  const fields = device === "groove-transfer" ? ["hits", "groove"] : ["file"];
  regrooveInputs[device] = given;
  showInputs(device, given);
  if (!fields.every((f) => given[f])) return;
  clearError();
  status(`${device}: working…`);
  try {
    let reply;
    const options = { seed, temperature: 1.0 };
    if (device === "humanize") options.keep_hits = $("#humanize-keep").checked;
    if (Array.isArray(given.file)) {  // tapped rhythm
      reply = await postJSON(`/api/${device}`, { file: given.file, bpm: settings.bpm(), ...options });
    } else {
      const form = new FormData();
      for (const f of fields) form.append(f, given[f], given[f].name);
      for (const [k, v] of Object.entries({ ...options, channel: $(".channel", panel).value })) form.append(k, String(v));
      reply = await api(`/api/${device}`, { method: "POST", body: form });
    }
    const body = await reply.json();
    const pair = $(".pair", panel);
    forget(pair);
    const label = (field) => given[field].name || "your taps";  // a File, or the tapped tensor
    const role = (k) => (fields.length > 1 ? (k ? "feel" : "notes") : Array.isArray(given.file) ? "tapped rhythm" : "");
    const inputs = body.inputs.map((entry, k) => new Groove(entry, { title: `In: ${label(fields[k])}`, subtitle: role(k) }));
    const result = new Groove(body.grooves[0], {
      title: `Out: ${RESULT_NAMES[device]}`, subtitle: `seed ${body.grooves[0].seed}`,
      regenerate: () => regroove(device, freshSeed(seed), given),
    });
    for (const g of [...inputs, result]) pair.append(g.card);
    pair.classList.toggle("three", inputs.length > 1);
    if (body.grooves[0].bpm) { $("#bpm").value = Math.round(body.grooves[0].bpm); $("#bpm").dispatchEvent(new Event("change")); }
    layoutCards(pair);
    showNotes(panel, body.notes);
    status(`${RESULT_NAMES[device]}: ${fields.map(label).join(" + ")}`);
  } catch (err) {
    showError(err.message);
    status("");
    showInputs(device, given, true);  // the last good file's results and remarks stay
  }
}

// The server's remarks on the files read (where the drums were found, notes the grid merges or
// moves), a line each above the grids they are about; `command` text is shown as code.
function showNotes(panel, notes) {
  const lines = notes.map((text) => {
    const line = document.createElement("li");
    text.split("`").forEach((part, k) => line.append(k % 2 ? Object.assign(document.createElement("code"), { textContent: part }) : part));
    return line;
  });
  $(".file-notes", panel).replaceChildren(...lines);
}

// A Drum channel menu for a panel that reads MIDI files: DAWs export a drum clip on the clip's own
// channel, or one track per drum, where channel 10 alone finds nothing.
function channelMenu(panel) {
  const field = document.createElement("label");
  field.className = "field";
  field.title = "The MIDI channel of the drums in the files you drop. auto: channel 10, else the only channel (or track) with notes.";
  const channels = Array.from({ length: 16 }, (_, k) => `<option>${k + 1}</option>`).join("");
  field.innerHTML = `Drum channel <select class="channel"><option value="auto">auto</option>${channels}<option value="all">all channels</option></select>`;
  $(".controls", panel).append(field);
  return $("select", field);
}

const RESULT_NAMES = { humanize: "humanized", drumify: "drumified", "infill-hihat": "new hi-hats", "groove-transfer": "transferred" };


// Drop zones: click opens the file picker, a dropped .mid file is taken
function wireDrop(zone, take) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) take(file);
  });
  zone.addEventListener("click", () => {
    const picker = $("#file-picker");
    picker.value = "";
    picker.onchange = () => picker.files[0] && take(picker.files[0]);
    picker.click();
  });
}

// Drumify's tap recorder: one bar of count-in, then 1–4 bars of taps on a pad or the space bar.
const tapper = { recording: false, start: 0, taps: [], bars: 2 };

async function recordTaps() {
  const audio = await ensureAudio().catch((e) => { showError(e.message); return null; });
  if (!audio || tapper.recording) return;
  audio.stop();
  const ctx = audio.context, beat = 60 / settings.bpm();
  tapper.bars = Number($("#tap-bars").value);
  tapper.start = ctx.currentTime + 0.1 + 4 * beat;  // after the count-in
  tapper.taps = [];
  tapper.recording = true;
  const pad = $("#tap-pad"), button = $("#tap-record");
  pad.disabled = false;
  busy(button, true, "Count-in…");
  for (let k = 0; k < 4 * (tapper.bars + 1); k++) {  // metronome: accent on each bar's 1
    const when = tapper.start - 4 * beat + k * beat;
    const osc = ctx.createOscillator(), gain = ctx.createGain();
    osc.frequency.value = k % 4 ? 1000 : 1600;
    gain.gain.setValueAtTime(0.3, when);
    gain.gain.exponentialRampToValueAtTime(0.001, when + 0.05);
    osc.connect(gain).connect(audio.master);
    osc.start(when); osc.stop(when + 0.06);
  }
  const end = tapper.start + tapper.bars * 4 * beat;
  setTimeout(() => { if (tapper.recording) button.textContent = "Recording… tap!"; }, (tapper.start - ctx.currentTime) * 1000);
  setTimeout(() => finishTaps(), (end - ctx.currentTime) * 1000 + 150);
}

function tap() {
  if (!tapper.recording || !studio.audio) return;
  const ctx = studio.audio.context;
  // The player taps with what they hear, which the speakers play `latency` after the clock.
  const latency = (ctx.outputLatency || 0) + (ctx.baseLatency || 0);
  tapper.taps.push(ctx.currentTime - latency);
  studio.audio.note(1, 0.7, ctx.currentTime);  // hear the tap
  const pad = $("#tap-pad");
  pad.classList.add("hit");
  setTimeout(() => pad.classList.remove("hit"), 80);
}

function finishTaps() {
  tapper.recording = false;
  $("#tap-pad").disabled = true;
  busy($("#tap-record"), false);
  const step = 60 / settings.bpm() / 4, steps = tapper.bars * STEPS_PER_BAR;
  const tensor = Array.from({ length: steps }, () => new Array(27).fill(0));
  for (const t of tapper.taps) {
    const exact = (t - tapper.start) / step, s = Math.round(exact);
    if (s < 0 || s >= steps) continue;
    // On the snare row, the sound the pad makes; the model reads any one row alike (tapify).
    tensor[s][1] = 1; tensor[s][10] = 0.7; tensor[s][19] = clamp(-2 * (exact - s), -1, 1);
  }
  if (!tapper.taps.length) { showError("no taps recorded: press the pad or the space bar while the metronome plays"); return; }
  regroove("drumify", 0, { file: tensor });
}

// ---------------------------------------------------------------------------------------------
// Tabs, transport, start-up

function selectDevice(device) {
  for (const tab of $$("[role=tab]")) tab.setAttribute("aria-selected", String(tab.dataset.device === device));
  for (const panel of $$(".panel")) panel.hidden = panel.dataset.panel !== device;
  layoutCards($(`.panel[data-panel="${device}"]`));
}

function applyHealth(health) {
  studio.health = health;
  const generator = health.models.generate || {};
  $("#gen-prior-field").hidden = !generator.fitted_prior;
  $("#gen-spread-field").hidden = !(generator.spread > 0);  // the model has residuals to spread
  for (const tab of $$("[role=tab]")) {
    const info = health.models[tab.dataset.device];
    const ok = info && info.available;
    tab.classList.toggle("missing", !ok);
    $(".why", tab).textContent = ok ? "" : "model missing";
    tab.title = ok ? `${info.checkpoint} (${info.bars} bars)` : `No ${info.checkpoint} model: start with --checkpoint ${tab.dataset.device}=RUN_DIR`;
    const panel = $(`.panel[data-panel="${tab.dataset.device}"]`);
    panel.classList.toggle("disabled", !ok);
    if (!ok && !$(".missing-line", panel)) {
      const line = document.createElement("p");
      line.className = "missing-line";
      line.textContent = `Model missing: no ${info.checkpoint} model in this install. Start the studio with --checkpoint ${tab.dataset.device}=RUN_DIR to use it.`;
      panel.prepend(line);
    }
    for (const control of $$("button, input, select", $(".controls", panel) || panel)) if (!ok) control.disabled = true;
  }
}

function retimePlayer() { studio.audio?.player?.retime(); }

function tempoChanged() {
  retimePlayer();
  for (const groove of studio.grooves) groove.exportChanged();
}

function wire() {
  $("#error .close").addEventListener("click", clearError);
  for (const tab of $$("[role=tab]")) tab.addEventListener("click", () => selectDevice(tab.dataset.device));
  $("#generate").addEventListener("click", generate);
  $("#gen-seed").addEventListener("input", () => { $("#gen-seed-keep").checked = true; });  // a typed seed is meant
  $("#interpolate").addEventListener("click", interpolate);
  $("#stop").addEventListener("click", () => studio.audio?.stop());
  for (const input of $$("input[type=number]")) input.addEventListener("change", () => settleField(input));
  $("#bpm").addEventListener("change", tempoChanged);
  $("#volume").addEventListener("input", () => { if (studio.audio) studio.audio.master.gain.value = Number($("#volume").value) / 100; });
  for (const input of $$("input[type=range]")) {
    const out = $(`output[for="${input.id}"]`);
    const show = () => { if (out) out.textContent = input.id === "gen-temperature" ? Number(input.value).toFixed(2) : `${input.value}%`; };
    input.addEventListener("input", show);
    show();
  }
  for (const id of ["dynamics", "timing"]) {
    $(`#${id}`).addEventListener("input", retimePlayer);
    $(`#${id}`).addEventListener("change", () => { for (const g of studio.grooves) g.exportChanged(); });
  }
  for (const slot of $$(".slot")) wireDrop(slot, (file) => readMidiInto(slot.dataset.slot, file));
  $("#int-steps").closest(".field").before(channelMenu($('.panel[data-panel="interpolate"]')).closest(".field"));
  for (const panel of $$(".panel.regroove")) {
    const device = panel.dataset.panel;
    for (const zone of $$(".drop", panel)) {
      zone.dataset.hint = $("span", zone).textContent;
      wireDrop(zone, (file) => {
        if (modelOk(device)) regroove(device, 0, { ...regrooveInputs[device], [zone.dataset.field]: file });
      });
    }
    channelMenu(panel).addEventListener("change", () => regroove(device));  // read the files again
    const notes = document.createElement("ul");
    notes.className = "file-notes";
    $(".dropzones", panel).after(notes);
  }
  $("#humanize-keep").addEventListener("change", () => regroove("humanize"));
  $("#tap-record").addEventListener("click", recordTaps);
  $("#tap-pad").addEventListener("pointerdown", tap);
  document.addEventListener("keydown", (e) => {
    if (e.code !== "Space" || e.repeat) return;
    if (tapper.recording) { e.preventDefault(); tap(); return; }
    if (e.target.matches("input, select, textarea, button")) return;  // their own Space
    e.preventDefault();
    if (studio.audio?.player) studio.audio.stop();
    else if (studio.grooves.length) togglePlay({ grooves: [studio.grooves[0]], button: $(".play", studio.grooves[0].card) });
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => layoutCards(), 100); });
}

async function start() {
  wire();
  try {
    studio.audio = new AudioEngine();
    const [health] = await Promise.all([api("/api/health").then((r) => r.json()), studio.audio.load()]);
    applyHealth(health);
    if (modelOk("generate")) await generate();
    studio.ready = performance.now();
    if ($("#error").hidden) status(`ready · ${$("#status").textContent}`);
  } catch (err) {
    showError(err.message);
    status("");
  }
}

start();
