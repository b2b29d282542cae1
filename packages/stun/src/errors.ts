/** Why a datagram is not an acceptable STUN message; `code` is stable. */
export type StunParseErrorCode =
  | "ERR_STUN_SHORT" // fewer than 20 bytes, or the length field runs past the datagram
  | "ERR_STUN_NOT_STUN" // top two bits set, or no RFC 5389 magic cookie
  | "ERR_STUN_BAD_LENGTH" // length field not a multiple of 4 or not the datagram's length
  | "ERR_STUN_BAD_ATTRIBUTE" // an attribute runs past the message end
  | "ERR_STUN_BAD_FINGERPRINT" // FINGERPRINT present but wrong, misplaced or malformed
  | "ERR_STUN_NOT_BINDING" // a well-formed STUN message that is not the expected Binding class
  | "ERR_STUN_NO_ADDRESS" // a Binding success response without a usable (XOR-)MAPPED-ADDRESS
  | "ERR_STUN_BAD_ADDRESS"; // a (XOR-)MAPPED-ADDRESS with a bad family or length

/**
 * A typed parse failure. Parsers *return* it (they never throw on input bytes), so a
 * caller on the network edge can count it by `code` and drop the datagram.
 */
export class StunParseError extends Error {
  readonly code: StunParseErrorCode;
  constructor(code: StunParseErrorCode, message: string) {
    super(message);
    this.name = "StunParseError";
    this.code = code;
  }
}

/** Thrown for a programming error on the encoding side (bad transaction id or address length). */
export class StunEncodeError extends Error {
  readonly code = "ERR_STUN_ENCODE";
  constructor(message: string) {
    super(message);
    this.name = "StunEncodeError";
  }
}
