// Gatekeeper's browser client in Debian's Chromium, against the real API and the AWS emulator
// (scripts/browser-tests.sh starts them and sets GK_URL). A requester and an approver work in two
// separate browser contexts, as two people in two browsers would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.GK_URL;
const EMULATOR = process.env.GK_EMULATOR;
const ARTIFACTS = process.env.GK_ARTIFACTS ?? 'artifacts';
if (!BASE) throw new Error('GK_URL is not set: run scripts/browser-tests.sh');

let browser;
const problems = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
});

after(async () => {
  await browser?.close();
});

/** A signed-in person in a browser context of their own. Console errors and page errors are kept. */
async function person(sub) {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1360, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`${sub}: page error: ${e.message}`));
  page.on('console', (m) => {
    // A refused request is logged by Chromium itself ("Failed to load resource"); the page shows it.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      problems.push(`${sub}: console: ${m.text()}`);
    }
  });
  await page.goto(BASE);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.locator(`button[data-sub="${sub}"]`).click();
  await page.locator('header .who').getByText(`(${sub} ·`).waitFor();
  return { context, page };
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Searches prod and selects `count` grantable instances; returns their ids. */
async function selectProd(page, count) {
  await page.getByRole('link', { name: 'Search' }).click();
  await page.locator('select[name="environment"]').selectOption('prod');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('table.instances tbody tr').first().waitFor();
  // Every row shown is in prod.
  const envs = await page.locator('table.instances tbody tr td:nth-child(4)').allTextContents();
  assert.ok(envs.length > 0 && envs.every((e) => e === 'prod'), `environments: ${envs}`);
  const boxes = page.locator('input[data-instance]:not([disabled])');
  const ids = [];
  for (let i = 0; i < count; i++) {
    const box = boxes.nth(i);
    ids.push(await box.getAttribute('data-instance'));
    await box.check();
  }
  return ids;
}

test('sign-in page offers the demo identities', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(BASE);
  await page.getByLabel('Bearer token').waitFor();
  await page.locator('button[data-sub="alice"]').waitFor();
  await shot(page, '01-sign-in');
  // A token that is not one: the API's refusal is shown, and nobody is signed in.
  await page.getByLabel('Bearer token').fill('not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').textContent(), /token/i);
  assert.equal(await page.locator('header nav').count(), 0);
  await context.close();
});

