// medsegd's dataset browser: plain JavaScript, no framework, no build step, nothing fetched from
// anywhere but this server. Every API URL is relative to the page (document.baseURI), so the
// page also works behind a reverse proxy under a path prefix. The page holds no data: it reads
// the API with the user's bearer token (asked for on the first 401, kept in sessionStorage) and
// shows previews through blob URLs, since an <img src> cannot send the Authorization header.
'use strict';

(() => {
  const TOKEN_KEY = 'medsegd.token';
  // The longer edge asked of previews (the server scales larger slices down to it).
  const PREVIEW_SIZE = 1024;
  // Slider moves (pointer or keys) are sent once they pause this long (ms).
  const SLIDER_DEBOUNCE = 120;
  // matplotlib's tab10: the colour of a class whose category has none (docs/API.md).
  const TAB10 = [
    [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
  ];
  const AXIS_NAMES = ['H', 'W', 'D'];

  const $ = (id) => document.getElementById(id);
  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (key.startsWith('data-') || key.startsWith('aria-') || key === 'role' || key === 'for') node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  };

  // ------------------------------------------------------------------------------------------
  // The API: relative URLs, the bearer token, JSON errors

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
    describe() {
      return this.status ? `${this.status} ${this.code}: ${this.message}` : this.message;
    }
  }

  function apiURL(path, params) {
    const url = new URL(path, document.baseURI);
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, String(value));
    }
    return url;
  }

  const enc = encodeURIComponent;
  const datasetPath = (name, rest) => `v1/datasets/${enc(name)}${rest || ''}`;

  async function errorOf(response) {
    let code = 'http_' + response.status;
    let message = response.statusText || 'request failed';
    try {
      const body = await response.json();
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      }
    } catch (_) { /* not JSON: keep the status text */ }
    return new ApiError(response.status, code, message);
  }

  // One request; on 401 the token form is shown (once, for every request waiting on it) and the
  // request is sent again with the token entered.
  async function request(url, options) {
    const { method = 'GET', signal } = options || {};
    for (;;) {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const headers = token ? { Authorization: 'Bearer ' + token } : {};
      let response;
      try {
        response = await fetch(url, { method, headers, signal });
      } catch (error) {
        if (error.name === 'AbortError') throw error;
        throw new ApiError(0, 'network', `cannot reach the server (${error.message})`);
      }
      if (response.status === 401) {
        const error = await errorOf(response);
        if (token && sessionStorage.getItem(TOKEN_KEY) === token) {
          sessionStorage.removeItem(TOKEN_KEY);
          updateTokenButtons();
          await askToken(`The server refused that token (${error.message}). Enter another one.`);
        } else if (!sessionStorage.getItem(TOKEN_KEY)) {
          await askToken('This server needs a bearer token.');
        }
        continue;
      }
      if (!response.ok) throw await errorOf(response);
      return response;
    }
  }

  const getJSON = async (path, params, signal) => (await request(apiURL(path, params), { signal })).json();

  // ------------------------------------------------------------------------------------------
  // The token form

  let tokenWaiter = null;
  const tokenDialog = $('token-dialog');

  function openTokenDialog(message) {
    $('token-message').textContent = message;
    $('token-input').value = '';
    if (!tokenDialog.open) tokenDialog.showModal();
    $('token-input').focus();
  }

  function askToken(message) {
    if (!tokenWaiter) {
      let resolve, reject;
      const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
      tokenWaiter = { promise, resolve, reject };
      openTokenDialog(message);
    }
    return tokenWaiter.promise;
  }

  function updateTokenButtons() {
    const has = !!sessionStorage.getItem(TOKEN_KEY);
    $('token-button').textContent = has ? 'Change token' : 'Set token';
    $('forget-token').hidden = !has;
  }

  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token-input').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    updateTokenButtons();
    const waiter = tokenWaiter;
    tokenWaiter = null;
    tokenDialog.close();
    if (waiter) waiter.resolve();
    else reloadAll();
  });
  $('token-cancel').addEventListener('click', () => tokenDialog.close());
  tokenDialog.addEventListener('close', () => {
    const waiter = tokenWaiter;
    tokenWaiter = null;
    if (waiter) waiter.reject(new ApiError(401, 'unauthorized', 'this server needs a bearer token: use “Set token”'));
  });
  $('token-button').addEventListener('click', () => openTokenDialog('Enter a bearer token for this server.'));
  $('forget-token').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    updateTokenButtons();
    setStatus('Token forgotten.');
  });

  // ------------------------------------------------------------------------------------------
  // Status and errors

  function setStatus(text) { $('status').textContent = text || ''; }

  function showError(error) {
    if (error && error.name === 'AbortError') return;
    const text = error instanceof ApiError ? error.describe() : String((error && error.message) || error);
    $('error-text').textContent = text;
    $('error').hidden = false;
    setStatus('');
  }
  function clearError() { $('error').hidden = true; }
  $('error-close').addEventListener('click', clearError);

  // ------------------------------------------------------------------------------------------
  // State

  const state = {
    datasets: [],
    dataset: null, // name
    detail: null, // GET v1/datasets/{name}
    scans: [],
    scan: null, // an entry of GET .../scans
    aug: 0,
    shape: null, // the volume's [H, W, D]
    dicts: [], // the volume's dataset dicts, 2D slices sorted by slice_id
    labeled: true,
    axis: 2,
    slice: 0,
    hidden: new Set(), // class positions not drawn
    opacity: 50, // percent
    outline: false,
    window: '',
  };
  let generation = 0; // bumped by every new selection: answers to older ones are dropped

  function classCount() {
    const ids = state.detail && state.detail.metadata && state.detail.metadata.category_ids;
    return Array.isArray(ids) ? ids.length : 0;
  }

  function classColor(position) {
    const colors = state.detail && state.detail.metadata && state.detail.metadata.category_colors;
    const color = Array.isArray(colors) ? colors[position] : null;
    return Array.isArray(color) && color.length === 3 ? color : TAB10[position % TAB10.length];
  }

  // ------------------------------------------------------------------------------------------
  // The location: #dataset=..&scan=..&aug=..&axis=..&slice=..

  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    const number = (key) => (params.has(key) && /^-?\d+$/.test(params.get(key)) ? Number(params.get(key)) : undefined);
    return { dataset: params.get('dataset') || null, scan: params.get('scan') || null, aug: number('aug'), axis: number('axis'), slice: number('slice') };
  }

  function writeHash(push) {
    const params = new URLSearchParams();
    if (state.dataset) params.set('dataset', state.dataset);
    if (state.dataset && state.scan) {
      params.set('scan', state.scan.scan_id);
      params.set('aug', state.aug);
      params.set('axis', state.axis);
      params.set('slice', state.slice);
    }
    const hash = '#' + params.toString();
    if (hash === location.hash || (hash === '#' && !location.hash)) return;
    if (push) history.pushState(null, '', hash);
    else history.replaceState(null, '', hash);
  }

  async function applyHash() {
    const wanted = readHash();
    if (!wanted.dataset) {
      if (state.dataset) showHome();
      return;
    }
    if (wanted.dataset !== state.dataset) return selectDataset(wanted.dataset, wanted, false);
    if (wanted.scan && (!state.scan || wanted.scan !== state.scan.scan_id)) return selectScan(wanted.scan, wanted, false);
    if (!state.scan) return;
    if (wanted.aug !== undefined && wanted.aug !== state.aug) return selectVolume(wanted.aug, wanted);
    if (wanted.axis !== undefined && wanted.axis !== state.axis) setAxis(wanted.axis, wanted.slice);
    else if (wanted.slice !== undefined && wanted.slice !== state.slice) setAxis(state.axis, wanted.slice);
  }
  window.addEventListener('popstate', () => applyHash().catch(showError));

  function renderCrumbs() {
    const crumbs = $('crumbs');
    crumbs.replaceChildren();
    const link = el('a', { href: '#', text: 'Datasets' });
    link.addEventListener('click', goHome);
    if (!state.dataset) link.setAttribute('aria-current', 'page');
    crumbs.append(el('li', {}, link));
    if (state.dataset) crumbs.append(el('li', { text: state.dataset }));
    if (state.scan) crumbs.append(el('li', { text: state.scan.scan_id }));
  }

  // ------------------------------------------------------------------------------------------
  // Datasets

  async function loadDatasets() {
    const list = $('datasets');
    list.setAttribute('aria-busy', 'true');
    setStatus('Loading datasets…');
    try {
      const body = await getJSON('v1/datasets');
      state.datasets = body.datasets || [];
      renderDatasets();
      setStatus(`${state.datasets.length} dataset${state.datasets.length === 1 ? '' : 's'}`);
    } finally {
      list.setAttribute('aria-busy', 'false');
    }
  }

  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

  function renderDatasets() {
    const list = $('datasets');
    list.replaceChildren();
    if (!state.datasets.length) list.append(el('li', { class: 'empty', text: 'No datasets are registered.' }));
    for (const summary of state.datasets) {
      const button = el('button', { type: 'button', class: 'item', 'data-name': summary.name },
        el('span', { class: 'item-title', text: summary.name }),
        el('span', { class: 'badge', text: summary.format }),
        el('span', { class: 'item-meta', text: `${plural(summary.num_items, 'item')} · ${plural(summary.num_scans, 'scan')} · ${plural(summary.num_subjects, 'subject')}` }));
      if (summary.name === state.dataset) button.setAttribute('aria-current', 'true');
      button.addEventListener('click', () => selectDataset(summary.name, {}, true).catch(showError));
      list.append(el('li', {}, button));
    }
  }

  function showHome() {
    generation++;
    abortPreview();
    Object.assign(state, { dataset: null, detail: null, scans: [], scan: null, dicts: [], shape: null });
    renderDatasets();
    $('scans-section').hidden = true;
    $('dataset-section').hidden = true;
    $('dict-section').hidden = true;
    $('viewer-body').hidden = true;
    $('placeholder').hidden = false;
    $('placeholder').textContent = 'Choose a dataset, then a scan.';
    $('viewer-heading').textContent = 'Viewer';
    renderCrumbs();
  }

  async function selectDataset(name, wanted, push) {
    clearError();
    const mine = ++generation;
    abortPreview();
    Object.assign(state, { dataset: name, detail: null, scans: [], scan: null, dicts: [], shape: null });
    state.hidden = new Set();
    renderDatasets();
    renderCrumbs();
    setStatus(`Loading ${name}…`);
    $('viewer-body').hidden = true;
    $('placeholder').hidden = false;
    $('placeholder').textContent = 'Loading…';
    let detail;
    let scans;
    try {
      [detail, scans] = await Promise.all([getJSON(datasetPath(name)), getJSON(datasetPath(name, '/scans'))]);
    } catch (error) {
      if (mine === generation) $('placeholder').textContent = `Cannot open ${name}.`;
      throw error;
    }
    if (mine !== generation) return;
    state.detail = detail;
    state.scans = Array.isArray(scans) ? scans : [];
    renderDatasetDetails();
    renderScans();
    renderLegend();
    setStatus(`${name}: ${plural(state.scans.length, 'scan')}`);
    if (!state.scans.length) {
      $('placeholder').textContent = 'This dataset has no scans.';
      writeHash(push);
      return;
    }
    const scan = state.scans.find((s) => s.scan_id === wanted.scan) || state.scans[0];
    return selectScan(scan.scan_id, wanted, push);
  }

  function renderDatasetDetails() {
    const { detail } = state;
    const metadata = detail.metadata || {};
    $('dataset-section').hidden = false;
    $('dataset-heading').textContent = detail.name;
    const summary = $('summary');
    summary.replaceChildren();
    const row = (term, value) => {
      if (value === undefined || value === null) return;
      summary.append(el('dt', { text: term }), el('dd', { text: typeof value === 'string' ? value : JSON.stringify(value) }));
    };
    row('Format', detail.format);
    row('Items', String(detail.num_items));
    row('Scans', String(detail.num_scans));
    row('Subjects', String(detail.num_subjects));
    row('Spacing', Array.isArray(metadata.spacing) ? metadata.spacing.join(' × ') : metadata.spacing);
    row('Scan root', metadata.scan_root);
    row('Evaluator', metadata.evaluator_type);

    const body = $('categories').tBodies[0];
    body.replaceChildren();
    const ids = metadata.category_ids || [];
    ids.forEach((id, position) => {
      const color = classColor(position);
      const rgb = `rgb(${color.join(', ')})` + (Array.isArray(metadata.category_colors) ? '' : ', tab10');
      const swatch = el('span', { class: 'swatch', role: 'img', 'aria-label': rgb, title: rgb });
      swatch.style.backgroundColor = `rgb(${color.join(',')})`;
      const abbrev = (metadata.category_abbreviations || [])[position];
      body.append(el('tr', {},
        el('td', { text: String(position) }),
        el('td', {}, swatch),
        el('td', {}, (metadata.categories || [])[position] || '', abbrev ? el('span', { class: 'abbrev', text: abbrev }) : null),
        el('td', { text: Array.isArray(id) ? id.join(' + ') : String(id) })));
    });
    $('categories').hidden = ids.length === 0;
    $('metadata').textContent = JSON.stringify(metadata, null, 2);
  }

  // ------------------------------------------------------------------------------------------
  // Scans

  function renderScans() {
    $('scans-section').hidden = false;
    $('scans-heading').textContent = `Scans (${state.scans.length})`;
    const filter = $('scan-filter').value.trim().toLowerCase();
    const list = $('scans');
    list.replaceChildren();
    for (const scan of state.scans) {
      if (filter && !scan.scan_id.toLowerCase().includes(filter)) continue;
      const volumes = scan.volumes || [];
      const slices = volumes.length ? volumes[0].num_slices : 0;
      const parts = [];
      if (scan.subject_id !== undefined && scan.subject_id !== null) parts.push(`subject ${scan.subject_id}`);
      if (scan.time_point !== undefined && scan.time_point !== null) parts.push(`time ${scan.time_point}`);
      parts.push(plural(slices, 'slice'));
      if (volumes.length > 1) parts.push(plural(volumes.length, 'aug'));
      const button = el('button', { type: 'button', class: 'item', 'data-scan': scan.scan_id },
        el('span', { class: 'item-title', text: scan.scan_id }),
        el('span', { class: 'item-meta', text: parts.join(' · ') }));
      if (state.scan && state.scan.scan_id === scan.scan_id) button.setAttribute('aria-current', 'true');
      button.addEventListener('click', () => selectScan(scan.scan_id, {}, true).catch(showError));
      list.append(el('li', {}, button));
    }
  }
  $('scan-filter').addEventListener('input', renderScans);

  async function selectScan(scanId, wanted, push) {
    const scan = state.scans.find((s) => s.scan_id === scanId);
    if (!scan) throw new ApiError(0, 'not_found', `scan '${scanId}' is not in ${state.dataset}`);
    clearError();
    state.scan = scan;
    renderScans();
    const volumes = scan.volumes || [];
    const aug = volumes.some((v) => v.aug === wanted.aug) ? wanted.aug : (volumes[0] ? volumes[0].aug : 0);
    const select = $('aug');
    select.replaceChildren(...volumes.map((v) => el('option', { value: String(v.aug), text: `aug ${v.aug} (${plural(v.num_slices, 'slice')})` })));
    $('aug-control').hidden = volumes.length < 2;
    return selectVolume(aug, wanted, push);
  }

  // The HEAD of a volume's image as raw bytes: its shape without its bytes. A HEAD answer has no
  // body, so when it fails the error's message is read from a 1-pixel preview of the same volume.
  async function volumeHead(imagePath, aug) {
    try {
      return await request(apiURL(imagePath, { aug, format: 'raw' }), { method: 'HEAD' });
    } catch (error) {
      if (!(error instanceof ApiError) || error.status < 400 || error.status === 401) throw error;
      try {
        await request(apiURL(imagePath.replace(/\/image$/, '/preview.png'), { aug, size: 1 }));
      } catch (detailed) {
        if (detailed instanceof ApiError && detailed.status === error.status) throw detailed;
      }
      throw error;
    }
  }

  // A scan's volume (one augmentation): its shape (HEAD of the image as raw bytes) and dicts.
  async function selectVolume(aug, wanted, push) {
    const mine = ++generation;
    abortPreview();
    state.aug = aug;
    $('aug').value = String(aug);
    const scanId = state.scan.scan_id;
    $('placeholder').hidden = true;
    $('viewer-body').hidden = false;
    $('viewer-heading').textContent = `${scanId}${(state.scan.volumes || []).length > 1 ? ` · aug ${aug}` : ''}`;
    setStatus(`Loading ${scanId}…`);
    const imagePath = datasetPath(state.dataset, `/scans/${enc(scanId)}/image`);
    let head;
    let dicts;
    try {
      [head, dicts] = await Promise.all([
        volumeHead(imagePath, aug),
        getJSON(datasetPath(state.dataset, '/dicts'), { scan_id: scanId, aug }),
      ]);
    } catch (error) {
      if (mine !== generation) return;
      writeHash(push);
      renderCrumbs();
      // The scan cannot be shown (e.g. 2D slices of different shapes): say why, show no picture.
      state.shape = null;
      state.dicts = [];
      img.removeAttribute('src');
      img.dataset.state = 'error';
      preview.shown = null;
      $('caption').textContent = '';
      $('controls').hidden = true;
      renderDict();
      setStatus('');
      stageMessage('Cannot open this scan: ' + (error instanceof ApiError ? error.describe() : error.message));
      return;
    }
    if (mine !== generation) return;
    $('controls').hidden = false;
    state.shape = (head.headers.get('X-Tensor-Shape') || '').split(',').filter(Boolean).map(Number);
    const sorted = Array.isArray(dicts) ? dicts.slice() : [];
    if (sorted.length > 1 && sorted.every((d) => typeof d.slice_id === 'number')) sorted.sort((a, b) => a.slice_id - b.slice_id);
    state.dicts = sorted;
    state.labeled = sorted.every((d) => d.sem_seg_file !== undefined && d.sem_seg_file !== null);
    setStatus('');
    renderCrumbs();
    renderLegend();
    const axis = wanted.axis !== undefined && wanted.axis >= 0 && wanted.axis <= 2 ? wanted.axis : state.axis;
    setAxis(axis, wanted.slice, push);
  }

  // ------------------------------------------------------------------------------------------
  // The viewer's controls

  const axisLength = (axis) => (state.shape && state.shape.length === 3 ? state.shape[axis] : 0);

  function setAxis(axis, slice, push) {
    state.axis = axis;
    $('axis-' + axis).checked = true;
    for (let a = 0; a < 3; a++) {
      const length = axisLength(a);
      $(`axis-${a}-label`).textContent = `${a} · ${AXIS_NAMES[a]}${length ? ' ' + length : ''}`;
    }
    const length = axisLength(axis);
    const max = Math.max(0, length - 1);
    for (const input of [$('slice'), $('slice-number')]) {
      input.max = String(max);
      input.disabled = length <= 1;
    }
    let k = slice === undefined ? Math.floor(length / 2) : slice;
    if (k < 0) k += length;
    setSlice(Math.min(Math.max(0, k), max), 0, push);
  }

  function setSlice(k, delay, push) {
    state.slice = k;
    const length = axisLength(state.axis);
    $('slice').value = String(k);
    $('slice-number').value = String(k);
    const last = Math.max(0, length - 1);
    $('slice-count').textContent = `${k} / ${last}`;
    $('slice').setAttribute('aria-valuetext', `slice ${k} of 0 to ${last}, axis ${state.axis}`);
    writeHash(push);
    renderDict();
    schedulePreview(delay);
  }

  $('slice').addEventListener('input', () => setSlice(Number($('slice').value), SLIDER_DEBOUNCE));
  $('slice-number').addEventListener('change', () => {
    const max = Number($('slice-number').max);
    const value = Math.round(Number($('slice-number').value));
    setSlice(Number.isFinite(value) ? Math.min(Math.max(0, value), max) : state.slice, 0);
  });
  for (const input of document.querySelectorAll('input[name="axis"]')) {
    input.addEventListener('change', () => { if (input.checked) setAxis(Number(input.value), undefined); });
  }
  $('aug').addEventListener('change', () => selectVolume(Number($('aug').value), { axis: state.axis }, false).catch(showError));
  $('opacity').addEventListener('input', () => {
    state.opacity = Number($('opacity').value);
    $('opacity-value').textContent = `${state.opacity}%`;
    schedulePreview(SLIDER_DEBOUNCE);
  });
  $('outline').addEventListener('change', () => { state.outline = $('outline').checked; schedulePreview(0); });
  $('aspect').addEventListener('change', fit);
  $('window').addEventListener('change', () => { state.window = $('window').value.trim(); schedulePreview(0); });
  $('controls').addEventListener('submit', (event) => { event.preventDefault(); state.window = $('window').value.trim(); schedulePreview(0); });

  function renderLegend() {
    const list = $('classes');
    list.replaceChildren();
    const metadata = (state.detail && state.detail.metadata) || {};
    const count = classCount();
    for (let position = 0; position < count; position++) {
      const id = `class-${position}`;
      const box = el('input', { type: 'checkbox', id, checked: !state.hidden.has(position), disabled: !state.labeled });
      box.dataset.position = String(position);
      box.addEventListener('change', () => {
        if (box.checked) state.hidden.delete(position);
        else state.hidden.add(position);
        schedulePreview(0);
      });
      const swatch = el('span', { class: 'swatch', 'aria-hidden': 'true' });
      swatch.style.backgroundColor = `rgb(${classColor(position).join(',')})`;
      const name = (metadata.categories || [])[position] || `class ${position}`;
      const abbrev = (metadata.category_abbreviations || [])[position];
      const label = el('label', { for: id }, swatch, el('span', { text: name }), abbrev ? el('span', { class: 'abbrev', text: abbrev }) : null);
      list.append(el('li', {}, box, label));
    }
    const note = $('legend-note');
    note.hidden = state.labeled && count > 0;
    note.textContent = !state.labeled ? 'This scan is unlabeled: there is no mask to draw.' : 'This dataset lists no categories.';
  }

  function renderDict() {
    const section = $('dict-section');
    const { dicts } = state;
    section.hidden = !state.scan;
    if (!state.scan) return;
    let note;
    let shown;
    if (dicts.length === 0) {
      note = 'No dataset dict matches this scan.';
      shown = null;
    } else if (dicts.length === 1) {
      note = dicts[0].slice_id !== undefined ? 'The scan’s only slice.' : 'The volume’s dict.';
      shown = dicts[0];
    } else if (state.axis === 2) {
      shown = dicts[state.slice] || null;
      note = `Slice ${state.slice} of ${dicts.length}, sorted by slice_id` + (shown && shown.slice_id !== undefined ? ` (slice_id ${shown.slice_id}).` : '.');
    } else {
      note = `Along axis ${state.axis} this view crosses all ${dicts.length} slices: their dicts.`;
      shown = dicts;
    }
    $('dict-note').textContent = note;
    $('dict').textContent = shown === null ? '' : JSON.stringify(shown, null, 2);
  }

  // ------------------------------------------------------------------------------------------
  // The preview: fetched with the token, shown through a blob URL

  const img = $('preview');
  const stage = $('stage');
  const preview = { timer: 0, controller: null, seq: 0, objectURL: null, shown: null };

  function previewURL() {
    if (!state.dataset || !state.scan || !state.shape) return null;
    const count = classCount();
    const drawn = [];
    for (let k = 0; k < count; k++) if (!state.hidden.has(k)) drawn.push(k);
    const params = { aug: state.aug, axis: state.axis, slice: state.slice, opacity: state.opacity / 100 };
    // No class drawn: `classes=` cannot be empty, and opacity 0 draws the grey image alone.
    if (count && drawn.length === 0) params.opacity = 0;
    else if (drawn.length < count) params.classes = drawn.join(',');
    if (state.outline) params.outline = 1;
    if (state.window && state.window !== 'auto') params.window = state.window;
    params.size = PREVIEW_SIZE;
    return apiURL(datasetPath(state.dataset, `/scans/${enc(state.scan.scan_id)}/preview.png`), params);
  }

  function abortPreview() {
    clearTimeout(preview.timer);
    if (preview.controller) preview.controller.abort();
    preview.controller = null;
    preview.seq++;
  }

  function schedulePreview(delay) {
    clearTimeout(preview.timer);
    if (delay > 0) preview.timer = setTimeout(loadPreview, delay);
    else loadPreview();
  }

  function stageMessage(text) {
    const message = $('stage-message');
    message.textContent = text || '';
    message.hidden = !text;
  }

  async function loadPreview() {
    clearTimeout(preview.timer);
    const url = previewURL();
    if (!url) return;
    if (url.href === preview.shown && img.dataset.state === 'ready') return;
    if (preview.controller) preview.controller.abort();
    const controller = new AbortController();
    preview.controller = controller;
    const seq = ++preview.seq;
    stage.setAttribute('aria-busy', 'true');
    img.dataset.state = 'loading';
    try {
      const response = await request(url, { signal: controller.signal });
      // Read as bytes, not response.blob(): Chromium streams a blob() body into blob storage and
      // keeps no copy for its DevTools protocol, which the browser test reads the PNG through.
      const blob = new Blob([await response.arrayBuffer()], { type: 'image/png' });
      if (seq !== preview.seq) return;
      const objectURL = URL.createObjectURL(blob);
      img.src = objectURL;
      try {
        await img.decode();
      } catch (error) {
        if (seq !== preview.seq) { URL.revokeObjectURL(objectURL); return; }
        throw new ApiError(0, 'decode', 'the browser could not decode the preview');
      }
      if (seq !== preview.seq) return;
      if (preview.objectURL) URL.revokeObjectURL(preview.objectURL);
      preview.objectURL = objectURL;
      preview.shown = url.href;
      stageMessage('');
      img.alt = describeView();
      img.dataset.source = url.href;
      img.dataset.state = 'ready';
      $('caption').textContent = caption();
      fit();
    } catch (error) {
      if (error.name === 'AbortError' || seq !== preview.seq) return;
      img.dataset.state = 'error';
      preview.shown = null;
      stageMessage('No preview: ' + (error instanceof ApiError ? error.describe() : error.message));
    } finally {
      if (seq === preview.seq) {
        stage.setAttribute('aria-busy', 'false');
        preview.controller = null;
      }
    }
  }

  function describeView() {
    const names = (state.detail.metadata && state.detail.metadata.categories) || [];
    const drawn = names.filter((_, k) => !state.hidden.has(k));
    return `Scan ${state.scan.scan_id}, aug ${state.aug}, slice ${state.slice} along axis ${state.axis}` +
      (state.labeled && drawn.length ? `, with ${drawn.join(', ')}` : '');
  }

  function caption() {
    const [rows, columns] = [0, 1, 2].filter((a) => a !== state.axis);
    const h = axisLength(rows);
    const w = axisLength(columns);
    const sent = img.naturalHeight !== h || img.naturalWidth !== w ? ` (sent at ${img.naturalHeight} × ${img.naturalWidth})` : '';
    return `${h} × ${w} px${sent}, rows ${AXIS_NAMES[rows]}, columns ${AXIS_NAMES[columns]} · window ${state.window || 'auto'}` +
      (state.outline ? ' · outlines' : '');
  }

  // The spacing of the slice's rows and columns: the dict's scan_spacing, else the metadata's.
  function pixelSpacing() {
    const first = state.dicts[0] || {};
    const spacing = [first.scan_spacing, state.detail && state.detail.metadata && state.detail.metadata.spacing]
      .find((s) => Array.isArray(s) && s.length === 3 && s.every((v) => typeof v === 'number' && v > 0));
    if (!spacing) return null;
    const [rows, columns] = [0, 1, 2].filter((a) => a !== state.axis);
    return [spacing[rows], spacing[columns]];
  }

  // Scales the picture to the stage: whole multiples (crisp pixels) when it fits, else down.
  function fit() {
    const w = img.naturalWidth;
    const h = img.naturalHeight;
    const spacing = pixelSpacing();
    $('aspect').disabled = !spacing;
    if (!w || !h || img.dataset.state !== 'ready') return;
    let [sy, sx] = $('aspect').checked && spacing ? spacing : [1, 1];
    const least = Math.min(sx, sy);
    sx /= least;
    sy /= least;
    const box = stage.getBoundingClientRect();
    const room = 16;
    let scale = Math.min((box.width - room) / (w * sx), (box.height - room) / (h * sy));
    if (!(scale > 0)) scale = 1;
    if (scale >= 1 && sx === sy) scale = Math.floor(scale);
    img.style.width = `${Math.max(1, Math.round(w * sx * scale))}px`;
    img.style.height = `${Math.max(1, Math.round(h * sy * scale))}px`;
  }
  if (window.ResizeObserver) new ResizeObserver(fit).observe(stage);
  else window.addEventListener('resize', fit);

  // Keys on the picture: arrows or PageUp/PageDown move the slice, as on the slider.
  stage.tabIndex = 0;
  stage.addEventListener('keydown', (event) => {
    const steps = { ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1, PageUp: 10, PageDown: -10 };
    if (!(event.key in steps) || $('slice').disabled) return;
    event.preventDefault();
    const max = Number($('slice').max);
    setSlice(Math.min(max, Math.max(0, state.slice + steps[event.key])), SLIDER_DEBOUNCE);
  });

  // ------------------------------------------------------------------------------------------
  // Start

  async function reloadAll() {
    clearError();
    try {
      await loadDatasets();
      const wanted = readHash();
      const keep = state.dataset;
      state.dataset = null;
      if (wanted.dataset || keep) await selectDataset(wanted.dataset || keep, wanted, false);
    } catch (error) {
      showError(error);
    }
  }

  function goHome(event) {
    event.preventDefault();
    if (location.hash) history.pushState(null, '', location.pathname + location.search);
    showHome();
  }
  $('home').addEventListener('click', goHome);

  updateTokenButtons();
  renderCrumbs();
  (async () => {
    try {
      await loadDatasets();
      await applyHash();
    } catch (error) {
      showError(error);
    }
  })();
})();
