// Debian's Firefox ESR for the browser checks, driven by puppeteer-core over WebDriver BiDi
// (playwright-core drives only its own patched Firefox builds, not a stock one).
//
// Firefox has no command-line switches for fake media; these preferences do the same as
// Chromium's flags in lib.mjs: a fake camera (1280x720 when asked for it) and microphone, no
// permission prompt, and autoplay allowed. Two Firefox facts the checks rely on:
//  - Debian's build has no H.264 (no OpenH264 plugin): it sends and decodes VP8 (VP9, AV1).
//  - Headless Firefox has no screen to share: `getDisplayMedia` rejects with NotFoundError.
//    `withTabAsScreen` makes it return Firefox's own capture of the tab instead, so a screen
//    share still runs the client's real path and Firefox's real capture and encoder.
//
// `openFirefoxPage` returns the page wrapped in the few Playwright-style methods the scripts
// and lib.mjs's helpers use (`evaluate`, `isVisible`, `click`, `$`, `reload`,
// `setViewportSize`, `press`), so one check can run against either browser.

import puppeteer from 'puppeteer-core';

export const FIREFOX = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';

export const FIREFOX_PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.autoplay.default': 0,
  // Lets `withTabAsScreen` capture the tab (otherwise NotAllowedError).
  'media.getusermedia.browser.enabled': true,
};

/** Launches headless Firefox ESR; close it with `browser.close()`. */
export function launchFirefox() {
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: FIREFOX_PREFS,
  });
}

/**
 * Init script: `getDisplayMedia` answered with Firefox's capture of the tab itself
 * (`getUserMedia({video: {mediaSource: 'browser'}})`), since headless Firefox has no screen.
 */
export function withTabAsScreen() {
  navigator.mediaDevices.getDisplayMedia = (constraints = {}) => {
    const video = typeof constraints.video === 'object' ? constraints.video : {};
    return navigator.mediaDevices.getUserMedia({ video: { ...video, mediaSource: 'browser' } });
  };
}

/**
 * Opens `url` in a new browser context of `browser`, like lib.mjs's `openPage`: `viewport`,
 * `onConsoleError(text)` for console errors and uncaught exceptions, `initScripts` (functions
 * run in the page, in order, before its own scripts), at most `timeoutMs` to load.
 */
export async function openFirefoxPage(browser, url, {
  viewport = { width: 1280, height: 800 },
  onConsoleError,
  timeoutMs = 30000,
  initScripts = [],
} = {}) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport(viewport);
  for (const script of initScripts) await page.evaluateOnNewDocument(script);
  if (onConsoleError) {
    page.on('console', async (message) => {
      if (message.type() !== 'error') return;
      // Puppeteer's text() shows an Error argument as "JSHandle@error": spell it out.
      const args = await Promise.all(message.args().map((arg) => arg.evaluate(
        (value) => (value instanceof Error ? `${value.name}: ${value.message}` : String(value)),
      ).catch(() => '?')));
      onConsoleError(args.length ? args.join(' ') : message.text());
    });
    page.on('pageerror', (error) => onConsoleError(`uncaught: ${error.stack ?? error.message}`));
  }
  await page.goto(url, { waitUntil: 'load', timeout: Math.max(1, timeoutMs) });
  return new FirefoxPage(page);
}

/** A Puppeteer page with the Playwright-style methods the checks use. */
class FirefoxPage {
  #page;

  constructor(page) {
    this.#page = page;
  }

  evaluate(fn, arg) {
    return this.#page.evaluate(fn, arg);
  }

  /** Whether `selector` matches an element that is rendered with a size (Playwright's sense). */
  isVisible(selector) {
    return this.#page.evaluate((sel) => {
      const element = document.querySelector(sel);
      if (!element?.checkVisibility({ visibilityProperty: true })) return false;
      const box = element.getBoundingClientRect();
      return box.width > 0 && box.height > 0;
    }, selector);
  }

  /** The element's `isVisible()` and `innerText()`, as lib.mjs's `visibleText` reads them. */
  async $(selector) {
    if (!(await this.#page.$(selector))) return null;
    return {
      isVisible: () => this.isVisible(selector),
      innerText: () => this.#page.evaluate((sel) => document.querySelector(sel)?.innerText ?? '', selector),
    };
  }

  click(selector) {
    return this.#page.click(selector);
  }

  reload(options) {
    return this.#page.reload(options);
  }

  setViewportSize(viewport) {
    return this.#page.setViewport(viewport);
  }

  /** Presses `Control+KeyD`-style shortcuts, as Playwright's `keyboard.press` takes them. */
  async press(shortcut) {
    const keys = shortcut.split('+');
    const key = keys.pop();
    for (const modifier of keys) await this.#page.keyboard.down(modifier);
    await this.#page.keyboard.press(key);
    for (const modifier of keys.reverse()) await this.#page.keyboard.up(modifier);
  }
}
