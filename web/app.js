// The demo page's main thread: drawing, the controls and showing answers. Inference runs in
// inference-worker.js; this thread only draws, so strokes never wait for a model.
//
// For the tests (web/test/demo.test.mjs) and anyone scripting the page, the state is mirrored
// in data attributes: body[data-ready] once a model is loaded, body[data-draw-seq] counts
// drawing changes, #local[data-seq|data-label|data-model] is the answer shown and the drawing it
// belongs to, #served[data-seq|data-label|data-state] the same for the served column.
//
// A user's own .mdm (the "Your model" file input, or a file dropped on the page) joins the
// model switcher as `file:<name>`: its bytes go to the worker, never to a server.

const $ = (id) => document.getElementById(id);
const pad = $('pad');
const ctx = pad.getContext('2d', { willReadFrequently: true });
const modelSel = $('model');
const backendSel = $('backend');
const servedToggle = $('served-toggle');
const fileInput = $('model-file');
const statusEl = $('status');

const LINE_WIDTH = 18; // px on the 280-px pad: about MNIST's stroke once scaled to 20×20
const LIVE_MS = 60; // live updates while drawing: at most one prediction per 60 ms
const INK = '#111';
const PAPER = '#fff';

// ---------------------------------------------------------------- drawing

let drawSeq = 0; // bumps on every change to the drawing
let clearedAt = 0; // drawSeq of the last clear: answers for older drawings are stale
let hasInk = false;
let activePointer = null;
let last = null;

function resetPad() {
  ctx.fillStyle = PAPER;
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.lineWidth = LINE_WIDTH;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  ctx.strokeStyle = INK;
  ctx.fillStyle = INK;
}

function toPad(e) {
  // The pad may be shown smaller than 280 px (narrow phones): map CSS pixels to canvas pixels.
  // clientLeft/clientWidth: the drawing area inside the border.
  const r = pad.getBoundingClientRect();
  const left = r.left + pad.clientLeft;
  const top = r.top + pad.clientTop;
  return { x: (e.clientX - left) * (pad.width / pad.clientWidth), y: (e.clientY - top) * (pad.height / pad.clientHeight) };
}

function dot(p) {
  ctx.beginPath();
  ctx.arc(p.x, p.y, LINE_WIDTH / 2, 0, Math.PI * 2);
  ctx.fill();
}

function segment(a, b) {
  ctx.beginPath();
  ctx.moveTo(a.x, a.y);
  ctx.lineTo(b.x, b.y);
  ctx.stroke();
}

function changed() {
  hasInk = true;
  drawSeq++;
  document.body.dataset.drawSeq = String(drawSeq);
}

pad.addEventListener('pointerdown', (e) => {
  if (activePointer !== null || (e.pointerType === 'mouse' && e.button !== 0)) return;
  e.preventDefault();
  activePointer = e.pointerId;
  pad.setPointerCapture(e.pointerId);
  last = toPad(e);
  dot(last); // a tap leaves a mark, as on paper; pressure is ignored: strokes stay thick
  changed();
  schedulePredict();
});

pad.addEventListener('pointermove', (e) => {
  if (e.pointerId !== activePointer) return;
  // Coalesced events: the full path of a fast pen or finger, not just one point per frame.
  const events = e.getCoalescedEvents?.() ?? [];
  for (const ev of events.length ? events : [e]) {
    const p = toPad(ev);
    segment(last, p);
    last = p;
  }
  changed();
  schedulePredict();
});

function endStroke(e) {
  if (e.pointerId !== activePointer) return;
  activePointer = null;
  last = null;
  clearTimeout(liveTimer);
  liveTimer = null;
  requestPredict(); // pen-up: the answer for the finished stroke, now
}
pad.addEventListener('pointerup', endStroke);
pad.addEventListener('pointercancel', endStroke);

function clearAll() {
  resetPad();
  hasInk = false;
  drawSeq++;
  clearedAt = drawSeq;
  document.body.dataset.drawSeq = String(drawSeq);
  clearTimeout(liveTimer);
  liveTimer = null;
  showEmpty();
}
$('clear').addEventListener('click', clearAll);
document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const typing = e.target instanceof HTMLSelectElement || (e.target instanceof HTMLInputElement && e.target.type !== 'checkbox');
  if (e.key === 'Escape' || e.key === 'Delete' || (!typing && (e.key === 'c' || e.key === 'C' || e.key === 'Backspace'))) {
    e.preventDefault();
    clearAll();
  }
});

// ---------------------------------------------------------------- the worker

