/**
 * Bytes in use at once, shared by many jobs: a job waits until its bytes fit. One job larger
 * than the whole budget still runs, alone, so nothing waits forever. Waiters are admitted in
 * order, so a large job is not passed over again and again by small ones.
 */
export class ByteBudget {
  readonly #limit: number;
  #used = 0;
  #running = 0;
  readonly #waiting: { bytes: number; admit(): void }[] = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Runs `job` once `bytes` fit in the budget, and gives them back when it settles. */
  async use<T>(bytes: number, job: () => Promise<T>): Promise<T> {
    if (this.#waiting.length === 0 && this.#fits(bytes)) this.#take(bytes);
    else await new Promise<void>((admit) => this.#waiting.push({ bytes, admit }));
    try {
      return await job();
    } finally {
      this.#used -= bytes;
      this.#running--;
      this.#admitWaiting();
    }
  }

  #fits(bytes: number): boolean {
    return this.#running === 0 || this.#used + bytes <= this.#limit;
  }

  #admitWaiting(): void {
    while (this.#waiting.length > 0 && this.#fits(this.#waiting[0]!.bytes)) {
      const next = this.#waiting.shift()!;
      // Taken now, not when its continuation runs: the next waiter must see these bytes.
      this.#take(next.bytes);
      next.admit();
    }
  }

  #take(bytes: number): void {
    this.#used += bytes;
    this.#running++;
  }
}
