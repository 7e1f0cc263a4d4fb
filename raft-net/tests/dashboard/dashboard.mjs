// Drives raft-net's dashboard (GET /ui) in headless Chromium against a running
// `raft-net cluster`, the way a person would: only by clicking and typing in the page. Checks
// what the page draws (the node boxes' data-* attributes, the log cells, the cards, the
// timeline) after each step of the seed story:
//   three nodes and one leader; "isolate" on the leader gives a new leader in a higher term
//   within a few seconds; a command appended while it is cut off reaches the other two only;
//   "heal" brings the old leader back as a follower; the command, and one appended after,
//   appear in every node's log cells; put/get; snapshot; leadership transfer; remove and add
//   a member; stop (SIGKILL) and restart through the launcher.
// Every request the page makes must go to the cluster's own origins, and the page must log no
// error (a CSP violation, a script error).
//
// usage: node dashboard.mjs URL TOKEN_FILE [--screenshot FILE.png]
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const url = args[0];
const token = readFileSync(args[1], 'utf8').trim();
const shotAt = args.indexOf('--screenshot');
const screenshot = shotAt >= 0 ? args[shotAt + 1] : null;
if (!url || !token) {
  console.error('usage: node dashboard.mjs URL TOKEN_FILE [--screenshot FILE.png]');
  process.exit(2);
}

// Seconds a step may take before the test fails: elections take ~0.3-0.6 s here, a learner's
// catch-up and promotion a second or two; the margins are for a loaded 2-core machine.
const STEP_MS = 20000;

const profile = mkdtempSync(join(tmpdir(), 'raft-net-dashboard-'));
// A fresh profile per run (Playwright passes it as --user-data-dir), nothing fetched or synced.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1400, height: 900 },
});
const failures = [];
const page = browser.pages()[0] || await browser.newPage();
page.on('pageerror', (error) => failures.push('page error: ' + error.message));
// Once a node is killed, the browser reports its cut stream and refused reconnections as
// failed loads: expected then, and only those.
let nodeKilled = false;
page.on('console', (message) => {
  if (message.type() !== 'error') return;
  if (nodeKilled && /^Failed to load resource: net::ERR_/.test(message.text())) return;
  failures.push('console error: ' + message.text());
});
const origins = new Set();
page.on('request', (request) => origins.add(new URL(request.url()).origin));

function log(line) { console.log('dashboard.mjs: ' + line); }

async function fail(why) {
  console.error('dashboard.mjs: FAILED: ' + why);
  if (failures.length) console.error(failures.join('\n'));
  try {
    await page.screenshot({ path: 'dashboard-failure.png' });
    console.error('dashboard.mjs: the page as it was: dashboard-failure.png');
    console.error((await page.locator('#results').innerText()).split('\n').slice(0, 15).join('\n'));
  } catch (error) { /* the browser is gone */ }
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
  process.exit(1);
}

// What the page draws of each node, from its node boxes.
async function nodes() {
  return page.$$eval('#cluster g.node', (gs) => gs.map((g) => ({
    id: Number(g.dataset.node), life: g.dataset.life, role: g.dataset.role || '',
    term: Number(g.dataset.term || 0), last: Number(g.dataset.last), commit: Number(g.dataset.commit),
    isolated: g.dataset.isolated === 'true',
    texts: Array.from(g.querySelectorAll('rect.cell')).map((c) => c.dataset.text),
  })));
}

// Polls `check` over the drawn nodes until it returns a value (not undefined/false).
async function until(what, check, ms = STEP_MS) {
  const start = Date.now();
  let last = null;
  while (Date.now() - start < ms) {
    last = await nodes();
    const result = await check(last);
    if (result) return { value: result, ms: Date.now() - start };
    await page.waitForTimeout(100);
  }
  return fail(what + ' within ' + ms + ' ms; the page shows ' + JSON.stringify(last.map((n) => ({
    id: n.id, life: n.life, role: n.role, term: n.term, last: n.last, commit: n.commit, isolated: n.isolated }))));
}

async function click(id, action) {
  const button = page.locator('.card[data-node="' + id + '"] button[data-action="' + action + '"]');
  await button.waitFor({ state: 'visible' });
  const start = Date.now();
  while (await button.isDisabled()) {
    if (Date.now() - start > STEP_MS) return fail('the ' + action + ' button of n' + id + ' stays disabled');
    await page.waitForTimeout(100);
  }
  await button.click();
}

