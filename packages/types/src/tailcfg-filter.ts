/** tailcfg packet-filter and SSH policy shapes (same field names as Tailscale's tailcfg JSON). */

/** An inclusive port range. */
export interface PortRange {
  /** First port. */
  First: number;
  /** Last port. */
  Last: number;
}

/** A destination of a filter rule: an IP, CIDR, range or "*", and ports. */
export interface NetPortRange {
  /** "100.64.0.1", "10.0.0.0/8", "a-b" or "*". */
  IP: string;
  /** Ports. */
  Ports: PortRange;
}

/** An application capability grant inside a filter rule. */
export interface CapGrant {
  /** Destination prefixes ("100.64.0.1/32"). */
  Dsts: string[];
  /** Capability name → values (null for companion capabilities). */
  CapMap: Record<string, unknown[] | null>;
}

/** One packet filter rule as sent to a node. */
export interface FilterRule {
  /** Source IPs, CIDRs, ranges or "*". */
  SrcIPs: string[];
  /** Destinations (absent for capability rules). */
  DstPorts?: NetPortRange[];
  /** IANA protocol numbers; absent means TCP, UDP and ICMP. */
  IPProto?: number[];
  /** Capability grants (absent for network rules). */
  CapGrant?: CapGrant[];
}

/** Who an SSH rule applies to. */
export interface SSHPrincipal {
  /** Source node's StableNodeID. */
  node?: string;
  /** Source node address. */
  nodeIP?: string;
  /** Source login name. */
  userLogin?: string;
  /** Any source. */
  any?: boolean;
}

/** What to do with a matching SSH connection. */
export interface SSHAction {
  /** Accept the session. */
  accept?: boolean;
  /** Reject the session. */
  reject?: boolean;
  /** Message shown to the user. */
  message?: string;
  /** URL to hold the session on and delegate the decision to (check mode). */
  holdAndDelegate?: string;
  /** Session duration in nanoseconds. */
  sessionDuration?: number;
  /** Allow ssh-agent forwarding. */
  allowAgentForwarding?: boolean;
  /** Allow -L forwarding. */
  allowLocalPortForwarding?: boolean;
  /** Allow -R forwarding. */
  allowRemotePortForwarding?: boolean;
}

/** One SSH rule as sent to a destination node (first match wins). */
export interface SSHRule {
  /** Matching sources. */
  principals: SSHPrincipal[];
  /** Requested user → local user ("=" keeps the name, "" denies). */
  sshUsers: Record<string, string>;
  /** Action. */
  action: SSHAction;
  /** Environment variable globs the client may send. */
  acceptEnv?: string[];
  /** Unix time (seconds) after which the rule expires. */
  ruleExpires?: string;
}
