/** magicsock counters; names are stable (latticed exports them as metrics). */
export function newStats() {
  return {
    /** UDP datagrams received, by class. */
    udpRecvWireGuard: 0,
    udpRecvDisco: 0,
    udpRecvStun: 0,
    /** UDP datagrams that are neither WireGuard, disco nor STUN: dropped. */
    dropUdpGarbage: 0,
    /** Datagrams the device sent to a magic endpoint of no current peer: dropped. */
    dropSendUnknownPeer: 0,
    /** Datagrams the device sent to a DERP pseudo-endpoint (it roamed there; roaming should be off): dropped. */
    dropSendDerpPseudo: 0,
    /** Datagrams for a peer with neither a direct path nor a DERP region: dropped. */
    dropSendNoPath: 0,
    /** DERP packets for a region whose connection is down and whose queue was full: dropped. */
    dropDerpQueueFull: 0,
    /** DERP packets the connection refused (socket backed up): dropped. */
    dropDerpBackpressure: 0,
    /** Candidate endpoints in the tailnet ranges (reached through the tunnel itself): ignored. */
    dropTailnetCandidates: 0,
    sendDirect: 0,
    sendDerp: 0,
    /** Copies of a datagram sent to unverified candidates because neither a direct path nor the relay was up. */
    sendBlind: 0,
    derpRecvWireGuard: 0,
    derpRecvDisco: 0,
    /** WireGuard over DERP from a node key that is not a peer (delivered; the device decides). */
    derpRecvUnknownPeer: 0,
    discoSentPing: 0,
    discoSentPong: 0,
    discoSentCallMeMaybe: 0,
    discoRecvPing: 0,
    discoRecvPong: 0,
    discoRecvCallMeMaybe: 0,
    /** Disco dropped: sender key of no peer. */
    dropDiscoUnknownSender: 0,
    /** Disco dropped: box did not open / malformed / unknown type (ERR_DISCO_*). */
    dropDiscoBad: 0,
    /** Disco from a known key dropped unopened: too many bad boxes from it this second. */
    dropDiscoRateLimited: 0,
    /** Disco over DERP whose DERP source is not the node owning the disco key. */
    dropDiscoDerpKeyMismatch: 0,
    /** Ping naming another node key than the disco key's owner. */
    dropDiscoPingKeyMismatch: 0,
    /** Pong of no outstanding ping, or from another address than pinged. */
    dropDiscoPongUnknown: 0,
    dropDiscoPongWrongPath: 0,
    /** CallMeMaybe received over UDP (only valid over DERP). */
    dropDiscoCallMeMaybeUdp: 0,
    /** Candidate addresses over the per-peer limit, or unparseable netmap endpoints. */
    dropCandidates: 0,
    /** Pings not sent because a peer had too many outstanding. */
    pingsSuppressed: 0,
    pingTimeouts: 0,
    /** Best direct path changes (new or better path) and losses (stopped answering). */
    pathChanges: 0,
    pathLost: 0,
    stunSent: 0,
    stunRecv: 0,
    /** STUN responses of no outstanding request / unparseable. */
    dropStunUnknown: 0,
    dropStunBad: 0,
    /** Bugs: a disco/STUN handler threw (the packet was dropped, logged). */
    internalErrors: 0,
    derpConnects: 0,
    derpConnectFailures: 0,
    derpDisconnects: 0,
  };
}

export type MagicStats = ReturnType<typeof newStats>;
