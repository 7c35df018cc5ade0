// Browser test of /ui, run by TestBrowserDashboard (browser_test.go) against a
// gateway on 127.0.0.1 with known spans. It logs in with the admin key and a
// team key, checks the spend and budgets shown equal the API's (key names
// included), opens the workflow trace and sees its spans, lists the audit
// log (all of it for the admin, one team's for a team key), and fails on any
// page JavaScript error.
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

  // checkBudgets compares every budget row of the team and key tables with
  // the API: limit, spend this period and % used; keys show their names
  // with the id as tooltip. Every team and key the API lists has a row.
  const checkBudgets = async (b) => {
    for (const [scope, table] of [['team', '#by-team'], ['key', '#by-key']]) {
      const want = b.budgets.filter((x) => x.scope === scope);
      check(want.length > 0, `API lists no ${scope} budgets`);
      for (const x of want) {
        const row = page.locator(`${table} tbody tr[data-budget="${x.id}"]`);
        await row.first().waitFor(); // the tables fill in after the totals
        check(await row.count() === 1, `${table}: ${await row.count()} rows for ${scope} ${x.id}`);
        const name = row.locator('td').first();
        check(await name.textContent() === x.name, `${table}: ${x.id} shown as ${await name.textContent()}, want ${x.name}`);
        if (scope === 'key') check(await name.getAttribute('title') === x.id, `${table}: ${x.name} lacks its id as tooltip`);
        const spent = await row.locator('td.budget-spent').textContent();
        check(spent === '$' + x.spent_usd, `${table}: ${x.name} spent ${spent}, API $${x.spent_usd}`);
        const limit = await row.locator('td.budget-limit').textContent();
        check(x.limit_usd ? limit.startsWith('$' + x.limit_usd) : limit === 'no cap',
          `${table}: ${x.name} limit ${limit}, API ${x.limit_usd || 'none'}`);
        if (x.used_ratio !== undefined) {
          const used = await row.locator('.used-pct').textContent();
          const want = (x.used_ratio * 100).toFixed(x.used_ratio > 0 && x.used_ratio < 0.001 ? 3 : 1) + '%';
          check(used === want, `${table}: ${x.name} used ${used}, API ${want}`);
        }
      }
    }
  };

  // checkAudit opens the Audit tab and compares its rows with the API, then
  // filters by action and returns to the spend tab.
  const checkAudit = async () => {
    await page.click('#tab-audit');
    await page.locator('#view-audit').waitFor({ state: 'visible' });
    const r = await api(`/admin/audit?range=${await page.inputValue('#range')}&limit=200`);
    check(r.status === 200, `audit API status ${r.status}`);
    await page.locator('#audit tbody tr').first().waitFor();
    const rows = await page.locator('#audit tbody tr[data-action]').evaluateAll((rs) => rs.map((x) => x.dataset.action));
    check(JSON.stringify(rows) === JSON.stringify(r.body.events.map((e) => e.action)),
      `audit tab shows ${JSON.stringify(rows)}, API ${JSON.stringify(r.body.events.map((e) => e.action))}`);
    await page.selectOption('#a-action', 'request.denied');
    await page.click('#audit-filters button[type=submit]');
    const denied = r.body.events.filter((e) => e.action === 'request.denied').length;
    await page.waitForFunction((n) => document.querySelectorAll('#audit tbody tr[data-action="request.denied"]').length === n &&
      document.querySelectorAll('#audit tbody tr[data-action]').length === n, denied);
    await page.selectOption('#a-action', '');
    await page.click('#audit-filters button[type=submit]');
    await page.waitForFunction((n) => document.querySelectorAll('#audit tbody tr[data-action]').length === n, rows.length);
    return r.body.events;
  };

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
  // Latency percentiles: shown once the store reports them.
  if (spend.body.total.latency_p50_ns !== undefined) {
    await page.locator('#latency .lat-track').first().waitFor();
    const byLayer = await api('/admin/spend?range=24h&group_by=layer&top=12');
    const want = byLayer.body.groups.filter((g) => g.latency_p99_ns !== undefined).length;
    const bars = await page.locator('#latency .lat-track').count();
    check(bars === want, `latency panel shows ${bars} groups, API has ${want}`);
    const p50 = await page.locator('#by-team thead th').allTextContents();
    check(p50.includes('p50') && p50.includes('p99'), `team table heads ${JSON.stringify(p50)} lack p50/p99`);
  }
  const budgets = await api('/admin/budgets');
  check(budgets.status === 200, `budgets API status ${budgets.status}`);
  await checkBudgets(budgets.body);
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

  const adminAudit = await checkAudit();
  check(adminAudit.length > 1 && new Set(adminAudit.map((e) => e.team)).size > 1, `admin audit ${JSON.stringify(adminAudit)}`);
  await page.screenshot({ path: join(shots, 'audit.png'), fullPage: true });
  await page.click('#tab-spend');
  await page.locator('#view-spend').waitFor({ state: 'visible' });

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
  const teamBudgets = await api('/admin/budgets');
  check(teamBudgets.body.budgets.every((x) => x.team === env('TEAM')), `team key sees budgets ${JSON.stringify(teamBudgets.body)}`);
  await checkBudgets(teamBudgets.body);
  const keyRows = await page.locator('#by-key tbody tr[data-budget]').evaluateAll((rows) => rows.map((r) => r.dataset.budget));
  check(keyRows.length === teamBudgets.body.budgets.filter((x) => x.scope === 'key').length,
    `team key's key table has rows ${JSON.stringify(keyRows)}`);
  await page.screenshot({ path: join(shots, 'team.png'), fullPage: true });
  const teamAudit = await checkAudit();
  check(teamAudit.length > 0 && teamAudit.every((e) => e.team === env('TEAM')), `team audit ${JSON.stringify(teamAudit)}`);

  check(pageErrors.length === 0, 'page errors:\n' + pageErrors.join('\n'));
  console.log(JSON.stringify({ ok: true, admin_total: shown, team_total: teamShown, trace_spans: rows,
    audit_admin: adminAudit.length, audit_team: teamAudit.length }));
} finally {
  await browser.close();
}