test('a prod request: two instances, approved by a second person, key downloaded', async () => {
  const alice = await person('alice');
  const bob = await person('bob');
  const { page } = alice;

  // Stopped instances cannot be granted: they are disabled with the reason.
  await page.locator('select[name="environment"]').selectOption('prod');
  await page.locator('select[name="state"]').selectOption('');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('table.instances tr.disabled').first().waitFor();
  assert.match(await page.locator('table.instances tr.disabled .why').first().textContent(), /stopped|not running/i);
  assert.ok(await page.locator('tr.disabled input[type="checkbox"]').first().isDisabled());
  await shot(page, '02-search');

  const ids = await selectProd(page, 2);
  const form = page.locator('section.request-form');
  await form.getByRole('heading').getByText('2 instance(s)').waitFor();
  await form.getByLabel('Hours').fill('1');
  await form.getByLabel('Minutes').fill('30');
  await form.getByLabel('Ticket').fill('OPS-42');
  await form.getByLabel('Reason').fill('replica lag on the ledger');
  // Before submitting, the policy says what will happen.
  const policy = await form.locator('.policy').textContent();
  assert.match(policy, /every request needs an approver; at most 4 h\./, policy);
  assert.match(policy, /This request: needs an approver for 1 h 30 min\./, policy);
  await shot(page, '03-request-form');
  await form.getByRole('button', { name: 'Submit request' }).click();

  await page.waitForURL(/\/requests\/[0-9a-f-]{36}$/);
  const id = page.url().split('/').pop();
  await page.locator('h1 [data-status="pending_approval"]').waitFor();
  for (const instance of ids) await page.locator('table.grid').getByText(instance).first().waitFor();
  // The requester cannot approve their own request: no such button for them.
  assert.equal(await page.getByRole('button', { name: 'Approve' }).count(), 0);
  await shot(page, '04-request-pending');

  // The approver, in a browser of their own, finds it in the queue and approves it.
  await bob.page.getByRole('link', { name: 'Approvals' }).click();
  const item = bob.page.locator(`li[data-request="${id}"]`);
  await item.waitFor();
  assert.match(await item.textContent(), /replica lag on the ledger/);
  assert.match(await item.textContent(), /OPS-42/);
  for (const instance of ids) assert.match(await item.textContent(), new RegExp(instance));
  await shot(bob.page, '05-approvals');
  await item.getByLabel(/Comment/).fill('ok for the incident');
  await item.getByRole('button', { name: 'Approve' }).click();
  await item.waitFor({ state: 'detached' });

  // The requester's page follows the request without a reload until access is active.
  await page.locator('h1 [data-status="active"]').waitFor({ timeout: 60_000 });
  await page.locator('dd.countdown').getByText(/in \d/).waitFor();
  const timeline = await page.locator('ol.timeline li').evaluateAll((items) => items.map((i) => i.dataset.action));
  assert.ok(timeline.includes('requested') && timeline.includes('approved') && timeline.includes('activated'), `timeline: ${timeline}`);

  await page.getByRole('button', { name: 'Collect credentials' }).click();
  const link = page.locator('#download-key');
  await link.waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  const dir = mkdtempSync(join(tmpdir(), 'gk-key-'));
  try {
    const file = join(dir, 'key');
    await download.saveAs(file);
    const pem = readFileSync(file, 'utf8');
    assert.match(pem, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
    execFileSync('chmod', ['600', file]);
    // It parses as an OpenSSH private key: ssh-keygen derives its ed25519 public key.
    const pub = execFileSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' });
    assert.match(pub, /^ssh-ed25519 AAAA/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const command = await page.getByLabel('ssh command').first().inputValue();
  assert.match(command, /^ssh -i \S+ gk-[a-z0-9-]+@/);
  // The copy button puts exactly that command on the clipboard.
  const copy = page.getByRole('button', { name: /^copy the ssh command for / }).first();
  await copy.click();
  await copy.getByText('Copied').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), command);
  // Collected: the audit trail says so, and there is nothing left to collect.
  await page.locator('ol.timeline li[data-action="credentials_collected"]').waitFor();
  assert.equal(await page.getByRole('button', { name: 'Collect credentials' }).count(), 0);
  await shot(page, '06-request-active-credentials');

  // My requests shows it active with a countdown.
  await page.getByRole('link', { name: 'My requests' }).click();
  const row = page.locator(`tr[data-request="${id}"]`);
  await row.locator('[data-status="active"]').first().waitFor();
  assert.match(await row.locator('td.countdown').textContent(), /\d+:\d\d/);
  // Status per person × instance, in the list itself.
  for (const instance of ids) {
    await row.locator(`li[data-grant="alice@${instance}"] [data-status="active"]`).waitFor();
  }
  await shot(page, '07-my-requests');

  await alice.context.close();
  await bob.context.close();
});

test('a rejected request shows the approver\'s comment', async () => {
  const alice = await person('alice');
  const bob = await person('bob');
  const { page } = alice;
  await selectProd(page, 1);
  const form = page.locator('section.request-form');
  await form.getByLabel('Hours').fill('0');
  await form.getByLabel('Minutes').fill('45');
  await form.getByLabel('Reason').fill('tune the search index');
  await form.getByRole('button', { name: 'Submit request' }).click();
  await page.waitForURL(/\/requests\/[0-9a-f-]{36}$/);
  const id = page.url().split('/').pop();

  await bob.page.getByRole('link', { name: 'Approvals' }).click();
  const item = bob.page.locator(`li[data-request="${id}"]`);
  await item.waitFor();
  // Rejecting needs a comment: without one the API refuses and the page says why.
  await item.getByRole('button', { name: 'Reject' }).click();
  await bob.page.getByRole('alert').waitFor();
  assert.match(await bob.page.getByRole('alert').textContent(), /comment/i);
  await item.getByLabel(/Comment/).fill('not during the freeze');
  await item.getByRole('button', { name: 'Reject' }).click();
  await item.waitFor({ state: 'detached' });

  await page.locator('h1 [data-status="rejected"]').waitFor({ timeout: 30_000 });
  assert.equal(await page.locator('q.comment').first().textContent(), 'not during the freeze');
  await shot(page, '08-request-rejected');

  // History lists it with the filters applied.
  await page.getByRole('link', { name: 'History' }).click();
  await page.locator('select[name="status"]').selectOption('rejected');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.locator(`tr[data-request="${id}"]`).waitFor();
  const statuses = await page.locator('tbody tr td:first-child [data-status]').evaluateAll((b) => b.map((x) => x.dataset.status));
  assert.match(await page.locator(`tr[data-request="${id}"] td.access`).textContent(), /none granted/);
  assert.ok(statuses.length > 0 && statuses.every((s) => s === 'rejected'), `statuses: ${statuses}`);
  await shot(page, '09-history');
  await alice.context.close();
  await bob.context.close();
});

test('bad input shows the API\'s error', async () => {
  const alice = await person('alice');
  const { page } = alice;
  await selectProd(page, 1);
  const form = page.locator('section.request-form');
  // Longer than prod allows: the form warns, and the API refuses with its own message.
  await form.getByLabel('Hours').fill('9');
  await form.getByLabel('Reason').fill('too long on purpose');
  assert.match(await form.locator('.policy').textContent(), /at most/i);
  await form.getByRole('button', { name: 'Submit request' }).click();
  const alert = form.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), /between 1 and 240 .*\(invalid_duration\)/);
  // A colleague id the API does not accept.
  await form.getByLabel('Hours').fill('1');
  await form.getByLabel(/Colleagues/).fill('bob, not a valid id!');
  await form.getByRole('button', { name: 'Submit request' }).click();
  await form.getByRole('alert').getByText(/is not a user id.*\(invalid_subject\)/).waitFor();
  await shot(page, '10-bad-input');
  // A request page that does not exist.
  await page.goto(`${BASE}/requests/00000000-0000-4000-8000-000000000000`);
  await page.getByRole('alert').waitFor();
  assert.match(await page.getByRole('alert').textContent(), /^no request .*\(request_not_found\)$/);
  await alice.context.close();
});

