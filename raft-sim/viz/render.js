// Drawing of a Raft cluster as SVG: node boxes with role, term and indexes, each node's log as
// cells coloured by term with the commit bar, links (cut or held), the legend. One renderer for
// two data sources: the simulator's run viewer (raft-sim/viz/viz.js, replaying a trace) and
// raft-net's live dashboard (raft-net/ui/dashboard.js, watching real nodes). It knows nothing
// of where the data comes from; both pages include this file before their own script.
//
// A node to draw is { id, life, state, snap, terms, first, member, attrs, describe }:
//   life    'running', 'paused', 'crashed', 'stopped' or 'never_started' (anything but the first
//           two is drawn as down, with the life as its label);
//   state   null, or { role, pre_candidate, term, leader, commit, applied };
//   snap    [index, term] of the last entry covered by a snapshot ([0, 0] without one);
//   terms   the terms of the log entries from index `first` on (`first` defaults to snap + 1;
//           a page that holds only the tail of a long log passes a larger one);
//   member  '' for a voter, else a word drawn under the id ('learner', 'not a member');
//   attrs   more attributes for the node's <g>, already escaped (data-* for tests);
//   describe(index)  optional: more text for a log cell's tooltip, and the cells get
//           data-index / data-term / data-text attributes.
(function (global) {
  'use strict';

  const ROLE_COLOUR = { LEADER: '#1e9e5a', CANDIDATE: '#e67e22', PRE: '#c9a30a', FOLLOWER: '#4f7cac' };
  const DOWN_COLOUR = '#9aa1ab';
  const TERM_COLOURS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948',
    '#b07aa1', '#ff9da7', '#9c755f', '#17a2b8'];
  const DARK_TEXT = { 5: true, 3: true, 7: true };
  const MSG_COLOUR = { RequestVote: '#8e44ad', PreVote: '#c27fdc', AppendEntries: '#24527a',
    InstallSnapshot: '#a0522d', TimeoutNow: '#e84393' };

  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c];
    });
  }

  function termColour(term) { return TERM_COLOURS[(term - 1 + TERM_COLOURS.length * 1000) % TERM_COLOURS.length]; }

  function has(list, a, b) { return list.some(function (l) { return l[0] === a && l[1] === b; }); }

  // Node boxes are drawn at one size and scaled to the cluster size; positions 1..count sit on
  // a ring in a 1000 x 720 view box.
  const BASE = { w: 300, h: 132 };

  function layout(count) {
    const scale = count <= 3 ? 1.12 : count <= 5 ? 0.9 : count <= 7 ? 0.72 : 0.5;
    const box = { w: BASE.w * scale, h: BASE.h * scale };

    function centre(pos) {
      const n = Math.max(count, 1);
      if (n === 1) return { x: 500, y: 320 };
      if (n === 2) return { x: pos === 1 ? 250 : 750, y: 320 };
      const a = -Math.PI / 2 + 2 * Math.PI * (pos - 1) / n;
      return { x: 500 + 330 * Math.cos(a), y: 335 + 235 * Math.sin(a) };
    }

    // Where the segment from a's centre towards b's leaves a's box.
    function edge(a, b) {
      const dx = b.x - a.x, dy = b.y - a.y;
      const s = Math.min(Math.abs(dx) > 1e-9 ? (box.w / 2 + 4) / Math.abs(dx) : Infinity,
        Math.abs(dy) > 1e-9 ? (box.h / 2 + 4) / Math.abs(dy) : Infinity);
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

    return { count: count, scale: scale, box: box, centre: centre, edge: edge, track: track };
  }

  function at(tr, p) { return { x: tr.x1 + (tr.x2 - tr.x1) * p, y: tr.y1 + (tr.y2 - tr.y1) * p }; }

  // Links between every two positions; `cut` and `held` list directed [from, to] pairs.
  function drawLinks(out, lay, cut, held) {
    const count = lay.count;
    for (let a = 1; a <= count; a++) {
      for (let b = a + 1; b <= count; b++) {
        const ab = has(cut, a, b), ba = has(cut, b, a);
        const pa = lay.edge(lay.centre(a), lay.centre(b)), pb = lay.edge(lay.centre(b), lay.centre(a));
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
            const tr = lay.track(d[0], d[1]);
            if (d[2]) {
              out.push('<line x1="' + tr.x1 + '" y1="' + tr.y1 + '" x2="' + tr.x2 + '" y2="' + tr.y2 +
                '" stroke="#d33" stroke-width="2.5" stroke-dasharray="8 6" marker-end="url(#arrow-cut)"/>');
              const m = at(tr, 0.5);
              out.push('<text x="' + m.x + '" y="' + (m.y + 5) + '" text-anchor="middle" font-size="15" font-weight="700" fill="#d33">\u2715</text>');
            }
          });
        }
        [[a, b], [b, a]].forEach(function (d) {
          if (!has(held, d[0], d[1])) return;
          const tr = lay.track(d[0], d[1]);
          const m = at(tr, 0.5);
          out.push('<line x1="' + tr.x1 + '" y1="' + tr.y1 + '" x2="' + tr.x2 + '" y2="' + tr.y2 +
            '" stroke="#e67e22" stroke-width="2.5" stroke-dasharray="2 5" stroke-linecap="round"/>' +
            '<text x="' + m.x + '" y="' + (m.y - 8) + '" text-anchor="middle" font-size="11" fill="#b35c00">held n' + d[0] + '\u2192n' + d[1] + '</text>');
        });
      }
    }
  }

  function firstIndex(n) { return n.first === undefined ? n.snap[0] + 1 : n.first; }
  function lastIndex(n) { return firstIndex(n) - 1 + n.terms.length; }

  // The role the box shows: PRE for a pre-candidate, else the role; FOLLOWER before any state.
  function roleOf(s) { return s ? (s.pre_candidate ? 'PRE' : s.role) : 'FOLLOWER'; }

  function drawNode(out, lay, pos, n) {
    const life = n.life;
    const c = lay.centre(pos);
    const x0 = -BASE.w / 2, y0 = -BASE.h / 2;
    const s = n.state;
    const up = life === 'running' || life === 'paused';
    const role = roleOf(s);
    let colour = ROLE_COLOUR[role];
    let label = role === 'PRE' ? 'PRE-CANDIDATE' : role;
    if (!up) { colour = DOWN_COLOUR; label = life === 'never_started' ? 'NOT STARTED' : life.toUpperCase(); }
    // data-* attributes let tests read what is drawn.
    out.push('<g class="node" data-node="' + n.id + '" data-life="' + life + '" data-last="' + lastIndex(n) + '" data-commit="' + (s ? s.commit : 0) +
      '"' + (n.attrs || '') + ' transform="translate(' + c.x + ',' + c.y + ') scale(' + lay.scale + ')" opacity="' + (life === 'never_started' ? 0.45 : 1) + '">');
    out.push('<rect x="' + x0 + '" y="' + y0 + '" width="' + BASE.w + '" height="' + BASE.h + '" rx="9" fill="' +
      (up ? '#fff' : '#eceef1') + '" stroke="' + colour + '" stroke-width="' + (role === 'LEADER' && up ? 4 : 2) + '"' +
      (up ? '' : ' stroke-dasharray="7 5"') + '/>');
    if (life === 'paused') {
      out.push('<rect x="' + x0 + '" y="' + y0 + '" width="' + BASE.w + '" height="' + BASE.h + '" rx="9" fill="url(#hatch)"/>');
    }
    out.push('<text x="' + (x0 + 12) + '" y="' + (y0 + 25) + '" font-size="20" font-weight="700" fill="#1d2430">n' + n.id + '</text>');
    if (n.member) out.push('<text x="' + (x0 + 46) + '" y="' + (y0 + 24) + '" font-size="11" fill="#6b7485">' + esc(n.member) + '</text>');
    const pw = label.length * 7.6 + 16;
    out.push('<rect x="' + (x0 + BASE.w - pw - 10) + '" y="' + (y0 + 9) + '" width="' + pw + '" height="21" rx="10.5" fill="' + colour + '"/>' +
      '<text x="' + (x0 + BASE.w - pw / 2 - 10) + '" y="' + (y0 + 24) + '" text-anchor="middle" font-size="12" font-weight="700" fill="#fff">' + esc(label) + '</text>');
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
    // Entries after the snapshot that the caller did not pass (a tail of a long log).
    const hidden = firstIndex(n) - (n.snap[0] + 1);
    const total = hidden + n.terms.length;
    let left = x;
    if (n.snap[0] > 0) {
      out.push('<rect x="' + left + '" y="' + y + '" width="34" height="' + h + '" rx="3" fill="#d7dbe2"/>' +
        '<text x="' + (left + 17) + '" y="' + (y + 17) + '" text-anchor="middle" font-size="10" fill="#4a5261">\u2264' + n.snap[0] + '</text>');
      left += 37;
    }
    const room = x + width - left;
    let first = 0;
    let cw = Math.min(24, room / Math.max(1, total));
    if (cw < 9) {
      cw = 9;
      const fit = Math.floor((room - 22) / cw);
      first = Math.max(total - fit, hidden);
      out.push('<text x="' + (left + 2) + '" y="' + (y + 17) + '" font-size="12" fill="#6b7485">\u2026</text>');
      left += 22;
    }
    const commit = s ? s.commit : 0;
    for (let k = first; k < total; k++) {
      const index = n.snap[0] + 1 + k;
      const term = n.terms[k - hidden];
      const cx = left + (k - first) * cw;
      const committed = index <= commit;
      const more = n.describe ? n.describe(index) : '';
      const tags = n.describe ? ' class="cell" data-index="' + index + '" data-term="' + term + '" data-text="' + esc(more) + '"' : '';
      out.push('<rect' + tags + ' x="' + cx + '" y="' + y + '" width="' + (cw - 2) + '" height="' + h + '" rx="3" fill="' + termColour(term) +
        '" fill-opacity="' + (committed ? (up ? 1 : 0.6) : 0.35) + '"' + (committed ? '' : ' stroke="' + termColour(term) + '" stroke-dasharray="3 2"') +
        '><title>index ' + index + ', term ' + term + (committed ? ', committed' : '') + (more ? ': ' + esc(more) : '') + '</title></rect>');
      if (cw - 4 >= String(term).length * 6.6) {
        out.push('<text x="' + (cx + (cw - 2) / 2) + '" y="' + (y + 17) + '" text-anchor="middle" font-size="11" font-weight="600" fill="' +
          (committed && !DARK_TEXT[(term - 1) % 10] ? '#fff' : '#1d2430') + '">' + term + '</text>');
      }
    }
    if (commit > n.snap[0] || commit > 0) {
      const k = Math.min(commit, n.snap[0] + total) - n.snap[0] - 1;
      const bx = k < first ? left - 2 : left + (k - first + 1) * cw - 1;
      out.push('<line x1="' + bx + '" y1="' + (y - 4) + '" x2="' + bx + '" y2="' + (y + h + 4) + '" stroke="#1d2430" stroke-width="3"/>' +
        '<path d="M' + (bx - 5) + ',' + (y + h + 11) + ' l5,-6 l5,6 z" fill="#1d2430"/>');
    }
    if (cw >= 14 || first > 0) {
      out.push('<text x="' + (left + (cw - 2) / 2) + '" y="' + (y + h + 13) + '" text-anchor="middle" font-size="9" fill="#8a93a3">' + (n.snap[0] + 1 + first) + '</text>');
    }
  }

  // The legend at the foot of the view box; `messages` adds the simulator's message kinds.
  function drawLegend(out, messages) {
    let x = 24;
    const y = 690;
    out.push('<text x="' + x + '" y="' + (y - 22) + '" font-size="11" font-weight="700" fill="#5b6475">ROLES</text>');
    [['LEADER', ROLE_COLOUR.LEADER], ['CANDIDATE', ROLE_COLOUR.CANDIDATE], ['PRE-CANDIDATE', ROLE_COLOUR.PRE],
      ['FOLLOWER', ROLE_COLOUR.FOLLOWER], ['DOWN', DOWN_COLOUR]].forEach(function (p) {
      const w = p[0].length * 6.6 + 12;
      out.push('<rect x="' + x + '" y="' + (y - 12) + '" width="' + w + '" height="17" rx="8.5" fill="' + p[1] + '"/>' +
        '<text x="' + (x + w / 2) + '" y="' + (y + 1) + '" text-anchor="middle" font-size="10" font-weight="700" fill="#fff">' + p[0] + '</text>');
      x += w + 5;
    });
    x += 18;
    if (messages) {
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
    }
    x = 24;
    const y2 = y + 24;
    out.push('<text x="' + x + '" y="' + y2 + '" font-size="11" fill="#3a4250">log cells coloured by term' +
      ' \u00b7 faded, dashed: not committed \u00b7 bar \u25b2: commit index \u00b7 red dashed \u2715: link cut</text>');
  }

  const DEFS = '<defs><pattern id="hatch" width="10" height="10" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' +
    '<rect width="4" height="10" fill="#e6a100" fill-opacity="0.13"/></pattern>' +
    '<marker id="arrow-cut" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
    '<path d="M0,0 L10,5 L0,10 z" fill="#d33"/></marker></defs>';

  global.RaftRender = {
    ROLE_COLOUR: ROLE_COLOUR, DOWN_COLOUR: DOWN_COLOUR, MSG_COLOUR: MSG_COLOUR, DEFS: DEFS,
    esc: esc, termColour: termColour, roleOf: roleOf, layout: layout, at: at,
    drawLinks: drawLinks, drawNode: drawNode, drawLog: drawLog, drawLegend: drawLegend
  };
})(this);
