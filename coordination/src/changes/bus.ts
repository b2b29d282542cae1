/**
 * The change bus: services publish every state change as a {@link Change} (the server's
 * one change type, ../mapper/types.ts: which nodes, what about them). The node backend is
 * the subscriber that applies changes to the netmap snapshot and hands them to the map
 * streams; nothing on the way translates them into another type.
 */
import type { Change } from "../mapper/types.js";

export type { Change } from "../mapper/types.js";

/** A change listener. Listeners must not throw; errors are caught and reported. */
export type ChangeListener = (change: Change) => void;

/** In-process publish/subscribe for changes. */
export class ChangeBus {
  readonly #listeners = new Set<ChangeListener>();
  readonly #onError: (e: unknown) => void;

  /** `onError` receives exceptions thrown by listeners. */
  constructor(onError: (e: unknown) => void = () => {}) {
    this.#onError = onError;
  }

  /** Subscribes; returns the unsubscribe function. */
  subscribe(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Publishes a change to every listener, synchronously. */
  publish(change: Change): void {
    for (const l of [...this.#listeners]) {
      try {
        l(change);
      } catch (e) {
        this.#onError(e);
      }
    }
  }
}
