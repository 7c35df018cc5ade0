// Browser test of /ui, run by TestBrowserDashboard (browser_test.go) against a
// gateway on 127.0.0.1 with known spans. It logs in with the admin key and a
// team key, checks the spend shown equals the API's, opens the workflow trace
// and sees its spans, and fails on any page JavaScript error.
//
// Env: BASE_URL, ADMIN_KEY, TEAM_KEY, TEAM, TRACE_ID, SCREENSHOT_DIR;
// playwright-core is found through NODE_PATH.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('BASE_URL');
const shots = env('SCREENSHOT_DIR');
mkdirSync(shots, { recursive: true });

const pageErrors = [];
const check = (cond, msg) => {
  if (!cond) throw new Error(msg);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
  timeout: 30_000,
});
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  // Nothing outside the gateway may be fetched (no CDN).
  page.on('request', (r) => { if (!r.url().startsWith(base)) pageErrors.push(`foreign request: ${r.url()}`); });

  const api = (path) => page.evaluate(async (p) => {
    const r = await fetch(p, { credentials: 'same-origin' });
    return { status: r.status, body: await r.json() };
  }, path);

  const login = async (key) => {
    await page.goto(base + '/ui');
    await page.locator('#login-form').waitFor({ state: 'visible' });
    await page.fill('#key', key);
    await page.click('#login-form button[type=submit]');
    await page.locator('#main').waitFor({ state: 'visible' });
    await page.waitForFunction(() => document.getElementById('total-cost').textContent.startsWith('$'));
    await page.locator('#traces tbody tr').first().waitFor();
  };

  // Admin: totals, a table and the trace waterfall.
  await page.goto(base + '/ui');
  await page.locator('#login-form').waitFor({ state: 'visible' });
  await page.screenshot({ path: join(shots, 'login.png') });
  await login(env('ADMIN_KEY'));
  const spend = await api('/admin/spend?range=24h');
  check(spend.status === 200, `spend API status ${spend.status}`);
  const shown = await page.textContent('#total-cost');
  check(shown === '$' + spend.body.total.cost_usd, `admin total shows ${shown}, API says $${spend.body.total.cost_usd}`);
  const byTeam = await api('/admin/spend?range=24h&group_by=team&top=15');
  const firstRow = await page.locator('#by-team tbody tr').first().locator('td').allTextContents();
  check(firstRow[0] === byTeam.body.groups[0].group && firstRow[1] === '$' + byTeam.body.groups[0].cost_usd,
    `team table first row ${JSON.stringify(firstRow)}, API ${JSON.stringify(byTeam.body.groups[0])}`);
  check(await page.locator('#chart svg rect').count() > 0, 'chart has no bars');
  await page.screenshot({ path: join(shots, 'dashboard.png'), fullPage: true });

  const traceID = env('TRACE_ID');
  const tr = await api('/admin/traces/' + traceID);
  check(tr.status === 200, `trace API status ${tr.status}`);
  await page.click(`#traces tbody tr[data-trace="${traceID}"]`);
  await page.locator('#trace-view').waitFor({ state: 'visible' });
  const rows = await page.locator('#waterfall .span-row').count();
  check(rows === tr.body.spans, `waterfall shows ${rows} spans, API has ${tr.body.spans}`);
  const total = await page.textContent('#trace-total');
  check(total.includes('total $' + tr.body.cost_usd), `trace total "${total}" lacks $${tr.body.cost_usd}`);
  const spanCosts = await page.locator('#waterfall .span-cost').allTextContents();
  check(spanCosts[1] === '$' + tr.body.roots[0].children[0].cost_usd, `second span cost ${spanCosts[1]}`);
  await page.locator('#trace-view').screenshot({ path: join(shots, 'trace.png') });

  // A team key: its own total only, no other team in the tables.
  await page.click('#logout');
  await page.locator('#login-form').waitFor({ state: 'visible' });
  await login(env('TEAM_KEY'));
  const teamSpend = await api('/admin/spend?range=24h');
  check(teamSpend.body.team === env('TEAM'), `team key spend scoped to ${teamSpend.body.team}`);
  const teamShown = await page.textContent('#total-cost');
  check(teamShown === '$' + teamSpend.body.total.cost_usd, `team total shows ${teamShown}, API says $${teamSpend.body.total.cost_usd}`);
  const teams = await page.locator('#by-team tbody tr td:first-child').allTextContents();
  check(teams.length === 1 && teams[0] === env('TEAM'), `team key sees teams ${JSON.stringify(teams)}`);
  await page.screenshot({ path: join(shots, 'team.png'), fullPage: true });

  check(pageErrors.length === 0, 'page errors:\n' + pageErrors.join('\n'));
  console.log(JSON.stringify({ ok: true, admin_total: shown, team_total: teamShown, trace_spans: rows }));
} finally {
  await browser.close();
}