const worker = new Worker('/inference-worker.js', { type: 'module' });
let modelReady = false;
let inFlight = false; // one prediction at a time: newer drawings replace queued ones
let pending = false;
let liveTimer = null;
let sentAt = 0;
let loadedModel = null;

function schedulePredict() {
  if (liveTimer !== null) return;
  liveTimer = setTimeout(() => { liveTimer = null; requestPredict(); }, LIVE_MS);
}

function requestPredict() {
  if (!hasInk) return;
  if (inFlight || !modelReady) { pending = true; return; }
  pending = false;
  inFlight = true;
  const img = ctx.getImageData(0, 0, pad.width, pad.height);
  sentAt = performance.now();
  worker.postMessage({ type: 'predict', seq: drawSeq, width: img.width, height: img.height, data: img.data }, [img.data.buffer]);
}

// ---------------------------------------------------------------- the user's own model

/** Largest .mdm the page accepts: far above any model meant for a browser tab. */
const MAX_MODEL_BYTES = 64 << 20;
const FILE_PREFIX = 'file:';
const userModels = new Map(); // 'file:<name>' → ArrayBuffer (kept: a backend switch reloads it)

async function openUserModel(file) {
  if (!file) return;
  if (!/\.mdm$/i.test(file.name)) {
    setStatus(`${file.name} is not an .mdm file: the page runs mdeploy models (.mdm, as \`mdeploy train\` writes them)`, true);
    return;
  }
  if (file.size > MAX_MODEL_BYTES) {
    setStatus(`${file.name} is ${(file.size / 2 ** 20).toFixed(0)} MiB, more than the ${MAX_MODEL_BYTES >> 20} MiB this page accepts`, true);
    return;
  }
  const key = FILE_PREFIX + file.name;
  userModels.set(key, await file.arrayBuffer());
  if (![...modelSel.options].some((o) => o.value === key)) modelSel.append(new Option(key, key));
  modelSel.value = key;
  load();
}

/** Undoes a user file that did not load: its option goes, the model that was loaded stays. */
function dropUserModel(key) {
  userModels.delete(key);
  [...modelSel.options].find((o) => o.value === key)?.remove();
  if (loadedModel) {
    modelSel.value = loadedModel;
    modelReady = true;
    document.body.dataset.ready = '1';
  }
}

fileInput.addEventListener('change', () => { openUserModel(fileInput.files?.[0]); fileInput.value = ''; });
document.addEventListener('dragover', (e) => {
  if (![...(e.dataTransfer?.types ?? [])].includes('Files')) return;
  e.preventDefault();
  document.body.classList.add('dragging');
});
document.addEventListener('dragleave', (e) => { if (!e.relatedTarget) document.body.classList.remove('dragging'); });
document.addEventListener('drop', (e) => {
  if (!e.dataTransfer?.files?.length) return;
  e.preventDefault();
  document.body.classList.remove('dragging');
  openUserModel(e.dataTransfer.files[0]);
});

function load() {
  modelReady = false;
  document.body.dataset.ready = '';
  setStatus(`loading ${modelSel.value} (${backendSel.value})…`);
  $('local-backend').textContent = 'loading…';
  const bytes = userModels.get(modelSel.value);
  // A copy goes to the worker (transferred), the page keeps its own for the next reload.
  const msg = { type: 'load', model: modelSel.value, backend: backendSel.value, ...(bytes ? { bytes: bytes.slice(0) } : {}) };
  worker.postMessage(msg, msg.bytes ? [msg.bytes] : []);
}

