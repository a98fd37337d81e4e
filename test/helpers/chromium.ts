/**
 * Debian's Chromium for the browser tests, driven by playwright-core: where it is, whether it is
 * there (the tests skip with the reason when not), and one way to launch it.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
export const chromiumAvailable = existsSync(CHROMIUM);
/** What a skipped browser test says. */
export const noChromium = `no browser at ${CHROMIUM} (.ci/setup-system.sh installs Debian's chromium)`;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}
