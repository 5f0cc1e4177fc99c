/** A typed event emitter: `on` returns the function that unsubscribes. */
export class Emitter<Events extends { [name: string]: unknown }> {
  private readonly listeners = new Map<keyof Events, Set<(value: never) => void>>();

  constructor(private readonly onListenerError: (error: unknown, event: keyof Events) => void) {}

  /** Call `listener` for every `event`; returns the function that stops it. */
  on<E extends keyof Events>(event: E, listener: (value: Events[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as (value: never) => void);
    return () => this.off(event, listener);
  }

  /** Stop calling `listener` for `event`. */
  off<E extends keyof Events>(event: E, listener: (value: Events[E]) => void): void {
    this.listeners.get(event)?.delete(listener as (value: never) => void);
  }

  /** Call every listener of `event`; a listener that throws is reported, never propagated. */
  emit<E extends keyof Events>(event: E, value: Events[E]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) {
      try {
        (listener as (value: Events[E]) => void)(value);
      } catch (error) {
        this.onListenerError(error, event);
      }
    }
  }

  /** How many listeners `event` has. */
  count(event: keyof Events): number {
    return this.listeners.get(event)?.size ?? 0;
  }
}
