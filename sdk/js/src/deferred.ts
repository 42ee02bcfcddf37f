/**
 * A promise with its settle functions, that reports whether settling it still mattered: a
 * request whose caller gave up (timed out) must not, say, count a subscriber as live.
 */
export class Deferred<T> {
  readonly promise: Promise<T>;
  settled = false;
  private res!: (value: T) => void;
  private rej!: (error: unknown) => void;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.res = resolve;
      this.rej = reject;
    });
    // Rejections nobody awaits (a fire-and-forget unsubscribe) are not process errors.
    this.promise.catch(() => {});
  }

  /** `false` when it was settled already. */
  resolve(value: T): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.res(value);
    return true;
  }

  reject(error: unknown): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.rej(error);
    return true;
  }
}
