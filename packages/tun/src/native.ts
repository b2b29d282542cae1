/**
 * Loader and typings of the native addon (native/*.c, built by node-gyp into
 * build/Release/lattice_tun.node).
 */
import { createRequire } from "node:module";
import { TunError } from "./errors.js";

/** Opaque handle of a running native reader. */
export type ReaderHandle = { readonly __reader: unique symbol };

/** The functions the addon exports. */
export interface NativeAddon {
  tunOpen(name: string, multiQueue: boolean, vnetHdr: boolean, offload: boolean): { fd: number; name: string };
  linkSetMtu(name: string, mtu: number): void;
  linkGetMtu(name: string): number;
  linkIndex(name: string): number;
  /** Never throws for an errno: refused packets are dropped; err[0] gets the first errno (0: none). */
  writePackets(fd: number, packets: readonly Uint8Array[], count: number, vnet: boolean, err?: Int32Array): number;
  /** 1 = IFF_UP, 0 = down, -1 = cannot tell; throws (code EBADFD) once the interface is deleted. */
  tunLinkUp(fd: number): number;
  closeFd(fd: number): void;
  udpOpen(port: number, ipv6: boolean): { fd: number; port: number; family: 4 | 6; gro: boolean };
  udpSetMark(fd: number, mark: number): void;
  /** Refused datagrams are dropped; err[0] gets the errno of the first (0: none). */
  udpSend(fd: number, sockV6: boolean, datagrams: readonly Uint8Array[], addrs: Uint8Array, count: number, gso: boolean, err?: Int32Array): number;
  readerStart(
    kind: 0 | 1 | 2,
    fd: number,
    buf: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    addrs: Uint8Array | null,
    maxBatch: number,
    slot: number,
    /** errno != 0: `fatal` = the reader stopped for good; otherwise one read failed and reading goes on. */
    cb: (count: number, errno: number, fatal: boolean) => void,
  ): ReaderHandle;
  readerStop(handle: ReaderHandle): void;
  /** SO_PEERCRED of a connected unix socket fd (throws with the errno name in `code`). */
  peerCred(fd: number): { pid: number; uid: number; gid: number };
}

/** Loads the addon (cached by Node's require); throws TunError ERR_TUN_ADDON_MISSING. */
export function loadNative(): NativeAddon {
  const require = createRequire(import.meta.url);
  try {
    return require("../build/Release/lattice_tun.node") as NativeAddon;
  } catch (e) {
    throw new TunError(
      "ERR_TUN_ADDON_MISSING",
      "the @lattice/tun native addon is not built: run `pnpm -r run build:native` (needs node-gyp and Node headers)",
      undefined,
      e,
    );
  }
}