// The answer the page reported for an action, once it came.
async function answerTo(prefix) {
  const start = Date.now();
  while (Date.now() - start < STEP_MS) {
    const lines = await page.locator('#results .r').allInnerTexts();
    const line = lines.find((l) => l.includes(prefix + ' \u2192'));
    if (line) return line;
    await page.waitForTimeout(100);
  }
  return fail('no answer to "' + prefix + '"');
}

const leaders = (ns) => ns.filter((n) => n.life === 'running' && n.role === 'LEADER');
const running = (ns) => ns.filter((n) => n.life === 'running');

await page.goto(url);
await page.fill('#token', token);

// Three nodes and one leader.
const first = await until('three running nodes and one leader', (ns) =>
  ns.length === 3 && running(ns).length === 3 && leaders(ns).length === 1 && leaders(ns)[0]);
const old = first.value;
log('3 nodes, leader n' + old.id + ' in term ' + old.term + ' (' + first.ms + ' ms after load)');

// Two commands before anything goes wrong, as in the seed story.
for (const command of ['msg1', 'msg2']) {
  await page.fill('#command', command);
  await page.click('#b-append');
  if (!(await answerTo('append ' + JSON.stringify(command))).includes('\u2192 200')) await fail('append ' + command + ' failed');
}
await until('msg1 and msg2 on every node', (ns) => ns.every((n) => n.texts.includes('msg1') && n.texts.includes('msg2')));

// Isolate the leader: a new leader in a higher term.
await click(old.id, 'isolate');
const elected = await until('a new leader in a higher term after isolating n' + old.id, (ns) => {
  const fresh = leaders(ns).filter((n) => n.id !== old.id && n.term > old.term);
  return fresh.length === 1 && ns.find((n) => n.id === old.id).isolated && fresh[0];
});
const next = elected.value;
const header = await page.locator('#leader').getAttribute('data-leader');
if (Number(header) !== next.id) await fail('the header names n' + header + ', not the new leader n' + next.id);
log('isolated n' + old.id + ': n' + next.id + ' leads term ' + next.term + ' after ' + elected.ms + ' ms');

// A command appended now commits on the two connected nodes, not on the isolated one.
const during = 'during-partition-' + Date.now().toString(36);
await page.fill('#command', during);
await page.click('#b-append');
const appended = await answerTo('append ' + JSON.stringify(during));
if (!appended.includes('\u2192 200')) await fail('the append answered ' + appended);
await until('the command on both connected nodes', (ns) =>
  ns.filter((n) => n.id !== old.id).every((n) => n.texts.includes(during)));
const cut = (await nodes()).find((n) => n.id === old.id);
if (cut.texts.includes(during)) await fail('the isolated n' + old.id + ' shows the command appended without it');
if (screenshot) {
  // Let the event streams and the cards settle on the same picture.
  await page.waitForTimeout(1500);
  await page.screenshot({ path: screenshot });
  log('screenshot of the partitioned state: ' + screenshot);
}

// Heal: the old leader comes back as a follower of the new term and catches up.
await click(old.id, 'heal');
const healed = await until('n' + old.id + ' back as a follower after the heal', (ns) => {
  const n = ns.find((x) => x.id === old.id);
  return n.life === 'running' && n.role === 'FOLLOWER' && n.term >= next.term && !n.isolated && n;
});
log('healed n' + old.id + ': follower in term ' + healed.value.term + ' after ' + healed.ms + ' ms');
await until('the command appended during the partition on every node', (ns) =>
  ns.every((n) => n.texts.includes(during)));

const after = 'after-heal-' + Date.now().toString(36);
await page.fill('#command', after);
await page.click('#b-append');
if (!(await answerTo('append ' + JSON.stringify(after))).includes('\u2192 200')) await fail('the second append failed');
const everywhere = await until('the appended command in every node\'s log cells', (ns) =>
  ns.every((n) => n.texts.includes(after) && n.commit >= n.last));
log('"' + after + '" is in all 3 logs, committed, ' + everywhere.ms + ' ms after its answer');