worker.onmessage = ({ data: m }) => {
  if (m.type === 'hello') {
    // The switcher lists what the package ships, so future variants appear by themselves.
    const want = modelSel.value;
    // Each built-in model with its size and test accuracy (builtinCatalog), so a person can weigh them.
    const label = (name) => {
      const f = m.catalog?.[name];
      return f ? `${name} · ${(f.fileBytes / 1024).toFixed(0)} KB · ${(f.testAccuracy * 100).toFixed(2)} %` : name;
    };
    modelSel.replaceChildren(...m.models.map((name) => new Option(label(name), name)), ...[...userModels.keys()].map((k) => new Option(k, k)));
    modelSel.value = m.models.includes(want) || userModels.has(want) ? want : m.models[0];
    return;
  }
  if (m.type === 'loaded') {
    if (m.model !== modelSel.value || m.requested !== backendSel.value) return; // a newer load is queued
    modelReady = true;
    loadedModel = m.model;
    document.body.dataset.ready = '1';
    document.body.dataset.backend = m.backend;
    document.body.dataset.fallback = m.fallback ? '1' : '';
    $('local-backend').textContent = m.backendText;
    const acc = m.accuracy == null ? '' : `, ${(m.accuracy * 100).toFixed(1)} % on the MNIST test split`;
    setStatus(`${m.model} loaded in ${m.loadMs.toFixed(0)} ms (${m.params.toLocaleString('en')} parameters${acc})` +
      (m.fallback ? ` · ${m.noGpu ? 'WebGPU unavailable, using the CPU' : m.backendText}` : ''), false, m.fallback);
    pending = false;
    requestPredict();
    return;
  }
  if (m.type === 'result') {
    inFlight = false;
    const roundTrip = performance.now() - sentAt;
    if (hasInk && modelReady && m.model === loadedModel && m.seq > clearedAt) showLocal(m, roundTrip);
    if (pending || (hasInk && modelReady && (m.seq !== drawSeq || m.model !== loadedModel) && activePointer === null)) requestPredict();
    return;
  }
  if (m.type === 'error') {
    if (m.for === 'predict') {
      inFlight = false;
      if (pending) requestPredict();
    }
    if (m.for === 'load' && m.model?.startsWith(FILE_PREFIX)) {
      dropUserModel(m.model);
      setStatus(`${m.model.slice(FILE_PREFIX.length)} did not load (${m.code}): ${m.message}` +
        (loadedModel ? ` · still using ${loadedModel}` : ''), true);
      return;
    }
    setStatus(`${m.for} failed: ${m.message}`, true);
  }
};
worker.onerror = (e) => setStatus(`the inference worker failed: ${e.message ?? 'see the console'}`, true);

modelSel.addEventListener('change', load);
backendSel.addEventListener('change', load);

// ---------------------------------------------------------------- showing answers

function makeBars(ol) {
  ol.replaceChildren();
  for (let d = 0; d < 10; d++) {
    const li = document.createElement('li');
    li.innerHTML = `<span class="k">${d}</span><span class="bar"><span class="fill"></span></span><span class="v"></span>`;
    ol.append(li);
  }
}

function setBars(ol, probs, label) {
  [...ol.children].forEach((li, d) => {
    const p = probs ? probs[d] : 0;
    li.querySelector('.fill').style.width = `${(p * 100).toFixed(1)}%`;
    li.querySelector('.v').textContent = probs ? p.toFixed(2) : '';
    li.classList.toggle('win', probs != null && d === label);
  });
}

const seenCtx = $('seen').getContext('2d');
function showSeen(seen) {
  // As MNIST stores digits: light ink on black, one canvas pixel per model input.
  const img = seenCtx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = seen ? Math.round(Math.min(1, Math.max(0, seen[i])) * 255) : 0;
    img.data.set([v, v, v, 255], i * 4);
  }
  seenCtx.putImageData(img, 0, 0);
}

let lastLocal = null;
function showLocal(m, roundTrip) {
  lastLocal = m;
  const local = $('local');
  local.dataset.seq = String(m.seq);
  local.dataset.label = String(m.label);
  local.dataset.model = m.model;
  local.dataset.backend = m.backend;
  $('local-digit').textContent = String(m.label);
  $('local-conf').textContent = `${(m.probs[m.label] * 100).toFixed(1)} %`;
  setBars($('local-bars'), m.probs, m.label);
  $('local-backend').textContent = m.backendText;
  const model = m.ms < 0.01 ? '< 0.01 ms' : `${m.ms.toFixed(m.ms < 1 ? 3 : 2)} ms`;
  $('local-time').textContent = `${model} model · ${m.totalMs.toFixed(1)} ms with preprocessing · ${roundTrip.toFixed(1)} ms round trip`;
  showSeen(m.seen);
  maybeServe();
}

function showEmpty() {
  lastLocal = null;
  const local = $('local');
  for (const k of ['seq', 'label', 'model', 'backend']) delete local.dataset[k];
  $('local-digit').textContent = '·';
  $('local-conf').textContent = 'draw a digit';
  $('local-time').textContent = '–';
  setBars($('local-bars'), null);
  showSeen(null);
  resetServed('waiting for a drawing');
}

function setStatus(text, error = false, notice = false) {
  statusEl.textContent = text;
  statusEl.classList.toggle('error', error);
  statusEl.classList.toggle('notice', notice && !error);
}

// ---------------------------------------------------------------- the served column

let servedKey = null; // `${seq}:${model}` last sent
let servedBusy = false;

