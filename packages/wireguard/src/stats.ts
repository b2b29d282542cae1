/** Drop reasons and counters reported by {@link Device.stats}. */

/** Why the device dropped a datagram or packet. */
export const DROP_REASONS = [
  "unknownMessageType", "malformedInitiation", "malformedResponse", "malformedCookieReply", "malformedTransport",
  "noPrivateKey", "invalidMac1", "cookieReplySent", "rateLimited",
  "handshakeDecryptFailed", "unknownPeer", "lowOrderKey", "replayedTimestamp", "handshakeFlood",
  "unexpectedResponse", "invalidCookieReply", "unknownIndex", "keypairExpired", "decryptFailed", "replayedCounter",
  "invalidInnerPacket", "sourceNotAllowed", "noRoute", "noEndpoint", "stagedQueueFull", "handshakeGaveUp", "deviceDown",
] as const;

/** One of {@link DROP_REASONS}. */
export type DropReason = (typeof DROP_REASONS)[number];

/** Device-wide counters (interface statistics for the edge). */
export interface DeviceStats {
  /** Drops per reason (every reason present, 0 when none). */
  drops: Record<DropReason, number>;
  /** Datagrams / UDP payload bytes handed to receiveDatagram. */
  rxDatagrams: number;
  rxBytes: number;
  /** Datagrams / bytes produced for sending. */
  txDatagrams: number;
  txBytes: number;
  /** Inner packets accepted from the TUN side / bytes. */
  tunInPackets: number;
  tunInBytes: number;
  /** Inner packets delivered to the TUN side / bytes. */
  tunOutPackets: number;
  tunOutBytes: number;
  /** Keepalives received / sent. */
  keepalivesReceived: number;
  keepalivesSent: number;
  /** Handshake messages sent / completed sessions. */
  handshakeInitiationsSent: number;
  handshakeResponsesSent: number;
  cookieRepliesSent: number;
  sessionsDerived: number;
}

/** A zeroed stats record. */
export function emptyStats(): DeviceStats {
  const drops = {} as Record<DropReason, number>;
  for (const r of DROP_REASONS) drops[r] = 0;
  return {
    drops, rxDatagrams: 0, rxBytes: 0, txDatagrams: 0, txBytes: 0, tunInPackets: 0, tunInBytes: 0,
    tunOutPackets: 0, tunOutBytes: 0, keepalivesReceived: 0, keepalivesSent: 0,
    handshakeInitiationsSent: 0, handshakeResponsesSent: 0, cookieRepliesSent: 0, sessionsDerived: 0,
  };
}
