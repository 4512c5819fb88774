import type { DescService } from "@bufbuild/protobuf";
import { type ConnectRouter, createClient, type HandlerContext, type Transport } from "@connectrpc/connect";

// Headers that belong to one hop's protocol, not to the call.
const HOP_HEADERS =
  /^(content-type|content-length|connection|te|host|accept-encoding|grpc-.*|connect-.*|user-agent|:.*)$/i;

/**
 * Registers services hosted in other processes on this gateway's router, so
 * Connect, gRPC and gRPC-Web clients reach them through the gateway port.
 * Authentication happens where the service runs.
 */
export function proxyRoutes(router: ConnectRouter, remote: { desc: DescService; transport: Transport }[]): void {
  for (const { desc, transport } of remote) {
    const client = createClient(desc, transport) as unknown as Record<
      string,
      (req: unknown, options: unknown) => unknown
    >;
    const impl: Record<string, unknown> = {};
    for (const method of desc.methods) {
      const call = client[method.localName] as (req: unknown, options: unknown) => unknown;
      if (method.methodKind === "unary") {
        impl[method.localName] = (req: unknown, ctx: HandlerContext) => call(req, callOptions(ctx));
      } else if (method.methodKind === "server_streaming") {
        impl[method.localName] = (req: unknown, ctx: HandlerContext) => call(req, callOptions(ctx));
      }
    }
    router.service(desc, impl as never);
  }
}

function callOptions(ctx: HandlerContext) {
  const headers = new Headers();
  for (const [name, value] of ctx.requestHeader) if (!HOP_HEADERS.test(name)) headers.set(name, value);
  return {
    headers,
    signal: ctx.signal,
    onHeader: (h: Headers) => {
      for (const [k, v] of h) if (!HOP_HEADERS.test(k)) ctx.responseHeader.set(k, v);
    },
  };
}
