// raft-net's live dashboard. Watches every member of the cluster directly (its
// GET /api/v1/events stream), draws them with the run viewer's renderer (render.js), and drives
// them through the ordinary HTTP API: the buttons call the same routes curl would, with the
// admin token typed into the page (the server never puts it there).
(function () {
  'use strict';
  const R = window.RaftRender;
  const CONFIG = JSON.parse(document.getElementById('config').textContent);
  const SCHEME = CONFIG.scheme;
  const SELF = location.origin;
  // The launcher speaks plain HTTP; a page served over HTTPS may not call it (mixed content).
  const LAUNCHER = CONFIG.launcher && !(location.protocol === 'https:' && CONFIG.launcher.startsWith('http:'))
    ? CONFIG.launcher : null;
  // Log cells drawn at most: the renderer shows the tail that fits a box.
  const TAIL = 64;
  // An event stream silent this long (metrics come every second) is dead: reconnect.
  const STREAM_SILENCE_MS = 4000;
  const RETRY_MS = 1000;
  const MEMBERS_POLL_MS = 2000;
  const TIMELINE_MS = 120000;

  // ---- state ----

  // id -> { id, url, status, metrics, up, error, commands: Map(index -> text), changes: [] }
  const members = new Map();
  let launched = null; // id -> launcher's view, when the launcher answers
  let blocked = new Set(); // origins the page's policy does not allow (joined after it loaded)
  const started = Date.now();

  const tokenInput = document.getElementById('token');
  tokenInput.value = sessionStorage.getItem('raft-net-token') || '';
  tokenInput.addEventListener('input', function () {
    sessionStorage.setItem('raft-net-token', tokenInput.value.trim());
    refreshLauncher();
  });
  if (!CONFIG.admin_token) {
    document.getElementById('token-label').title = 'this node has no admin token: the admin routes are open';
  }

  function token() { return tokenInput.value.trim(); }

  function headers(json) {
    const h = {};
    if (token()) h.Authorization = 'Bearer ' + token();
    if (json) h['Content-Type'] = 'application/json';
    return h;
  }

  // One request; the status and the body (JSON when it parses). Never throws.
  async function call(method, url, body, json) {
    try {
      const response = await fetch(url, {
        method: method, headers: headers(json), cache: 'no-store',
        body: body === undefined ? undefined : body
      });
      const text = await response.text();
      let parsed = text;
      try { parsed = JSON.parse(text); } catch (e) { /* raw value (a key's bytes) */ }
      return { status: response.status, body: parsed };
    } catch (error) {
      return { status: 0, body: { error: String(error.message || error) } };
    }
  }

  function urlOf(httpAddr) { return SCHEME + '://' + httpAddr; }

  function member(id, url) {
    let m = members.get(id);
    if (!m) {
      m = { id: id, url: url, status: null, metrics: null, up: false, error: 'connecting',
        commands: new Map(), changes: [], lastAt: 0, lastSeq: 0, fetching: false, fetched: '' };
      members.set(id, m);
      if (url) watch(m);
    } else if (url && m.url !== url) {
      m.url = url;
    }
    return m;
  }

  // ---- members: whoever answers tells the membership and the addresses ----

  async function refreshMembers() {
    const sources = [SELF].concat(Array.from(members.values()).filter(function (m) { return m.up; })
      .map(function (m) { return m.url; }));
    for (const source of sources) {
      const answer = await call('GET', source + '/api/v1/members');
      if (answer.status !== 200 || !answer.body.members) continue;
      for (const entry of answer.body.members) {
        if (entry.http_addr) member(entry.id, urlOf(entry.http_addr));
      }
      return;
    }
  }

  async function refreshLauncher() {
    // The launcher always needs the admin token: without one there is nothing to ask.
    if (!LAUNCHER || !token()) { launched = null; schedule(); return; }
    const answer = await call('GET', LAUNCHER + '/launcher/v1/nodes');
    if (answer.status !== 200) { launched = null; schedule(); return; }
    launched = new Map();
    for (const node of answer.body.nodes) {
      launched.set(node.id, node);
      member(node.id, urlOf(node.http_addr));
    }
    schedule();
  }

  document.addEventListener('securitypolicyviolation', function (e) {
    try { blocked.add(new URL(e.blockedURI).origin); } catch (error) { /* not a URL */ }
    schedule();
  });

  // ---- each member's event stream ----

  async function watch(m) {
    for (;;) {
      await stream(m);
      m.up = false;
      schedule();
      await new Promise(function (resolve) { setTimeout(resolve, RETRY_MS); });
    }
  }

  async function stream(m) {
    const abort = new AbortController();
    let heard = Date.now();
    const watchdog = setInterval(function () {
      if (Date.now() - heard > STREAM_SILENCE_MS) abort.abort();
    }, 1000);
    try {
      const response = await fetch(m.url + '/api/v1/events', { headers: headers(false), signal: abort.signal, cache: 'no-store' });
      if (!response.ok) {
        m.error = 'HTTP ' + response.status + (response.status === 401 || response.status === 403 ? ' (token?)' : '');
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        heard = Date.now();
        buffer += decoder.decode(chunk.value, { stream: true });
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          onFrame(m, buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
      m.error = 'stream ended';
    } catch (error) {
      m.error = 'unreachable';
    } finally {
      clearInterval(watchdog);
    }
  }

  function onFrame(m, frame) {
    let name = 'message';
    const data = [];
    for (const line of frame.split('\n')) {
      if (line.startsWith('event:')) name = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (!data.length) return;
    let value;
    try { value = JSON.parse(data.join('\n')); } catch (e) { return; }
    m.up = true;
    m.error = '';
    if (name === 'status') onStatus(m, value);
    else if (name === 'metrics') m.metrics = value;
    schedule();
  }

  function onStatus(m, status) {
    m.status = status;
    for (const change of status.changes) {
      // A restarted node counts its changes from 1 again, later in time.
      if (change.at_ms < m.lastAt || (change.at_ms === m.lastAt && change.seq <= m.lastSeq)) continue;
      m.changes.push(change);
      m.lastAt = change.at_ms;
      m.lastSeq = change.seq;
    }
    const horizon = Date.now() - TIMELINE_MS;
    while (m.changes.length > 2 && m.changes[1].at_ms < horizon) m.changes.shift();
    fetchCommands(m);
  }

  // The commands of the log's tail, for the cells' tooltips (no-ops and membership entries are
  // not application entries: the state route does not list them). Fetched again whenever the
  // last index, the commit or the snapshot moved since the last answer (a new leader may
  // overwrite entries at the same indexes), and retried by the periodic refresh after a
  // failure.
  function logKey(s) { return s.last_log_index + '/' + s.commit_index + '/' + s.snapshot_index + '/' + s.term; }

  async function fetchCommands(m) {
    if (m.fetching || !m.status || m.fetched === logKey(m.status)) return;
    m.fetching = true;
    try {
      while (m.status && m.fetched !== logKey(m.status)) {
        const key = logKey(m.status);
        const last = m.status.last_log_index;
        const from = Math.max(m.status.snapshot_index + 1, last - TAIL + 1, 1);
        const answer = await call('GET', m.url + '/api/v1/state?from=' + from + '&limit=' + TAIL);
        if (answer.status !== 200) break;
        const commands = new Map();
        for (const entry of answer.body.log.concat(answer.body.uncommitted)) commands.set(entry.index, entry.command);
        m.commands = commands;
        m.fetched = key;
        schedule();
      }
    } finally {
      m.fetching = false;
    }
  }

  // ---- what to draw ----

  function sortedMembers() {
    return Array.from(members.values()).sort(function (a, b) { return a.id - b.id; });
  }

  // The leader as the members see it: the leader of the highest term any reachable one reports.
  function leader() {
    let best = null;
    for (const m of members.values()) {
      const s = m.status;
      if (!m.up || !s || s.role !== 'LEADER') continue;
      if (!best || s.term > best.status.term) best = m;
    }
    return best;
  }

  // Membership as the most recent reachable member knows it.
  function membership() {
    let best = null;
    for (const m of members.values()) {
      if (!m.up || !m.status) continue;
      if (!best || m.status.term > best.term || (m.status.term === best.term && m.status.commit_index > best.commit_index)) best = m.status;
    }
    return best ? { voters: best.voters, learners: best.learners } : { voters: [], learners: [] };
  }

  function life(m) {
    if (launched && launched.has(m.id) && !launched.get(m.id).running) return 'stopped';
    if (blocked.has(new URL(m.url).origin)) return 'not_watched';
    return m.up ? 'running' : 'unreachable';
  }

  function expandTerms(s) {
    const last = s.last_log_index;
    const first = Math.max(s.snapshot_index + 1, last - TAIL + 1);
    const terms = [];
    const runs = s.log_terms;
    let r = 0;
    for (let index = first; index <= last; index++) {
      while (r + 1 < runs.length && runs[r + 1][0] <= index) r++;
      terms.push(runs.length ? runs[r][1] : 0);
    }
    return { first: first, terms: terms };
  }

  function nodeView(m, roles) {
    const s = m.status;
    const lv = life(m);
    const view = { id: m.id, life: lv, state: null, snap: [0, 0], terms: [], member: '' };
    const voter = roles.voters.indexOf(m.id) >= 0;
    view.member = voter ? '' : roles.learners.indexOf(m.id) >= 0 ? 'learner' : (roles.voters.length ? 'not a member' : '');
    if (s) {
      view.state = { role: s.role, pre_candidate: s.pre_candidate, term: s.term, leader: s.leader,
        commit: s.commit_index, applied: s.applied_index };
      view.snap = [s.snapshot_index, 0];
      const tail = expandTerms(s);
      view.first = tail.first;
      view.terms = tail.terms;
      view.describe = function (index) { return m.commands.get(index) || ''; };
      view.attrs = ' data-role="' + R.esc(R.roleOf(s)) + '" data-term="' + s.term + '" data-leader="' + (s.leader || '') +
        '" data-isolated="' + (m.metrics && m.metrics.isolated ? 'true' : 'false') + '"';
    }
    return view;
  }

  // ---- drawing ----

  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; draw(); });
  }

  const svg = document.getElementById('cluster');
  function drawCluster(list, roles) {
    const lay = R.layout(list.length);
    const out = [R.DEFS];
    const cut = [];
    list.forEach(function (m, k) {
      if (!(m.up && m.metrics && m.metrics.isolated)) return;
      for (let j = 1; j <= list.length; j++) {
        if (j === k + 1) continue;
        cut.push([k + 1, j], [j, k + 1]);
      }
    });
    R.drawLinks(out, lay, cut, []);
    list.forEach(function (m, k) { R.drawNode(out, lay, k + 1, nodeView(m, roles)); });
    R.drawLegend(out, false);
    svg.innerHTML = out.join('');
  }

  function fmtMicros(us) {
    if (us === null || us === undefined) return '\u2013';
    return us >= 1000 ? (us / 1000).toFixed(us >= 10000 ? 0 : 1) + ' ms' : us + ' \u00b5s';
  }

  const cards = document.getElementById('nodes');
  function drawCards(list, roles, lead) {
    // Rebuilt only when the set of nodes changes; the text inside is updated in place, so a
    // button under the pointer stays the same element.
    const ids = list.map(function (m) { return m.id; }).join(',');
    if (cards.dataset.ids !== ids) {
      cards.dataset.ids = ids;
      cards.innerHTML = list.map(function (m) {
        const stop = LAUNCHER ? '<span class="sep"></span><button data-action="stop" title="SIGKILL through the launcher">stop</button>' +
          '<button data-action="restart" title="start again from its data dir">restart</button>' : '';
        return '<div class="card" data-node="' + m.id + '"><h2><span class="name">n' + m.id + '</span><span class="role"></span>' +
          '<span class="flag"></span><span class="url"></span></h2>' +
          '<div class="line l-indexes"></div><div class="line l-members"></div><div class="line l-net"></div><div class="line l-disk"></div>' +
          '<div class="buttons"><button data-action="isolate" title="drop all peer traffic">isolate</button>' +
          '<button data-action="heal">heal</button><button data-action="transfer" title="hand leadership to this node">make leader</button>' +
          '<button data-action="snapshot">snapshot</button><button data-action="remove" title="remove from the membership">remove</button>' +
          stop + '</div></div>';
      }).join('');
    }
    for (const m of list) {
      const card = cards.querySelector('.card[data-node="' + m.id + '"]');
      const s = m.status;
      const lv = life(m);
      const role = s && lv === 'running' ? R.roleOf(s) : null;
      const colour = role ? R.ROLE_COLOUR[role] : R.DOWN_COLOUR;
      card.style.borderTopColor = colour;
      const roleEl = card.querySelector('.role');
      roleEl.textContent = role ? (role === 'PRE' ? 'PRE-CANDIDATE' : role) + ' \u00b7 term ' + s.term : lv.replace('_', ' ').toUpperCase();
      roleEl.style.background = colour;
      const isolated = m.up && m.metrics && m.metrics.isolated;
      card.classList.toggle('isolated', !!isolated);
      card.querySelector('.flag').textContent = isolated ? 'ISOLATED' : '';
      card.querySelector('.url').textContent = m.url + (lv === 'running' ? '' : m.error ? ' \u00b7 ' + m.error : '');
      card.querySelector('.l-indexes').innerHTML = s ? 'commit <b>' + Number(s.commit_index) + '</b> \u00b7 applied <b>' + Number(s.applied_index) +
        '</b> \u00b7 last <b>' + Number(s.last_log_index) + '</b> \u00b7 snapshot <b>' + Number(s.snapshot_index) + '</b>' +
        (s.leader ? ' \u00b7 leader n' + Number(s.leader) : '') : 'no status yet';
      card.querySelector('.l-members').textContent = s ? 'voters ' + (s.voters.join(', ') || '\u2013') +
        ' \u00b7 learners ' + (s.learners.join(', ') || '\u2013') + (s.transfer_target ? ' \u00b7 transferring to n' + s.transfer_target : '') : '';
      const mt = m.metrics;
      card.querySelector('.l-net').textContent = mt ? 'datagrams in ' + mt.datagrams_in + ' \u00b7 out ' + mt.datagrams_out +
        ' \u00b7 dropped ' + mt.datagrams_dropped : '';
      card.querySelector('.l-disk').textContent = mt ? 'fsyncs ' + mt.fsync.count + ' \u00b7 mean ' + fmtMicros(mt.fsync.mean_micros) +
        ' \u00b7 p99 \u2264 ' + fmtMicros(mt.fsync.p99_le_micros) + ' \u00b7 ' + mt.persist_entries + ' entries' : '';
      const voter = roles.voters.indexOf(m.id) >= 0;
      const buttons = card.querySelectorAll('button');
      for (const b of buttons) {
        const a = b.dataset.action;
        const running = lv === 'running';
        b.disabled = (a === 'isolate' && (!running || isolated)) || (a === 'heal' && (!running || !isolated)) ||
          (a === 'transfer' && (!lead || lead.id === m.id || !voter)) || (a === 'snapshot' && !running) ||
          (a === 'remove' && (!lead || (!voter && roles.learners.indexOf(m.id) < 0))) ||
          (a === 'stop' && (!launched || lv === 'stopped')) || (a === 'restart' && !launched);
      }
    }
  }

  const leaderEl = document.getElementById('leader');
  function drawHeader(list, roles, lead) {
    leaderEl.dataset.leader = lead ? String(lead.id) : '';
    leaderEl.dataset.term = lead ? String(lead.status.term) : '';
    const up = list.filter(function (m) { return m.up; }).length;
    leaderEl.textContent = (lead ? 'leader n' + lead.id + ' in term ' + lead.status.term : 'no leader') +
      ' \u00b7 ' + roles.voters.length + ' voters' + (roles.learners.length ? ', ' + roles.learners.length + ' learners' : '') +
      ' \u00b7 ' + up + ' of ' + list.length + ' nodes answering';
    const notice = document.getElementById('notice');
    const unwatched = list.filter(function (m) { return life(m) === 'not_watched'; });
    const lines = [];
    if (unwatched.length) lines.push(unwatched.map(function (m) { return 'n' + m.id; }).join(', ') + ' joined after this page was loaded: reload the page to watch it.');
    if (CONFIG.admin_token && !token()) {
      lines.push('The buttons need the admin token: paste it above (raft-net cluster writes it to <data-dir>/admin-token).');
    } else if (LAUNCHER && !launched) {
      lines.push('The cluster\'s launcher (stop, restart) did not accept the admin token given.');
    }
    notice.hidden = !lines.length;
    notice.textContent = lines.join(' ');
  }

  const timeline = document.getElementById('timeline');
  function drawTimeline(list) {
    const width = timeline.clientWidth || 1000;
    const rowH = 22, left = 46, right = 10;
    const height = Math.max(60, list.length * rowH + 22);
    timeline.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
    timeline.style.height = height + 'px';
    const now = Date.now();
    const t0 = Math.max(started - 1000, now - TIMELINE_MS);
    const x = function (t) { return left + (width - left - right) * Math.max(0, t - t0) / Math.max(1, now - t0); };
    const out = [];
    list.forEach(function (m, k) {
      const y = 6 + k * rowH;
      out.push('<text x="8" y="' + (y + 14) + '" font-size="12" font-weight="700" fill="#1d2430">n' + m.id + '</text>');
      const changes = m.changes;
      for (let i = 0; i < changes.length; i++) {
        const c = changes[i];
        const from = Math.max(c.at_ms, t0);
        const to = i + 1 < changes.length ? changes[i + 1].at_ms : now;
        if (to < t0) continue;
        const role = c.pre_candidate ? 'PRE' : c.role;
        const x1 = x(from), x2 = Math.max(x(to), x1 + 1);
        out.push('<rect class="span" data-node="' + m.id + '" data-role="' + role + '" data-term="' + c.term + '" x="' + x1 + '" y="' + y +
          '" width="' + (x2 - x1) + '" height="' + (rowH - 6) + '" fill="' + R.ROLE_COLOUR[role] + '" fill-opacity="0.85"><title>n' + m.id + ' ' +
          role + ' in term ' + c.term + (c.leader ? ', leader n' + c.leader : '') + ' from ' + new Date(c.at_ms).toLocaleTimeString() + '</title></rect>');
        if (x2 - x1 > 16) out.push('<text x="' + (x1 + 3) + '" y="' + (y + 12) + '" font-size="10" fill="#fff">t' + c.term + '</text>');
      }
      if (!m.up && changes.length) {
        out.push('<rect x="' + (x(now) - 3) + '" y="' + y + '" width="3" height="' + (rowH - 6) + '" fill="' + R.DOWN_COLOUR + '"/>');
      }
    });
    const seconds = Math.round((now - t0) / 1000);
    out.push('<text x="' + left + '" y="' + (height - 4) + '" font-size="10" fill="#8a93a3">' + seconds + ' s ago</text>' +
      '<text x="' + (width - right) + '" y="' + (height - 4) + '" text-anchor="end" font-size="10" fill="#8a93a3">now</text>');
    timeline.innerHTML = out.join('');
  }

  function draw() {
    const list = sortedMembers();
    const roles = membership();
    const lead = leader();
    drawCluster(list, roles);
    drawCards(list, roles, lead);
    drawHeader(list, roles, lead);
    drawTimeline(list);
  }

  // ---- actions ----

  const results = document.getElementById('results');
  // A line for an action, filled in with the answer when it comes.
  function startLine(what) {
    const line = document.createElement('div');
    line.className = 'r pending';
    const time = document.createElement('span');
    time.className = 't';
    time.textContent = new Date().toLocaleTimeString() + ' ';
    line.appendChild(time);
    line.appendChild(document.createTextNode(what + ' \u2026'));
    results.prepend(line);
    while (results.childNodes.length > 60) results.lastChild.remove();
    return function (answer) {
      const ok = answer.status >= 200 && answer.status < 300;
      line.className = 'r ' + (ok ? 'ok' : 'err');
      const body = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body);
      line.lastChild.textContent = what + ' \u2192 ' + (answer.status || 'no answer') + ' ' + body;
    };
  }

  // Writes and membership changes go to the leader (a follower would redirect, and browsers
  // drop the token on a redirect to another origin); without one known, to this node.
  function leaderUrl() { const l = leader(); return l ? l.url : SELF; }

  async function act(what, method, url, body, json) {
    const done = startLine(what);
    const answer = await call(method, url, body, json);
    done(answer);
    refreshLauncher();
    return answer;
  }

  cards.addEventListener('click', function (e) {
    const button = e.target.closest('button');
    if (!button) return;
    const id = Number(button.closest('.card').dataset.node);
    const m = members.get(id);
    switch (button.dataset.action) {
      case 'isolate': act('isolate n' + id, 'POST', m.url + '/api/v1/admin/isolate'); break;
      case 'heal': act('heal n' + id, 'POST', m.url + '/api/v1/admin/heal'); break;
      case 'transfer': act('transfer leadership to n' + id, 'POST', leaderUrl() + '/api/v1/admin/transfer-leader', JSON.stringify({ to: id }), true); break;
      case 'snapshot': act('snapshot n' + id, 'POST', m.url + '/api/v1/admin/snapshot'); break;
      case 'remove': act('remove n' + id, 'DELETE', leaderUrl() + '/api/v1/members/' + id); break;
      case 'stop': act('stop n' + id, 'POST', LAUNCHER + '/launcher/v1/nodes/' + id + '/stop'); break;
      case 'restart': act('restart n' + id, 'POST', LAUNCHER + '/launcher/v1/nodes/' + id + '/restart'); break;
    }
  });

  function onSubmit(id, fn) {
    document.getElementById(id).addEventListener('submit', function (e) { e.preventDefault(); fn(); });
  }
  const value = function (id) { return document.getElementById(id).value; };
  onSubmit('f-append', function () {
    act('append ' + JSON.stringify(value('command')), 'POST', leaderUrl() + '/api/v1/append', JSON.stringify({ command: value('command') }), true);
  });
  onSubmit('f-put', function () {
    act('put ' + value('put-key'), 'PUT', leaderUrl() + '/api/v1/kv/' + encodeURIComponent(value('put-key')), value('put-value'), false);
  });
  onSubmit('f-get', function () {
    const stale = document.getElementById('get-stale').checked;
    act('get ' + value('get-key') + (stale ? ' (stale, from this node)' : ''), 'GET',
      (stale ? SELF : leaderUrl()) + '/api/v1/kv/' + encodeURIComponent(value('get-key')) + (stale ? '?stale=true' : ''));
  });
  onSubmit('f-add', function () {
    act('add n' + value('add-id'), 'POST', leaderUrl() + '/api/v1/members',
      JSON.stringify({ id: Number(value('add-id')), raft_addr: value('add-raft'), http_addr: value('add-http') }), true);
  });

  // ---- start ----

  member(CONFIG.id, SELF);
  refreshMembers();
  refreshLauncher();
  setInterval(refreshMembers, MEMBERS_POLL_MS);
  setInterval(function () {
    for (const m of members.values()) if (m.up) fetchCommands(m);
  }, MEMBERS_POLL_MS);
  setInterval(refreshLauncher, MEMBERS_POLL_MS);
  setInterval(schedule, 1000);
  window.addEventListener('resize', schedule);
  schedule();
})();
