/**
 * Shape validation of the JSON bodies nodes send (tailcfg RegisterRequest / MapRequest).
 * Strict: unknown fields, wrong types and malformed keys are refused with a message that
 * names the field path ("Hostinfo.RoutableIPs[2]: …").
 */
import { z } from "zod";
import type { MapRequest, RegisterRequest } from "@lattice/types";
import { ControlError } from "../errors.js";

/** A refused node request (malformed, too large…): HTTP status, stable code, message naming the field. */
export class RequestError extends ControlError {
  /** Creates a request refusal. */
  constructor(status: number, code: string, message: string) {
    super(code, message, status);
    this.name = "RequestError";
  }
}

const hexKey = (prefix: string) =>
  z.string().regex(new RegExp(`^${prefix}:[0-9a-f]{64}$`), `must be "${prefix}:" followed by 64 lowercase hex digits`);
const nodeKey = hexKey("nodekey");
const discoKey = hexKey("discokey");
const time = z.string().max(64).refine((s) => !Number.isNaN(Date.parse(s)), "must be an RFC 3339 time");
const str = z.string().max(4096);
/**
 * tailcfg opt.Bool (tailscale types/opt/bool.go): a Go string type whose UnmarshalJSON
 * accepts exactly the JSON literals `true`, `false` and `null` (quoted strings are refused).
 * Stored and sent on as a JSON boolean; `null` (unset) is dropped.
 */
const optBool = z
  .union([z.boolean(), z.null()], { error: "must be true, false or null (opt.Bool)" })
  .transform((v) => (v === null ? undefined : v));
const strList = z.array(z.string().max(256)).max(4096);

const netInfo = z.strictObject({
  MappingVariesByDestIP: optBool.optional(),
  WorkingIPv6: optBool.optional(),
  OSHasIPv6: optBool.optional(),
  WorkingUDP: optBool.optional(),
  WorkingICMPv4: optBool.optional(),
  HavePortMap: z.boolean().optional(),
  UPnP: optBool.optional(),
  PMP: optBool.optional(),
  PCP: optBool.optional(),
  PreferredDERP: z.number().int().min(0).optional(),
  LinkType: str.optional(),
  DERPLatency: z.record(z.string().max(64), z.number()).optional(),
  FirewallMode: str.optional(),
});

const hostinfo = z.strictObject({
  IPNVersion: str.optional(),
  FrontendLogID: str.optional(),
  BackendLogID: str.optional(),
  OS: str.optional(),
  OSVersion: str.optional(),
  Container: optBool.optional(),
  Env: str.optional(),
  Distro: str.optional(),
  DistroVersion: str.optional(),
  DistroCodeName: str.optional(),
  App: str.optional(),
  Desktop: optBool.optional(),
  Package: str.optional(),
  DeviceModel: str.optional(),
  PushDeviceToken: str.optional(),
  Hostname: z.string().max(256).optional(),
  ShieldsUp: z.boolean().optional(),
  ShareeNode: z.boolean().optional(),
  NoLogsNoSupport: z.boolean().optional(),
  WireIngress: z.boolean().optional(),
  IngressEnabled: z.boolean().optional(),
  AllowsUpdate: z.boolean().optional(),
  Machine: str.optional(),
  GoArch: str.optional(),
  GoArchVar: str.optional(),
  GoVersion: str.optional(),
  RoutableIPs: strList.optional(),
  RequestTags: strList.optional(),
  WoLMACs: strList.optional(),
  Services: z
    .array(z.strictObject({ Proto: z.string().max(64), Port: z.number().int().min(0).max(65535), Description: str.optional() }))
    .max(1024)
    .optional(),
  NetInfo: netInfo.optional(),
  sshHostKeys: z.array(z.string().max(16384)).max(64).optional(),
  Cloud: str.optional(),
  Userspace: optBool.optional(),
  UserspaceRouter: optBool.optional(),
  AppConnector: optBool.optional(),
  ServicesHash: str.optional(),
  PeerRelay: z.boolean().optional(),
  ExitNodeID: str.optional(),
  Location: z.record(z.string(), z.unknown()).optional(),
  TPM: z.record(z.string(), z.unknown()).optional(),
  StateEncrypted: optBool.optional(),
});

