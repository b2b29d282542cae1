/**
 * Loader and typings of the native addon (native/*.c, built by node-gyp into
 * build/Release/lattice_udp.node).
 */
import { createRequire } from "node:module";
import { UdpError } from "./errors.js";

/** Opaque handle of a native socket. */
export type NativeHandle = { readonly __udp: unique symbol };

/** Counters kept by the native socket. */
export interface NativeStats {
  rxSyscalls: number;
  rxDatagrams: number;
  rxBytes: number;
  rxBatches: number;
  rxGroMessages: number;
  rxErrors: number;
  rxDrops: number;
  txSyscalls: number;
  txDatagrams: number;
  txBytes: number;
  txGsoMessages: number;
  txDrops: number;
  txErrors: number;
  txLastError: string | undefined;
  gso: boolean;
  gro: boolean;
}

/** What `open` returns. */
export interface NativeOpenResult {
  handle: NativeHandle;
  port: number;
  family: 4 | 6;
  gso: boolean;
  gro: boolean;
  rcvbuf: number;
  sndbuf: number;
}

/** The functions the addon exports (see native/*.c for the exact contracts). */
export interface NativeAddon {
  open(
    host: string,
    port: number,
    hasMark: boolean,
    mark: number,
    rcvbuf: number,
    sndbuf: number,
    gso: boolean,
    gro: boolean,
    slots: number,
    maxLoops: number,
    onBatch: (data: Buffer, meta: Uint32Array, addresses: string[], count: number) => void,
    onError: (errno: number, name: string) => void,
  ): NativeOpenResult;
  close(handle: NativeHandle): void;
  send(
    handle: NativeHandle,
    datas: readonly Uint8Array[],
    dsts: Uint32Array,
    dstStride: 0 | 5,
    count: number,
    waitMs: number,
  ): number;
  stats(handle: NativeHandle): NativeStats;
  setRef(handle: NativeHandle, ref: boolean): void;
  parseAddress(text: string, family: number): Uint8Array | null;
}

/** Loads the addon (cached by Node's require); throws UdpError ERR_UDP_ADDON_MISSING. */
export function loadNative(): NativeAddon {
  const require = createRequire(import.meta.url);
  try {
    return require("../build/Release/lattice_udp.node") as NativeAddon;
  } catch (e) {
    throw new UdpError(
      "ERR_UDP_ADDON_MISSING",
      "the @lattice/udp native addon is not built: run `pnpm -r run build:native` (needs node-gyp and Node headers)",
      undefined,
      e,
    );
  }
}