// put / get.
await page.fill('#put-key', 'greeting');
await page.fill('#put-value', 'hello-from-the-page');
await page.click('#b-put');
if (!(await answerTo('put greeting')).includes('\u2192 200')) await fail('put failed');
await page.fill('#get-key', 'greeting');
await page.click('#b-get');
const got = await answerTo('get greeting');
if (!got.includes('\u2192 200 hello-from-the-page')) await fail('get answered ' + got);

// Snapshot on a follower: its box shows the snapshot cell.
const follower = running(await nodes()).find((n) => n.role === 'FOLLOWER');
await click(follower.id, 'snapshot');
const snap = await answerTo('snapshot n' + follower.id);
if (!snap.includes('\u2192 200')) await fail('snapshot answered ' + snap);
await until('n' + follower.id + "'s snapshot in its card", async () =>
  (await page.locator('.card[data-node="' + follower.id + '"] .l-indexes').innerText()).match(/snapshot [1-9]/));

// Transfer leadership back to the old leader.
await click(old.id, 'transfer');
await until('n' + old.id + ' leading again after the transfer', (ns) => {
  const l = leaders(ns);
  return l.length === 1 && l[0].id === old.id && l[0].term > next.term;
});
log('transferred leadership to n' + old.id);

// Remove a follower, then add it back at its addresses.
const members = await page.evaluate(async () => (await (await fetch('/api/v1/members')).json()).members);
const leaving = members.find((m) => m.id !== old.id);
await click(leaving.id, 'remove');
if (!(await answerTo('remove n' + leaving.id)).includes('\u2192 200')) await fail('remove failed');
await until('2 voters after the removal', async () => (await page.locator('#leader').innerText()).includes('2 voters'));
await page.fill('#add-id', String(leaving.id));
await page.fill('#add-raft', leaving.raft_addr);
await page.fill('#add-http', leaving.http_addr);
await page.click('#b-add');
if (!(await answerTo('add n' + leaving.id)).includes('\u2192 200')) await fail('add failed');
await until('3 voters after adding n' + leaving.id + ' back', async () => (await page.locator('#leader').innerText()).includes('3 voters'));
log('removed n' + leaving.id + ' and added it back');

// Stop (SIGKILL) a follower through the launcher, then restart it: it catches up.
const victim = running(await nodes()).find((n) => n.role === 'FOLLOWER');
nodeKilled = true;
await click(victim.id, 'stop');
await until('n' + victim.id + ' drawn as stopped', (ns) => ns.find((n) => n.id === victim.id).life === 'stopped');
const whileDown = 'while-n' + victim.id + '-down';
await page.fill('#command', whileDown);
await page.click('#b-append');
if (!(await answerTo('append ' + JSON.stringify(whileDown))).includes('\u2192 200')) await fail('append with a node down failed');
await click(victim.id, 'restart');
await until('n' + victim.id + ' running again with the command appended while it was down', (ns) => {
  const n = ns.find((x) => x.id === victim.id);
  return n.life === 'running' && n.texts.includes(whileDown);
});
log('stopped n' + victim.id + ' (SIGKILL) and restarted it; it caught up');

// The timeline recorded the story: the new leader's term, and the old leader's return.
const spans = await page.$$eval('#timeline rect.span', (rs) => rs.map((r) => ({
  node: Number(r.dataset.node), role: r.dataset.role, term: Number(r.dataset.term) })));
if (!spans.some((s) => s.node === next.id && s.role === 'LEADER' && s.term === next.term)) {
  await fail('the timeline has no LEADER span of n' + next.id + ' in term ' + next.term + ': ' + JSON.stringify(spans));
}
if (!spans.some((s) => s.node === old.id && s.role === 'FOLLOWER' && s.term >= next.term)) {
  await fail('the timeline does not show n' + old.id + ' following after the heal');
}

const foreign = Array.from(origins).filter((o) => !o.startsWith('http://127.0.0.1:'));
if (foreign.length) await fail('the page reached other origins: ' + foreign.join(' '));
if (failures.length) await fail('the page logged errors');
await browser.close();
rmSync(profile, { recursive: true, force: true });
log('ok: the page made requests to ' + origins.size + ' origins of the cluster only (' +
  Array.from(origins).sort().join(' ') + '), no page or console errors');