test('selections survive paging', async () => {
  const alice = await person('alice');
  const { page } = alice;
  // Every running instance: more than one page of 25.
  await page.locator('table.instances tbody tr').first().waitFor();
  const first = await page.locator('input[data-instance]:not([disabled])').first().getAttribute('data-instance');
  await page.locator(`input[data-instance="${first}"]`).check();
  await page.getByRole('button', { name: 'Next →' }).click();
  await page.locator(`input[data-instance="${first}"]`).waitFor({ state: 'detached' });
  const second = await page.locator('input[data-instance]:not([disabled])').first().getAttribute('data-instance');
  await page.locator(`input[data-instance="${second}"]`).check();
  const form = page.locator('section.request-form');
  await form.getByRole('heading').getByText('2 instance(s)').waitFor();
  for (const id of [first, second]) await form.locator('.chips').getByText(id).waitFor();
  // Back on the first page, the first choice is still ticked.
  await page.getByRole('button', { name: '← Previous' }).click();
  await page.locator(`input[data-instance="${first}"]`).waitFor();
  assert.ok(await page.locator(`input[data-instance="${first}"]`).isChecked());
  // Removing a chip unticks it.
  await form.getByRole('button', { name: `remove ${first}` }).click();
  assert.ok(!(await page.locator(`input[data-instance="${first}"]`).isChecked()));
  await form.getByRole('heading').getByText('1 instance(s)').waitFor();
  await alice.context.close();
});

