import { type DescMethod, type DescService, getOption, hasOption } from "@bufbuild/protobuf";
import { rest } from "../../gen/converger/v1/options_pb.js";
import { http } from "../../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../../gen/google/api/http_pb.js";
import type { RawRoute } from "../common/service.js";

type Segment = { literal: string } | { param: string };

/** A REST binding of an RPC, read from its google.api.http option. */
export interface RpcRoute {
  kind: "rpc";
  verb: string;
  /** The path as declared (`/v1/conversations/{id}`): the route's metrics label. */
  template: string;
  segments: Segment[];
  method: DescMethod;
  service: DescService;
  /** "*" maps the whole JSON body onto the request; "" means no body. */
  body: string;
  successStatus: number;
  /** Errors as RFC 6749 bodies (the /auth/* endpoints). */
  oauthErrors: boolean;
}

interface RawRouteEntry {
  kind: "raw";
  verb: string;
  template: string;
  segments: Segment[];
  route: RawRoute;
}

export type RouteEntry = RpcRoute | RawRouteEntry;

export type RouteMatch = { entry: RouteEntry; params: Record<string, string> } | { allowed: string[] } | undefined;

/**
 * The gateway's route table: every `google.api.http` binding (and its
 * additional_bindings) of the given services, plus the raw routes services
 * own. Literal segments win over parameters, so `/v1/tokens/refresh` is never
 * taken for `/v1/tokens/{id}`.
 */
export function buildRouteTable(services: DescService[], rawRoutes: RawRoute[]) {
  const entries: RouteEntry[] = [];
  for (const service of services) {
    for (const method of service.methods) {
      if (!hasOption(method, http)) continue;
      const rule = getOption(method, http);
      const restRule = hasOption(method, rest) ? getOption(method, rest) : undefined;
      const successStatus = restRule?.successStatus || 200;
      const oauthErrors = restRule?.oauthErrors ?? false;
      for (const binding of [rule, ...rule.additionalBindings]) {
        const { verb, path } = patternOf(binding);
        entries.push({
          kind: "rpc",
          verb,
          template: path,
          segments: parseTemplate(path),
          method,
          service,
          body: binding.body || rule.body,
          successStatus,
          oauthErrors,
        });
      }
    }
  }
  for (const route of rawRoutes) {
    entries.push({
      kind: "raw",
      verb: route.method.toUpperCase(),
      template: route.path,
      segments: parseTemplate(route.path),
      route,
    });
  }
  entries.sort((a, b) => specificity(b) - specificity(a));

  return {
    entries,
    match(verb: string, path: string): RouteMatch {
      const parts = path.split("/").slice(1);
      const allowed: string[] = [];
      for (const entry of entries) {
        const params = matchSegments(entry.segments, parts);
        if (!params) continue;
        if (entry.verb === verb || (verb === "HEAD" && entry.verb === "GET")) return { entry, params };
        allowed.push(entry.verb);
      }
      return allowed.length > 0 ? { allowed: [...new Set(allowed)] } : undefined;
    },
  };
}

export type RouteTable = ReturnType<typeof buildRouteTable>;

function patternOf(rule: HttpRule): { verb: string; path: string } {
  const p = rule.pattern;
  if (p.case === "custom") return { verb: p.value.kind.toUpperCase(), path: p.value.path };
  if (!p.case) throw new Error("google.api.http rule without a pattern");
  return { verb: p.case.toUpperCase(), path: p.value };
}

function parseTemplate(path: string): Segment[] {
  return path
    .split("/")
    .slice(1)
    .map((s) => {
      const param = /^\{([a-z_][a-z0-9_.]*)(=\*)?\}$/.exec(s);
      return param ? { param: param[1] as string } : { literal: s };
    });
}

function matchSegments(segments: Segment[], parts: string[]): Record<string, string> | undefined {
  if (segments.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as Segment;
    const part = parts[i] as string;
    if ("literal" in segment) {
      if (segment.literal !== part) return undefined;
    } else {
      if (part === "") return undefined;
      try {
        params[segment.param] = decodeURIComponent(part);
      } catch {
        return undefined;
      }
    }
  }
  return params;
}

function specificity(entry: RouteEntry): number {
  return entry.segments.reduce((n, s, i) => n + ("literal" in s ? 2 ** (16 - i) : 0), 0);
}