function resetServed(text) {
  const s = $('served');
  delete s.dataset.seq;
  delete s.dataset.label;
  s.dataset.state = 'idle';
  $('served-digit').textContent = '·';
  $('served-conf').textContent = text;
  $('served-time').textContent = '–';
  $('served-bytes').textContent = '–';
  $('served-agree').textContent = '–';
  setBars($('served-bars'), null);
  servedKey = null;
}

async function post(body, type, model) {
  const t0 = performance.now();
  const res = await fetch(`/predict?model=${encodeURIComponent(model)}`, { method: 'POST', headers: { 'content-type': type }, body });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = null; }
  // The endpoint answers { label: "7", class: 7, probs, model }: `label` is the model's name for
  // the class (a string), `class` its index.
  const cls = typeof json?.class === 'number' ? json.class : Number.parseInt(json?.label, 10);
  if (!res.ok || !json || !Number.isInteger(cls)) {
    const why = json?.error ?? json?.message ?? (text.slice(0, 200) || res.statusText);
    throw new Error(res.status === 502 ? why : `HTTP ${res.status}: ${why}`);
  }
  return { ...json, label: cls, ms: performance.now() - t0 };
}

/** Sends the finished drawing to the endpoint, once per drawing and model, when the toggle is on. */
async function maybeServe() {
  const m = lastLocal;
  if (!servedToggle.checked || !m || m.seq !== drawSeq || activePointer !== null || servedBusy) return;
  const key = `${m.seq}:${m.model}`;
  if (key === servedKey) return;
  servedKey = key;
  if (m.model.startsWith(FILE_PREFIX)) {
    // The endpoint serves its own models; a file opened here never leaves the browser.
    resetServed('your file stays in this browser: the endpoint serves only its own models');
    servedKey = key;
    return;
  }
  servedBusy = true;
  const s = $('served');
  s.dataset.state = 'busy';
  $('served-conf').textContent = 'asking…';
  try {
    // The PNG of the pad: the server runs its own preprocessing, so this checks the whole path
    // (encoding, preprocessing, model) end to end. The browser's own 28×28 as raw bytes as well:
    // same input, other runtime, so a difference there would be the model's, not the recipe's.
    const png = await new Promise((ok) => pad.toBlob(ok, 'image/png'));
    const [a, b] = await Promise.allSettled([post(png, 'image/png', m.model), post(m.bytes, 'application/octet-stream', m.model)]);
    if (m.seq !== drawSeq) return; // the drawing changed meanwhile: the next result sends again
    if (a.status === 'rejected') throw a.reason;
    const r = a.value;
    const probs = Float32Array.from(r.probs ?? []);
    s.dataset.seq = String(m.seq);
    s.dataset.label = String(r.label);
    s.dataset.state = 'done';
    $('served-digit').textContent = String(r.label);
    $('served-conf').textContent = probs.length === 10 ? `${(probs[r.label] * 100).toFixed(1)} %` : '';
    setBars($('served-bars'), probs.length === 10 ? probs : null, r.label);
    $('served-time').textContent = `${r.ms.toFixed(1)} ms round trip${r.model ? ` · ${r.model}` : ''}`;
    $('served-bytes').textContent = b.status === 'fulfilled'
      ? `${b.value.label} (${((b.value.probs?.[b.value.label] ?? 0) * 100).toFixed(1)} %) from the browser's 28×28 as raw bytes`
      : `failed: ${b.reason.message}`;
    const agree = r.label === m.label;
    s.dataset.agree = agree ? '1' : '0';
    $('served-agree').textContent = agree ? `yes: both say ${m.label}` : `no: browser ${m.label}, served ${r.label}`;
  } catch (e) {
    s.dataset.state = 'error';
    delete s.dataset.label;
    $('served-digit').textContent = '?';
    $('served-conf').textContent = /endpoint unavailable/.test(e.message) ? 'endpoint unavailable' : 'request failed';
    $('served-time').textContent = e.message; // no automatic retry: the next drawing (or the toggle) asks again
  } finally {
    servedBusy = false;
    if (lastLocal && lastLocal.seq === drawSeq && `${lastLocal.seq}:${lastLocal.model}` !== servedKey) maybeServe();
  }
}

servedToggle.addEventListener('change', () => {
  $('served').hidden = !servedToggle.checked;
  document.querySelector('.answers').classList.toggle('two', servedToggle.checked);
  if (servedToggle.checked) { servedKey = null; maybeServe(); }
});

// ---------------------------------------------------------------- start

makeBars($('local-bars'));
makeBars($('served-bars'));
resetPad();
showEmpty();
document.body.dataset.drawSeq = '0';
load();
