// The raft-sim run viewer. Rebuilds the cluster by replaying the JSON trace inlined in the page
// (the same rules as raft-sim's viz.rs), and draws it at the scrubber's virtual time with the
// shared renderer (render.js, also raft-net's live dashboard's), plus the messages in flight.
(function () {
  'use strict';
  // Request ids may exceed 2^53 (membership changes use ids from 2^62): keep their digits where
  // the browser hands the reviver the source text.
  const records = JSON.parse(document.getElementById('trace').textContent, function (key, value, context) {
    return key === 'request' && context && context.source ? context.source : value;
  });
  const N = records.length;
  const END_T = N ? records[N - 1].t : 0;

  const R = window.RaftRender;
  const DROP_SHOW_MS = 60;

  // ---- replaying the trace ----

  function fresh() {
    return { nodes: [], lives: [], voters: [], learners: [], cut: [], held: [],
      flights: [], drops: [], violation: null };
  }

  function nodeOf(r) {
    if (r.kind === 'deliver' || r.kind === 'drop') return r.to;
    if (r.kind === 'send') return r.from;
    return r.node;
  }

  function nodeAt(st, id) {
    while (st.nodes.length < id) st.nodes.push({ state: null, snap: [0, 0], terms: [] });
    return st.nodes[id - 1];
  }

  function lastIndex(n) { return n.snap[0] + n.terms.length; }

  function applyLog(n, c) {
    if (c.reset) { n.snap = [0, 0]; n.terms = []; }
    if (c.snapshot) {
      // Keep what follows the snapshot only when the log holds its last entry.
      const off = c.snapshot[0] - (n.snap[0] + 1);
      if (off >= 0 && off < n.terms.length && n.terms[off] === c.snapshot[1]) n.terms.splice(0, off + 1);
      else n.terms = [];
      n.snap = c.snapshot.slice();
    }
    if (c.from !== undefined) {
      n.terms.length = Math.max(0, Math.min(n.terms.length, c.from - (n.snap[0] + 1)));
      for (const term of c.terms || []) n.terms.push(term);
    }
  }

  function apply(st, r, i) {
    switch (r.kind) {
      case 'cluster':
        st.lives = r.lives; st.voters = r.voters; st.learners = r.learners;
        st.cut = r.cut; st.held = r.held;
        if (r.lives.length) nodeAt(st, r.lives.length);
        break;
      case 'send':
        for (const arrive of r.arrive) {
          st.flights.push({ from: r.from, to: r.to, type: r.type, term: r.term, entries: r.entries,
            size: r.size, sent: r.t, arrive: arrive });
        }
        break;
      case 'deliver':
      case 'drop': {
        // The message this is: same link and type, due now (or held since it was due).
        let best = -1;
        st.flights.forEach(function (f, k) {
          if (f.from !== r.from || f.to !== r.to || f.type !== r.type || f.arrive > r.t) return;
          if (best < 0 || f.arrive === r.t || (st.flights[best].arrive !== r.t && f.arrive < st.flights[best].arrive)) best = k;
        });
        if (best >= 0) st.flights.splice(best, 1);
        if (r.kind === 'drop') {
          st.drops.push({ from: r.from, to: r.to, type: r.type, t: r.t, atDest: best >= 0 });
          st.drops = st.drops.filter(function (d) { return r.t - d.t <= DROP_SHOW_MS; });
        }
        break;
      }
      case 'violation':
        if (!st.violation) st.violation = { invariant: r.invariant, detail: r.detail, index: i };
        break;
    }
    if (r.log) applyLog(nodeAt(st, nodeOf(r)), r.log);
    if (r.state) nodeAt(st, nodeOf(r)).state = r.state;
  }

  // The whole run, for the summary line, the layout and the violation.
  const final = fresh();
  records.forEach(function (r, i) { apply(final, r, i); });
  const NODE_COUNT = final.nodes.length;

  function summaryLine(st) {
    const nodes = st.nodes;
    return 'nodes=' + nodes.length +
      ' log_lengths=' + nodes.map(lastIndex).join(',') +
      ' commit=' + nodes.map(function (n) { return n.state ? n.state.commit : 0; }).join(',') +
      ' terms=' + nodes.map(function (n) { return ['s' + n.snap[0]].concat(n.terms).join('.'); }).join('/') +
      ' violation=' + (st.violation ? st.violation.invariant : 'none');
  }
  document.getElementById('summary').textContent = summaryLine(final);

  // ---- the cursor: records[0..cur) applied, at virtual time t ----

  let st = fresh();
  let cur = 0;
  let t = 0;

  function seekIndex(k) {
    k = Math.max(0, Math.min(N, k));
    if (k < cur) { st = fresh(); cur = 0; }
    while (cur < k) { apply(st, records[cur], cur); cur++; }
    t = k > 0 ? records[k - 1].t : 0;
  }

  function seekTime(x) {
    x = Math.max(0, Math.min(END_T, x));
    let lo = 0, hi = N;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (records[mid].t <= x) lo = mid + 1; else hi = mid; }
    seekIndex(lo);
    t = x;
  }

  // ---- text of a record ----

  function logText(c) {
    if (!c) return '';
    const parts = [];
    if (c.reset) parts.push('log loaded');
    if (c.snapshot) parts.push('snapshot through ' + c.snapshot[0] + ' (t' + c.snapshot[1] + ')');
    if (c.from !== undefined && !c.reset) {
      parts.push((c.terms && c.terms.length) ? 'log[' + c.from + '..] = ' + c.terms.map(function (x) { return 't' + x; }).join(' ') : 'log cut from ' + c.from);
    }
    return parts.length ? ' · ' + parts.join(', ') : '';
  }

  function text(r) {
    switch (r.kind) {
      case 'tick': return 'n' + r.node + ' tick' + logText(r.log);
      case 'deliver': return 'n' + r.to + ' \u2190 n' + r.from + ' ' + r.type + ' t' + r.term + logText(r.log);
      case 'drop': return 'n' + r.to + ' \u00d7\u2500 n' + r.from + ' ' + r.type + ' dropped (' + r.reason + ')';
      case 'persisted': return 'n' + r.node + ' persisted p' + r.persist_id;
      case 'propose': return 'n' + r.node + ' propose r' + r.request + logText(r.log);
      case 'reply': return 'n' + r.node + ' reply r' + r.request + ' ' + r.reply;
      case 'role': return 'n' + r.node + ' is ' + r.role + ' in t' + r.term;
      case 'control': return r.text;
      case 'send': return 'n' + r.from + ' \u2192 n' + r.to + ' ' + r.type + ' t' + r.term +
        (r.entries ? ' (' + r.entries + ' entries)' : '') + ' ' + r.size + ' B';
      case 'step': return 'n' + r.node + ' step' + (r.state ? ' ' + r.state.role + ' t' + r.state.term : '') + logText(r.log);
      case 'cluster': {
        const down = r.lives.map(function (l, k) { return l === 'running' ? null : 'n' + (k + 1) + ' ' + l.replace('_', ' '); }).filter(Boolean);
        const cut = r.cut.map(function (c) { return 'n' + c[0] + '\u2192n' + c[1]; });
        return 'cluster: ' + (down.length ? down.join(', ') : 'all running') +
          (cut.length ? ' · cut ' + cut.join(' ') : '') +
          (r.held.length ? ' · held ' + r.held.map(function (c) { return 'n' + c[0] + '\u2192n' + c[1]; }).join(' ') : '');
      }
      case 'violation': return 'VIOLATION ' + r.invariant + ': ' + r.detail;
    }
    return r.kind;
  }

  // ---- drawing (node boxes, logs, links and the legend are the shared renderer's) ----

  const esc = R.esc;
  const LAYOUT = R.layout(NODE_COUNT);

  function drawNode(out, id) {
    const n = st.nodes[id - 1] || { state: null, snap: [0, 0], terms: [] };
    const member = st.voters.indexOf(id) >= 0 ? '' : st.learners.indexOf(id) >= 0 ? 'learner' : 'not a member';
    R.drawNode(out, LAYOUT, id, { id: id, life: st.lives[id - 1] || 'never_started', state: n.state,
      snap: n.snap, terms: n.terms, member: member });
  }

  function drawMessages(out) {
    for (const f of st.flights) {
      if (f.sent > t) continue;
      const tr = LAYOUT.track(f.from, f.to);
      const waiting = t >= f.arrive;
      const p = waiting ? 0.96 : Math.max(0, Math.min(1, (t - f.sent) / Math.max(1e-9, f.arrive - f.sent)));
      const pos = R.at(tr, p);
      const fam = f.type.replace(/Response$/, '');
      const colour = R.MSG_COLOUR[fam] || '#555';
      const response = /Response$/.test(f.type);
      const r = f.entries ? 8.5 : 6.5;
      const tip = '<title>' + f.type + ' n' + f.from + '\u2192n' + f.to + ' t' + f.term + (f.entries ? ', ' + f.entries + ' entries' : '') +
        ', ' + f.size + ' B, sent ' + f.sent + ' ms, due ' + f.arrive + ' ms' + (waiting ? ' (held)' : '') + '</title>';
      if (waiting) out.push('<circle cx="' + pos.x + '" cy="' + pos.y + '" r="' + (r + 4) + '" fill="none" stroke="#e67e22" stroke-width="2" stroke-dasharray="3 2"/>');
      if (response) {
        out.push('<circle cx="' + pos.x + '" cy="' + pos.y + '" r="' + r + '" fill="#fff" stroke="' + colour + '" stroke-width="3">' + tip + '</circle>');
      } else {
        out.push('<circle cx="' + pos.x + '" cy="' + pos.y + '" r="' + r + '" fill="' + colour + '" stroke="#fff" stroke-width="1.5">' + tip + '</circle>');
        if (f.entries) out.push('<text x="' + pos.x + '" y="' + (pos.y + 4) + '" text-anchor="middle" font-size="10" font-weight="700" fill="#fff">' + f.entries + '</text>');
      }
    }
    for (const d of st.drops) {
      const age = t - d.t;
      if (age < 0 || age > DROP_SHOW_MS) continue;
      const pos = R.at(LAYOUT.track(d.from, d.to), d.atDest ? 0.9 : 0.12);
      const k = 7;
      out.push('<g stroke="#d33" stroke-width="3.5" stroke-linecap="round" opacity="' + (1 - 0.7 * age / DROP_SHOW_MS) + '">' +
        '<title>' + d.type + ' n' + d.from + '\u2192n' + d.to + ' dropped at ' + d.t + ' ms</title>' +
        '<line x1="' + (pos.x - k) + '" y1="' + (pos.y - k) + '" x2="' + (pos.x + k) + '" y2="' + (pos.y + k) + '"/>' +
        '<line x1="' + (pos.x - k) + '" y1="' + (pos.y + k) + '" x2="' + (pos.x + k) + '" y2="' + (pos.y - k) + '"/></g>');
    }
  }

  const svg = document.getElementById('cluster');

  function drawCluster() {
    const out = [R.DEFS];
    R.drawLinks(out, LAYOUT, st.cut, st.held);
    for (let id = 1; id <= NODE_COUNT; id++) drawNode(out, id);
    drawMessages(out);
    R.drawLegend(out, true);
    svg.innerHTML = out.join('');
  }

  // ---- the event list and controls ----

  const list = document.getElementById('events');
  const filters = { tick: document.getElementById('f-tick'), send: document.getElementById('f-send'), step: document.getElementById('f-step') };
  let visible = [];

  function computeVisible() {
    visible = [];
    for (let i = 0; i < N; i++) {
      const f = filters[records[i].kind];
      if (!f || f.checked || i === (final.violation && final.violation.index)) visible.push(i);
    }
  }

  // The number of visible records before k.
  function visibleBefore(k) {
    let lo = 0, hi = visible.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (visible[mid] < k) lo = mid + 1; else hi = mid; }
    return lo;
  }

  let listedAt = -1;
  function drawList() {
    if (listedAt === cur) return;
    listedAt = cur;
    const p = visibleBefore(cur);
    const html = [];
    for (let v = Math.max(0, p - 14); v < Math.min(visible.length, p + 40); v++) {
      const i = visible[v];
      const r = records[i];
      const cls = ['ev', 'k-' + r.kind];
      if (v === p - 1) cls.push('cur');
      if (i >= cur) cls.push('future');
      const line = esc(text(r));
      html.push('<div class="' + cls.join(' ') + '" data-i="' + i + '" title="' + line + '"><span class="n">#' + r.seq + ' ' + r.t + 'ms</span>' + line + '</div>');
    }
    list.innerHTML = html.join('');
    const current = list.querySelector('.cur');
    if (current) list.scrollTop = Math.max(0, current.offsetTop - list.clientHeight / 3);
  }

  const clock = document.getElementById('clock');
  const scrub = document.getElementById('scrub');
  const playButton = document.getElementById('b-play');
  scrub.max = String(END_T);

  function draw() {
    drawCluster();
    drawList();
    const last = cur > 0 ? records[cur - 1] : null;
    clock.textContent = 't = ' + t.toFixed(1) + ' ms of ' + END_T + ' \u00b7 record ' + cur + ' of ' + N +
      (last ? ' (event #' + last.seq + ')' : '');
    scrub.value = String(Math.round(t));
  }

  let playing = false;
  let lastFrame = 0;
  function frame(now) {
    if (!playing) return;
    const speed = Number(document.getElementById('speed').value);
    t = Math.min(END_T, t + (now - lastFrame) * speed);
    lastFrame = now;
    while (cur < N && records[cur].t <= t) { apply(st, records[cur], cur); cur++; }
    draw();
    if (t >= END_T && cur >= N) { setPlaying(false); return; }
    requestAnimationFrame(frame);
  }
  function setPlaying(on) {
    playing = on;
    playButton.innerHTML = '<svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true"><path d="' +
      (on ? 'M3 2h4v12H3zM9 2h4v12H9z' : 'M4 2l10 6-10 6z') + '"/></svg>';
    if (on) {
      if (t >= END_T && cur >= N) seekIndex(0);
      lastFrame = performance.now();
      requestAnimationFrame(frame);
    }
  }

  function stepForward() {
    const p = visibleBefore(cur);
    seekIndex(p < visible.length ? visible[p] + 1 : N);
  }
  function stepBack() {
    const p = visibleBefore(cur);
    seekIndex(p >= 2 ? visible[p - 2] + 1 : 0);
  }
  function jumpToViolation() {
    if (final.violation) seekIndex(final.violation.index + 1);
  }

  function control(fn) { return function () { setPlaying(false); fn(); draw(); }; }
  playButton.addEventListener('click', function () { setPlaying(!playing); });
  document.getElementById('b-next').addEventListener('click', control(stepForward));
  document.getElementById('b-prev').addEventListener('click', control(stepBack));
  document.getElementById('b-start').addEventListener('click', control(function () { seekTime(0); }));
  document.getElementById('b-end').addEventListener('click', control(function () { seekIndex(N); }));
  document.getElementById('b-violation').addEventListener('click', control(jumpToViolation));
  scrub.addEventListener('input', control(function () { seekTime(Number(scrub.value)); }));
  list.addEventListener('click', function (e) {
    const row = e.target.closest('.ev');
    if (row) control(function () { seekIndex(Number(row.dataset.i) + 1); })();
  });
  Object.keys(filters).forEach(function (k) {
    filters[k].addEventListener('change', function () { computeVisible(); listedAt = -1; draw(); });
  });
  document.addEventListener('keydown', function (e) {
    if (e.target.tagName === 'SELECT' || e.target.tagName === 'INPUT' && e.target.type !== 'checkbox') return;
    if (e.key === ' ') { e.preventDefault(); setPlaying(!playing); }
    else if (e.key === 'ArrowRight') { e.preventDefault(); control(stepForward)(); }
    else if (e.key === 'ArrowLeft') { e.preventDefault(); control(stepBack)(); }
    else if (e.key === 'Home') control(function () { seekTime(0); })();
    else if (e.key === 'End') control(function () { seekIndex(N); })();
  });

  // Marks under the scrubber: faults and controls, new leaders, the violation.
  const marks = document.getElementById('marks');
  records.forEach(function (r) {
    let colour = null;
    if (r.kind === 'control') colour = '#e67e22';
    else if (r.kind === 'role' && r.role === 'LEADER') colour = R.ROLE_COLOUR.LEADER;
    else if (r.kind === 'violation') colour = '#d33';
    if (!colour) return;
    const m = document.createElement('span');
    m.style.left = (END_T ? 100 * r.t / END_T : 0) + '%';
    m.style.background = colour;
    m.title = '#' + r.seq + ' ' + r.t + ' ms: ' + text(r);
    marks.appendChild(m);
  });

  if (final.violation) {
    document.getElementById('violation').hidden = false;
    document.getElementById('violation-text').textContent = final.violation.invariant + ': ' +
      final.violation.detail + ' (event #' + records[final.violation.index].seq + ', ' + records[final.violation.index].t + ' ms)';
    document.getElementById('b-violation').hidden = false;
  }

  // Where to start: #t=end, #t=MS, #e=RECORDS (records applied), #violation; else time 0.
  const hash = decodeURIComponent(location.hash.slice(1));
  computeVisible();
  if (hash === 't=end') seekIndex(N);
  else if (/^t=\d+(\.\d+)?$/.test(hash)) seekTime(Number(hash.slice(2)));
  else if (/^e=\d+$/.test(hash)) seekIndex(Number(hash.slice(2)));
  else if (hash === 'violation' && final.violation) jumpToViolation();
  else seekTime(0);
  draw();
})();