test('Windows: the password made on the instance is revealed on click', async () => {
  assert.ok(EMULATOR, 'GK_EMULATOR is not set: run scripts/browser-tests.sh');
  const alice = await person('alice');
  const bob = await person('bob');
  const { page } = alice;
  await page.locator('select[name="environment"]').selectOption('prod');
  await page.locator('select[name="platform"]').selectOption('windows');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('table.instances tbody tr').first().waitFor();
  const platforms = await page.locator('table.instances tbody tr td:nth-child(6)').allTextContents();
  assert.ok(platforms.every((p) => p === 'windows'), `platforms: ${platforms}`);
  const box = page.locator('input[data-instance]:not([disabled])').first();
  const instance = await box.getAttribute('data-instance');
  await box.check();
  const form = page.locator('section.request-form');
  await form.getByLabel('Reason').fill('month-end report stuck');
  await form.getByRole('button', { name: 'Submit request' }).click();
  await page.waitForURL(/\/requests\/[0-9a-f-]{36}$/);
  const id = page.url().split('/').pop();

  await bob.page.getByRole('link', { name: 'Approvals' }).click();
  const item = bob.page.locator(`li[data-request="${id}"]`);
  await item.getByRole('button', { name: 'Approve' }).click();
  await item.waitFor({ state: 'detached' });

  await page.locator('h1 [data-status="active"]').waitFor({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Collect credentials' }).click();
  const login = page.locator('section.creds ul.commands li').first();
  await login.waitFor();
  // Hidden until asked for.
  assert.match(await login.locator('.secret').textContent(), /^•+$/);
  await login.getByRole('button', { name: 'Reveal password' }).click();
  const shown = await login.locator('.secret').textContent();
  // It is the password the instance made last (the emulator plays the instance and remembers, in
  // order, every password it made; an earlier test may have granted this instance too).
  const made = await (await fetch(`${EMULATOR}/_gatekeeper/passwords`)).json();
  const mine = Object.entries(made).filter(([key]) => key.endsWith(`/${instance}`)).map(([, p]) => p);
  assert.equal(mine.at(-1), shown, `passwords made on ${instance}: ${mine.length}`);
  assert.ok(shown.length >= 16, shown);
  assert.match(await login.textContent(), /gk-alice/);
  await shot(page, '11-windows-password');
  await login.getByRole('button', { name: 'Hide' }).click();
  assert.match(await login.locator('.secret').textContent(), /^•+$/);
  await alice.context.close();
  await bob.context.close();
});

test('signing in and searching work with the keyboard alone', async () => {
  const identities = await (await fetch(`${BASE}/api/v1/demo/identities`)).json();
  const token = identities.find((i) => i.sub === 'alice').token;
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(BASE);
  await page.getByLabel('Bearer token').waitFor();
  // Tab into the token field (no mouse), type, Tab to the button, Enter.
  for (let i = 0; i < 10 && !(await page.getByLabel('Bearer token').evaluate((e) => e === document.activeElement)); i++) {
    await page.keyboard.press('Tab');
  }
  await page.keyboard.type(token);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Sign in');
  await page.keyboard.press('Enter');
  await page.locator('header .who').getByText('(alice ·').waitFor();
  // The search form takes Enter from its text field.
  await page.getByLabel('Search').first().focus();
  await page.keyboard.type('ledger');
  await page.keyboard.press('Enter');
  await page.locator('table.instances tbody tr').first().waitFor();
  const names = await page.locator('table.instances tbody tr td:nth-child(2)').allTextContents();
  assert.ok(names.length > 0 && names.every((n) => n.includes('ledger')), `names: ${names}`);
  await context.close();
});

test('nothing went wrong in the browser consoles', () => {
  assert.deepEqual(problems, []);
});
