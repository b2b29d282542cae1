/** Errors thrown by magicsock's API (never for network input: that is dropped and counted). */
export type MagicSockErrorCode =
  | "ERR_MAGICSOCK_UNKNOWN_PEER" // a node key not in the last setPeers()
  | "ERR_MAGICSOCK_BAD_KEY" // a key of the wrong length
  | "ERR_MAGICSOCK_BAD_PEER" // setPeers() input that cannot be used (duplicate key, ...)
  | "ERR_MAGICSOCK_CLOSED" // the socket is closed / not open
  | "ERR_MAGICSOCK_PING_TIMEOUT"; // ping() got no pong in time

/** A typed magicsock error with a stable `code`. */
export class MagicSockError extends Error {
  readonly code: MagicSockErrorCode;
  constructor(code: MagicSockErrorCode, message: string) {
    super(message);
    this.name = "MagicSockError";
    this.code = code;
  }
}
