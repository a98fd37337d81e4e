/** Builds public/edgepush.js (and its declarations) from src/client; see build.mjs. */
export function buildClient(options?: { outdir?: string; declarations?: boolean }): Promise<string>;