const registerRequest = z.strictObject({
  Version: z.number().int().min(0),
  NodeKey: nodeKey,
  OldNodeKey: z.union([nodeKey, z.literal("")]).optional(),
  NLKey: str.optional(),
  Auth: z.strictObject({ AuthKey: z.string().max(1024).optional() }).nullable().optional(),
  Expiry: time.optional(),
  Followup: z.string().max(2048).optional(),
  Hostinfo: hostinfo.nullable().optional(),
  Ephemeral: z.boolean().optional(),
  NodeKeySignature: z.string().max(65536).nullable().optional(),
  SignatureType: str.optional(),
  Timestamp: time.nullable().optional(),
  Tailnet: str.optional(),
});

const endpoint = z.string().max(64).regex(/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.%\w]+\]):\d{1,5}$/, 'must be "ip:port"');

const mapRequest = z.strictObject({
  Version: z.number().int().min(0),
  Compress: z.string().max(16).optional(),
  KeepAlive: z.boolean().optional(),
  NodeKey: nodeKey,
  DiscoKey: discoKey.optional(),
  Stream: z.boolean().optional(),
  Hostinfo: hostinfo.nullable().optional(),
  MapSessionHandle: str.optional(),
  MapSessionSeq: z.number().int().optional(),
  Endpoints: z.array(endpoint).max(256).optional(),
  EndpointTypes: z.array(z.number().int()).max(256).optional(),
  TKAHead: str.optional(),
  ReadOnly: z.boolean().optional(),
  OmitPeers: z.boolean().optional(),
  DebugFlags: strList.optional(),
  ConnectionHandleForTest: str.optional(),
});

function describe(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => {
      const path = i.path.reduce<string>((acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), "");
      if (i.code === "unrecognized_keys") {
        return `${path ? path + ": " : ""}unknown field${i.keys.length > 1 ? "s" : ""} ${i.keys.map((k) => JSON.stringify(k)).join(", ")}`;
      }
      return `${path || "(body)"}: ${i.message}`;
    })
    .join("; ");
}

/** Parses a body as JSON; RequestError(400, "bad_json") when it is not. */
export function parseJsonBody(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (e) {
    throw new RequestError(400, "bad_json", `request body is not valid JSON: ${(e as Error).message}`);
  }
}

/** Validates a RegisterRequest; RequestError(400, "bad_request") naming the fields otherwise. */
export function validateRegisterRequest(v: unknown): RegisterRequest {
  const r = registerRequest.safeParse(v);
  if (!r.success) throw new RequestError(400, "bad_request", `invalid RegisterRequest: ${describe(r.error)}`);
  return r.data as RegisterRequest;
}

/** Validates a MapRequest; RequestError(400, "bad_request") naming the fields otherwise. */
export function validateMapRequest(v: unknown): MapRequest {
  const r = mapRequest.safeParse(v);
  if (!r.success) throw new RequestError(400, "bad_request", `invalid MapRequest: ${describe(r.error)}`);
  if (r.data.Compress && r.data.Compress !== "") {
    throw new RequestError(400, "bad_request", `invalid MapRequest: Compress: "${r.data.Compress.slice(0, 16)}" is not supported (only uncompressed)`);
  }
  return r.data as MapRequest;
}

/**
 * Refuses a Hostinfo whose JSON exceeds `limit` bytes: RequestError(413,
 * "hostinfo_too_large") naming both sizes. Hostinfo is stored per node and (trimmed, see
 * mapper/peer-hostinfo.ts) sent to every peer, so its size is capped apart from the body's.
 */
export function checkHostinfoSize(h: unknown, limit: number): void {
  if (h == null) return;
  const size = Buffer.byteLength(JSON.stringify(h));
  if (size > limit) {
    throw new RequestError(413, "hostinfo_too_large", `Hostinfo: ${size} bytes of JSON exceeds the limit of ${limit} bytes (setting maxHostinfoBytes)`);
  }
}
