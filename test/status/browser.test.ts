/**
 * The status page in a real browser: Debian's headless Chromium (driven by playwright-core) loads
 * it from a server on a loopback port, behind security(). The rendered DOM shows the routes and
 * their numbers, the page's script refreshes them from status.json, nothing breaks its CSP or logs
 * an error (a deliberate inline script proves violations would be seen), and a screenshot renders.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { EXPRESS } from '../support/express';
import { statusApp, type StatusApp } from './support';

/** The little of the DOM the in-page functions use (the project's typecheck has no DOM lib). */
interface Node {
  textContent: string | null;
  readonly children: ArrayLike<Node>;
  readonly classList: { contains: (name: string) => boolean };
  appendChild: (node: Node) => Node;
}
interface Canvas {
  width: number;
  height: number;
  getContext: (kind: '2d') => {
    drawImage: (image: unknown, x: number, y: number) => void;
    getImageData: (x: number, y: number, w: number, h: number) => { data: Uint8ClampedArray };
  } | null;
}
/** In-page functions are serialised, so they reach these through `globalThis as unknown as Dom`. */
interface Dom {
  __violations: string[];
  Image: new () => { src: string; width: number; height: number; decode: () => Promise<void> };
  document: {
    body: Node;
    head: Node;
    querySelectorAll: (selector: string) => Iterable<Node>;
    createElement: ((tag: 'canvas') => Canvas) & ((tag: string) => Node);
    addEventListener: (
      type: 'securitypolicyviolation',
      listener: (e: { violatedDirective: string; blockedURI: string }) => void,
    ) => void;
  };
}

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

let browser: Browser | undefined;
let server: Server | undefined;
let built: StatusApp | undefined;
let base = '';

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: install Debian's package with ` +
        '`apt-get install -y --no-install-recommends chromium` (.ci/run does), or set CHROMIUM_PATH',
    );
  built = statusApp(EXPRESS[1]!, { refreshSeconds: 1 });
  const started = createServer(built.app);
  server = started;
  await new Promise<void>((resolve) => started.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(started.address() as AddressInfo).port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}, 30_000);

afterAll(async () => {
  await browser?.close();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => {
    if (server === undefined) resolve();
    else
      server.close(() => {
        resolve();
      });
  });
  await built?.close();
});

async function traffic(path: string, times = 1): Promise<void> {
  for (let i = 0; i < times; i++) await (await fetch(`${base}${path}`)).arrayBuffer();
}

interface Watched {
  page: Page;
  problems: string[];
  violations: () => Promise<string[]>;
}

