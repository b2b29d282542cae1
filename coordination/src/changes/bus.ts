/**
 * The change bus: every state change is published as a declarative change set (which
 * nodes, what changed). The mapper turns change sets into map deltas without reading
 * the database itself.
 */

/** What changed about the nodes a change set names. */
export type ChangeKind =
  /** Nodes were registered (new peers). */
  | "nodeAdded"
  /** Nodes were deleted (peers gone). */
  | "nodeRemoved"
  /** Node fields changed; `fields` says which. */
  | "nodeChanged"
  /** Nodes went online or offline. */
  | "onlineChanged"
  /** Node keys expired (admin expire, logout, or the expiry time passed). */
  | "keyExpired"
  /** The policy changed: every node's filter, SSH policy and peer set may differ. */
  | "policyChanged"
  /** Users changed (profiles in netmaps). */
  | "userChanged";

/** Node fields a `nodeChanged` set can name. */
export type NodeField =
  | "endpoints"
  | "homeDerp"
  | "discoKey"
  | "nodeKey"
  | "hostinfo"
  | "name"
  | "tags"
  | "user"
  | "approved"
  | "keyExpiry"
  | "routes"
  | "lastSeen";

/** One declarative change set. */
export interface ChangeSet {
  kind: ChangeKind;
  /** Node ids concerned (empty for tailnet-wide changes such as `policyChanged`). */
  nodeIds: number[];
  /** For `nodeChanged`: the fields that changed. */
  fields?: NodeField[];
  /** For `onlineChanged`: the new state. */
  online?: boolean;
  /** When it happened (ms since the epoch, from the injected clock). */
  at: number;
}

/** A change set listener. Listeners must not throw; errors are caught and reported. */
export type ChangeListener = (change: ChangeSet) => void;

/** In-process publish/subscribe for change sets. */
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

  /** Publishes a change set to every listener, synchronously. */
  publish(change: ChangeSet): void {
    for (const l of [...this.#listeners]) {
      try {
        l(change);
      } catch (e) {
        this.#onError(e);
      }
    }
  }
}
