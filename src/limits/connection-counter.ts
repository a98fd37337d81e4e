/**
 * Streaming connections held, per client address and in all: the two caps that keep one client
 * (or a flood of them) from taking every socket. A connection is counted from its admission until
 * its release, whatever the transport.
 */
export type Admission = { readonly ok: true; release(): void } | { readonly ok: false; readonly reason: 'per_ip' | 'global' };

export class ConnectionCounter {
  readonly #byAddress = new Map<string, number>();
  #total = 0;

  constructor(private readonly maxTotal: number, private readonly maxPerAddress: number) {}

  get total(): number {
    return this.#total;
  }

  admit(address: string): Admission {
    if (this.#total >= this.maxTotal) return { ok: false, reason: 'global' };
    const held = this.#byAddress.get(address) ?? 0;
    if (held >= this.maxPerAddress) return { ok: false, reason: 'per_ip' };
    this.#byAddress.set(address, held + 1);
    this.#total++;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.#total--;
        const left = (this.#byAddress.get(address) ?? 1) - 1;
        if (left === 0) this.#byAddress.delete(address);
        else this.#byAddress.set(address, left);
      },
    };
  }
}
