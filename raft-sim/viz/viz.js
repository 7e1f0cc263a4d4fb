// The raft-sim run viewer. Rebuilds the cluster by replaying the JSON trace inlined in the page
// (the same rules as raft-sim's viz.rs), and draws it at the scrubber's virtual time.
(function () {
  'use strict';
  // Request ids may exceed 2^53 (membership changes use ids from 2^62): keep their digits where
  // the browser hands the reviver the source text.
  const records = JSON.parse(document.getElementById('trace').textContent, function (key, value, context) {
    return key === 'request' && context && context.source ? context.source : value;
  });
  const N = records.length;
  const END_T = N ? records[N - 1].t : 0;

  const ROLE_COLOUR = { LEADER: '#1e9e5a', CANDIDATE: '#e67e22', PRE: '#c9a30a', FOLLOWER: '#4f7cac' };
  const TERM_COLOURS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948',
    '#b07aa1', '#ff9da7', '#9c755f', '#17a2b8'];
  const DARK_TEXT = { 5: true, 3: true, 7: true };
  const MSG_COLOUR = { RequestVote: '#8e44ad', PreVote: '#c27fdc', AppendEntries: '#24527a',
    InstallSnapshot: '#a0522d', TimeoutNow: '#e84393' };
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

  // ---- drawing ----

  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c];
    });
  }

  // Node boxes are drawn at one size and scaled to the cluster size.
  const BASE = { w: 300, h: 132 };
  const SCALE = NODE_COUNT <= 3 ? 1.12 : NODE_COUNT <= 5 ? 0.9 : NODE_COUNT <= 7 ? 0.72 : 0.5;
  const BOX = { w: BASE.w * SCALE, h: BASE.h * SCALE };

  function centre(id) {
    const n = Math.max(NODE_COUNT, 1);
    if (n === 1) return { x: 500, y: 320 };
    if (n === 2) return { x: id === 1 ? 250 : 750, y: 320 };
    const a = -Math.PI / 2 + 2 * Math.PI * (id - 1) / n;
    return { x: 500 + 330 * Math.cos(a), y: 335 + 235 * Math.sin(a) };
  }

  // Where the segment from a's centre towards b's leaves a's box.
  function edge(a, b) {
    const dx = b.x - a.x, dy = b.y - a.y;
    const s = Math.min(Math.abs(dx) > 1e-9 ? (BOX.w / 2 + 4) / Math.abs(dx) : Infinity,
      Math.abs(dy) > 1e-9 ? (BOX.h / 2 + 4) / Math.abs(dy) : Infinity);
    return { x: a.x + dx * s, y: a.y + dy * s };
  }

  // The track of messages from `from` to `to`: offset to the right of travel, so the two
  // directions of a link do not overlap.
  function track(from, to) {
    const a = centre(from), b = centre(to);
    const p = edge(a, b), q = edge(b, a);
    const len = Math.hypot(q.x - p.x, q.y - p.y) || 1;
    const ox = -(q.y - p.y) / len * 7, oy = (q.x - p.x) / len * 7;
    return { x1: p.x + ox, y1: p.y + oy, x2: q.x + ox, y2: q.y + oy };
  }

  function at(tr, p) { return { x: tr.x1 + (tr.x2 - tr.x1) * p, y: tr.y1 + (tr.y2 - tr.y1) * p }; }

  function termColour(term) { return TERM_COLOURS[(term - 1 + TERM_COLOURS.length * 1000) % TERM_COLOURS.length]; }

  function has(list, a, b) { return list.some(function (l) { return l[0] === a && l[1] === b; }); }

  function drawLinks(out) {
    for (let a = 1; a <= NODE_COUNT; a++) {
      for (let b = a + 1; b <= NODE_COUNT; b++) {
        const ab = has(st.cut, a, b), ba = has(st.cut, b, a);
        const pa = edge(centre(a), centre(b)), pb = edge(centre(b), centre(a));
        if (ab && ba) {
          out.push('<line x1="' + pa.x + '" y1="' + pa.y + '" x2="' + pb.x + '" y2="' + pb.y +
            '" stroke="#d33" stroke-width="2.5" stroke-dasharray="8 6"/>');
          const m = { x: (pa.x + pb.x) / 2, y: (pa.y + pb.y) / 2 };
          out.push('<circle cx="' + m.x + '" cy="' + m.y + '" r="11" fill="#fff" stroke="#d33" stroke-width="2"/>' +
            '<text x="' + m.x + '" y="' + (m.y + 5) + '" text-anchor="middle" font-size="15" font-weight="700" fill="#d33">\u2715</text>');
        } else {
          out.push('<line x1="' + pa.x + '" y1="' + pa.y + '" x2="' + pb.x + '" y2="' + pb.y +
            '" stroke="#dde2ea" stroke-width="1.5"/>');
          [[a, b, ab], [b, a, ba]].forEach(function (d) {
            const tr = track(d[0], d[1]);
            if (d[2]) {
              out.push('<line x1="' + tr.x1 + '" y1="' + tr.y1 + '" x2="' + tr.x2 + '" y2="' + tr.y2 +
                '" stroke="#d33" stroke-width="2.5" stroke-dasharray="8 6" marker-end="url(#arrow-cut)"/>');
              const m = at(tr, 0.5);
              out.push('<text x="' + m.x + '" y="' + (m.y + 5) + '" text-anchor="middle" font-size="15" font-weight="700" fill="#d33">\u2715</text>');
            }
          });
        }
        [[a, b], [b, a]].forEach(function (d) {
          if (!has(st.held, d[0], d[1])) return;
          const tr = track(d[0], d[1]);
          const m = at(tr, 0.5);
          out.push('<line x1="' + tr.x1 + '" y1="' + tr.y1 + '" x2="' + tr.x2 + '" y2="' + tr.y2 +
            '" stroke="#e67e22" stroke-width="2.5" stroke-dasharray="2 5" stroke-linecap="round"/>' +
            '<text x="' + m.x + '" y="' + (m.y - 8) + '" text-anchor="middle" font-size="11" fill="#b35c00">held n' + d[0] + '\u2192n' + d[1] + '</text>');
        });
      }
    }
  }

  function drawNode(out, id) {
    const n = st.nodes[id - 1] || { state: null, snap: [0, 0], terms: [] };
    const life = st.lives[id - 1] || 'never_started';
    const c = centre(id);
    const x0 = -BASE.w / 2, y0 = -BASE.h / 2;
    const s = n.state;
    const up = life === 'running' || life === 'paused';
    let role = s ? (s.pre_candidate ? 'PRE' : s.role) : 'FOLLOWER';
    let colour = ROLE_COLOUR[role];
    let label = role === 'PRE' ? 'PRE-CANDIDATE' : role;
    if (!up) { colour = '#9aa1ab'; label = life === 'never_started' ? 'NOT STARTED' : life.toUpperCase(); }
    const member = st.voters.indexOf(id) >= 0 ? '' : st.learners.indexOf(id) >= 0 ? 'learner' : 'not a member';
    // data-* attributes let tests read what is drawn.
    out.push('<g class="node" data-node="' + id + '" data-life="' + life + '" data-last="' + lastIndex(n) + '" data-commit="' + (s ? s.commit : 0) +
      '" transform="translate(' + c.x + ',' + c.y + ') scale(' + SCALE + ')" opacity="' + (life === 'never_started' ? 0.45 : 1) + '">');
    out.push('<rect x="' + x0 + '" y="' + y0 + '" width="' + BASE.w + '" height="' + BASE.h + '" rx="9" fill="' +
      (up ? '#fff' : '#eceef1') + '" stroke="' + colour + '" stroke-width="' + (role === 'LEADER' && up ? 4 : 2) + '"' +
      (up ? '' : ' stroke-dasharray="7 5"') + '/>');
    if (life === 'paused') {
      out.push('<rect x="' + x0 + '" y="' + y0 + '" width="' + BASE.w + '" height="' + BASE.h + '" rx="9" fill="url(#hatch)"/>');
    }
    out.push('<text x="' + (x0 + 12) + '" y="' + (y0 + 25) + '" font-size="20" font-weight="700" fill="#1d2430">n' + id + '</text>');
    if (member) out.push('<text x="' + (x0 + 46) + '" y="' + (y0 + 24) + '" font-size="11" fill="#6b7485">' + member + '</text>');
    const pw = label.length * 7.6 + 16;
    out.push('<rect x="' + (x0 + BASE.w - pw - 10) + '" y="' + (y0 + 9) + '" width="' + pw + '" height="21" rx="10.5" fill="' + colour + '"/>' +
      '<text x="' + (x0 + BASE.w - pw / 2 - 10) + '" y="' + (y0 + 24) + '" text-anchor="middle" font-size="12" font-weight="700" fill="#fff">' + label + '</text>');
    if (life === 'paused') {
      out.push('<rect x="' + (x0 + BASE.w - pw - 82) + '" y="' + (y0 + 9) + '" width="64" height="21" rx="10.5" fill="#e6a100"/>' +
        '<text x="' + (x0 + BASE.w - pw - 50) + '" y="' + (y0 + 24) + '" text-anchor="middle" font-size="12" font-weight="700" fill="#fff">PAUSED</text>');
    }
    const grey = up ? '#1d2430' : '#7b828d';
    if (s) {
      out.push('<text x="' + (x0 + 12) + '" y="' + (y0 + 48) + '" font-size="14" fill="' + grey + '"><tspan font-weight="700">term ' + s.term + '</tspan>' +
        (s.leader ? '  \u00b7  leader n' + s.leader : '') + '</text>');
      out.push('<text x="' + (x0 + 12) + '" y="' + (y0 + 66) + '" font-size="12" fill="#5b6475">commit ' + s.commit +
        '  \u00b7  applied ' + s.applied + '  \u00b7  last ' + lastIndex(n) + '</text>');
    }
    drawLog(out, n, s, x0 + 12, y0 + 78, BASE.w - 24, up);
    out.push('</g>');
  }

  function drawLog(out, n, s, x, y, width, up) {
    const h = 26;
    if (!n.terms.length && !n.snap[0]) {
      out.push('<text x="' + x + '" y="' + (y + 18) + '" font-size="12" fill="#9aa1ab">empty log</text>');
      return;
    }
    let left = x;
    if (n.snap[0] > 0) {
      out.push('<rect x="' + left + '" y="' + y + '" width="34" height="' + h + '" rx="3" fill="#d7dbe2"/>' +
        '<text x="' + (left + 17) + '" y="' + (y + 17) + '" text-anchor="middle" font-size="10" fill="#4a5261">\u2264' + n.snap[0] + '</text>');
      left += 37;
    }
    const room = x + width - left;
    let first = 0;
    let cw = Math.min(24, room / Math.max(1, n.terms.length));
    if (cw < 9) {
      cw = 9;
      const fit = Math.floor((room - 22) / cw);
      first = n.terms.length - fit;
      out.push('<text x="' + (left + 2) + '" y="' + (y + 17) + '" font-size="12" fill="#6b7485">\u2026</text>');
      left += 22;
    }
    const commit = s ? s.commit : 0;
    for (let k = first; k < n.terms.length; k++) {
      const index = n.snap[0] + 1 + k;
      const term = n.terms[k];
      const cx = left + (k - first) * cw;
      const committed = index <= commit;
      out.push('<rect x="' + cx + '" y="' + y + '" width="' + (cw - 2) + '" height="' + h + '" rx="3" fill="' + termColour(term) +
        '" fill-opacity="' + (committed ? (up ? 1 : 0.6) : 0.35) + '"' + (committed ? '' : ' stroke="' + termColour(term) + '" stroke-dasharray="3 2"') +
        '><title>index ' + index + ', term ' + term + (committed ? ', committed' : '') + '</title></rect>');
      if (cw - 4 >= String(term).length * 6.6) {
        out.push('<text x="' + (cx + (cw - 2) / 2) + '" y="' + (y + 17) + '" text-anchor="middle" font-size="11" font-weight="600" fill="' +
          (committed && !DARK_TEXT[(term - 1) % 10] ? '#fff' : '#1d2430') + '">' + term + '</text>');
      }
    }
    if (commit > n.snap[0] || commit > 0) {
      const k = Math.min(commit, lastIndex(n)) - n.snap[0] - 1;
      const bx = k < first ? left - 2 : left + (k - first + 1) * cw - 1;
      out.push('<line x1="' + bx + '" y1="' + (y - 4) + '" x2="' + bx + '" y2="' + (y + h + 4) + '" stroke="#1d2430" stroke-width="3"/>' +
        '<path d="M' + (bx - 5) + ',' + (y + h + 11) + ' l5,-6 l5,6 z" fill="#1d2430"/>');
    }
    if (cw >= 14 || first > 0) {
      out.push('<text x="' + (left + (cw - 2) / 2) + '" y="' + (y + h + 13) + '" text-anchor="middle" font-size="9" fill="#8a93a3">' + (n.snap[0] + 1 + first) + '</text>');
    }
  }

  function drawMessages(out) {
    for (const f of st.flights) {
      if (f.sent > t) continue;
      const tr = track(f.from, f.to);
      const waiting = t >= f.arrive;
      const p = waiting ? 0.96 : Math.max(0, Math.min(1, (t - f.sent) / Math.max(1e-9, f.arrive - f.sent)));
      const pos = at(tr, p);
      const fam = f.type.replace(/Response$/, '');
      const colour = MSG_COLOUR[fam] || '#555';
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
      const pos = at(track(d.from, d.to), d.atDest ? 0.9 : 0.12);
      const k = 7;
      out.push('<g stroke="#d33" stroke-width="3.5" stroke-linecap="round" opacity="' + (1 - 0.7 * age / DROP_SHOW_MS) + '">' +
        '<title>' + d.type + ' n' + d.from + '\u2192n' + d.to + ' dropped at ' + d.t + ' ms</title>' +
        '<line x1="' + (pos.x - k) + '" y1="' + (pos.y - k) + '" x2="' + (pos.x + k) + '" y2="' + (pos.y + k) + '"/>' +
        '<line x1="' + (pos.x - k) + '" y1="' + (pos.y + k) + '" x2="' + (pos.x + k) + '" y2="' + (pos.y - k) + '"/></g>');
    }
  }

  function drawLegend(out) {
    let x = 24;
    const y = 690;
    out.push('<text x="' + x + '" y="' + (y - 22) + '" font-size="11" font-weight="700" fill="#5b6475">ROLES</text>');
    [['LEADER', ROLE_COLOUR.LEADER], ['CANDIDATE', ROLE_COLOUR.CANDIDATE], ['PRE-CANDIDATE', ROLE_COLOUR.PRE],
      ['FOLLOWER', ROLE_COLOUR.FOLLOWER], ['DOWN', '#9aa1ab']].forEach(function (p) {
      const w = p[0].length * 6.6 + 12;
      out.push('<rect x="' + x + '" y="' + (y - 12) + '" width="' + w + '" height="17" rx="8.5" fill="' + p[1] + '"/>' +
        '<text x="' + (x + w / 2) + '" y="' + (y + 1) + '" text-anchor="middle" font-size="10" font-weight="700" fill="#fff">' + p[0] + '</text>');
      x += w + 5;
    });
    x += 18;
    out.push('<text x="' + x + '" y="' + (y - 22) + '" font-size="11" font-weight="700" fill="#5b6475">MESSAGES (filled: request, hollow: response)</text>');
    [['AppendEntries', MSG_COLOUR.AppendEntries], ['RequestVote', MSG_COLOUR.RequestVote], ['PreVote', MSG_COLOUR.PreVote],
      ['InstallSnapshot', MSG_COLOUR.InstallSnapshot], ['TimeoutNow', MSG_COLOUR.TimeoutNow]].forEach(function (p) {
      out.push('<circle cx="' + (x + 6) + '" cy="' + (y - 4) + '" r="5.5" fill="' + p[1] + '"/>' +
        '<text x="' + (x + 15) + '" y="' + y + '" font-size="11" fill="#3a4250">' + p[0] + '</text>');
      x += p[0].length * 6.3 + 30;
    });
    out.push('<g stroke="#d33" stroke-width="3" stroke-linecap="round"><line x1="' + x + '" y1="' + (y - 9) + '" x2="' + (x + 9) + '" y2="' + y + '"/>' +
      '<line x1="' + x + '" y1="' + y + '" x2="' + (x + 9) + '" y2="' + (y - 9) + '"/></g>' +
      '<text x="' + (x + 14) + '" y="' + y + '" font-size="11" fill="#3a4250">dropped</text>');
    x = 24;
    const y2 = y + 24;
    out.push('<text x="' + x + '" y="' + y2 + '" font-size="11" fill="#3a4250">log cells coloured by term' +
      ' \u00b7 faded, dashed: not committed \u00b7 bar \u25b2: commit index \u00b7 red dashed \u2715: link cut</text>');
  }

  const svg = document.getElementById('cluster');
  const DEFS = '<defs><pattern id="hatch" width="10" height="10" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' +
    '<rect width="4" height="10" fill="#e6a100" fill-opacity="0.13"/></pattern>' +
    '<marker id="arrow-cut" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
    '<path d="M0,0 L10,5 L0,10 z" fill="#d33"/></marker></defs>';

  function drawCluster() {
    const out = [DEFS];
    drawLinks(out);
    for (let id = 1; id <= NODE_COUNT; id++) drawNode(out, id);
    drawMessages(out);
    drawLegend(out);
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
    else if (r.kind === 'role' && r.role === 'LEADER') colour = ROLE_COLOUR.LEADER;
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