/** A page that records console errors, page errors and CSP violations. */
async function watchedPage(): Promise<Watched> {
  const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning')
      problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  // Injected by the browser driver, not by the page: CSP does not apply to it.
  await page.addInitScript(() => {
    const seen: string[] = [];
    const { document } = globalThis as unknown as Dom;
    (globalThis as unknown as Dom).__violations = seen;
    document.addEventListener('securitypolicyviolation', (e) => {
      seen.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return {
    page,
    problems,
    violations: () => page.evaluate(() => (globalThis as unknown as Dom).__violations),
  };
}

/** Width and height from a PNG's IHDR chunk. */
function pngSize(png: Buffer): { width: number; height: number } {
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

/** Distinct colours and the luminance standard deviation of a PNG, decoded by a blank page's canvas. */
async function pixelStats(png: Buffer): Promise<{ colours: number; deviation: number }> {
  const blank = await browser!.newPage();
  try {
    return await blank.evaluate(async (data) => {
      const { document, Image } = globalThis as unknown as Dom;
      const image = new Image();
      image.src = `data:image/png;base64,${data}`;
      await image.decode();
      const canvas = document.createElement('canvas');
      canvas.width = image.width;
      canvas.height = image.height;
      const context = canvas.getContext('2d')!;
      context.drawImage(image, 0, 0);
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
      const colours = new Set<number>();
      let sum = 0;
      let squares = 0;
      const n = pixels.length / 4;
      for (let i = 0; i < pixels.length; i += 4) {
        const [r, g, b] = [pixels[i]!, pixels[i + 1]!, pixels[i + 2]!];
        colours.add((r << 16) | (g << 8) | b);
        const y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
        sum += y;
        squares += y * y;
      }
      return { colours: colours.size, deviation: Math.sqrt(squares / n - (sum / n) ** 2) };
    }, png.toString('base64'));
  } finally {
    await blank.close();
  }
}

/** The cells of the route table's rows in the rendered DOM. */
function routeRows(page: Page): Promise<string[][]> {
  return page.evaluate(() =>
    [...(globalThis as unknown as Dom).document.querySelectorAll('#s-routes tbody tr')].map((row) =>
      Array.from(row.children, (td) => td.textContent ?? ''),
    ),
  );
}

it('renders the routes and numbers, refreshes them, breaks no CSP rule and screenshots as a page', async () => {
  await traffic('/patients/p-1', 4);
  await traffic('/limited', 5);
  await traffic('/labs', 2);
  await traffic('/db');
  const { page, problems, violations } = await watchedPage();
  const response = await page.goto(`${base}/status`);
  expect(response?.status()).toBe(200);
  expect(await page.title()).toBe('records status');

  const first = await routeRows(page);
  expect(first.find((r) => r[0] === '/patients/:id')?.slice(0, 3)).toEqual(['/patients/:id', 'GET', '4']);
  expect(first.find((r) => r[0] === '/labs')?.[6]).toBe('100 %');
  expect(await page.textContent('#s-breakers tbody')).toContain('open');
  expect(await page.textContent('#s-limits tbody')).toContain('api');
  expect(await page.textContent('#s-flags tbody')).toContain('new-dashboard');
  expect(await page.locator('#s-pools meter').count()).toBe(1);

  // The script (status.js, allowed by script-src 'self') reloads status.json and redraws.
  await traffic('/patients/p-2', 3);
  await page.waitForSelector('body[data-updates]', { timeout: 5_000 });
  await page.waitForFunction(
    () =>
      [...(globalThis as unknown as Dom).document.querySelectorAll('#s-routes tbody tr')].some(
        (tr) => tr.children[0]?.textContent === '/patients/:id' && tr.children[2]?.textContent === '7',
      ),
    undefined,
    { timeout: 5_000 },
  );
  const refreshed = await routeRows(page);
  expect(refreshed.find((r) => r[0] === '/patients/:id')?.[7]).toMatch(/^[\d.]+ ms$/);
  expect(
    await page.evaluate(() => (globalThis as unknown as Dom).document.body.classList.contains('stale')),
  ).toBe(false);

  const png = await page.screenshot({ fullPage: false });
  // STATUS_SCREENSHOT=/tmp/status.png keeps the picture for a person to look at.
  if (process.env.STATUS_SCREENSHOT !== undefined) writeFileSync(process.env.STATUS_SCREENSHOT, png);
  const size = pngSize(png);
  expect(size).toEqual({ width: 1280, height: 900 });
  const stats = await pixelStats(png);
  expect(stats.colours).toBeGreaterThan(50);
  expect(stats.deviation).toBeGreaterThan(5);

  expect(await violations()).toEqual([]);
  expect(problems).toEqual([]);

  // The listener sees violations: an inline script is refused by the page's CSP.
  await page.evaluate(() => {
    const { document } = globalThis as unknown as Dom;
    const script = document.createElement('script');
    script.textContent = 'document.title = "injected"';
    document.head.appendChild(script);
  });
  await page.waitForFunction(() => (globalThis as unknown as Dom).__violations.length > 0);
  expect((await violations())[0]).toMatch(/^script-src/);
  expect(await page.title()).toBe('records status');
  await page.close();
}, 15_000);
