/** Why bytes are not an acceptable disco packet; `code` is stable. */
export type DiscoErrorCode =
  | "ERR_DISCO_NOT_DISCO" // shorter than magic + key + nonce, or no `TS💬` magic
  | "ERR_DISCO_SENDER_MISMATCH" // the sender key in the packet is not the expected peer's
  | "ERR_DISCO_AUTH" // the NaCl box does not open (wrong keys, tampered, truncated)
  | "ERR_DISCO_SHORT" // the decrypted message is shorter than its type requires
  | "ERR_DISCO_UNKNOWN_TYPE"; // a message type this implementation does not handle

/**
 * A typed parse failure. `open`/`parseMessage` *return* it (they never throw on input
 * bytes), so the network edge can count it by `code` and drop the datagram.
 */
export class DiscoError extends Error {
  readonly code: DiscoErrorCode;
  constructor(code: DiscoErrorCode, message: string) {
    super(message);
    this.name = "DiscoError";
    this.code = code;
  }
}

/** Thrown by the encoding side for a programming error (bad lengths, ports, keys). */
export class DiscoEncodeError extends Error {
  readonly code = "ERR_DISCO_ENCODE";
  constructor(message: string) {
    super(message);
    this.name = "DiscoEncodeError";
  }
}
