import { describe, expect, it } from "vitest";
import { AuthService } from "../../gen/converger/v1/auth_pb.js";
import { ChannelsService } from "../../gen/converger/v1/channels_pb.js";
import { ConversationsService } from "../../gen/converger/v1/conversations_pb.js";
import { EventsService } from "../../gen/converger/v1/events_pb.js";
import { buildRouteTable } from "./route-table.js";

const table = buildRouteTable(
  [ChannelsService, ConversationsService, EventsService, AuthService],
  [
    {
      method: "PATCH",
      path: "/v1/files/upload/{upload_id}/{chunk_number}",
      bodyLimitBytes: 1,
      handle: () => undefined,
    },
  ],
);

function matched(verb: string, path: string) {
  const m = table.match(verb, path);
  if (!m || "allowed" in m) return undefined;
  return { name: m.entry.kind === "rpc" ? m.entry.method.name : `raw ${m.entry.route.path}`, params: m.params };
}

describe("route table", () => {
  it("binds path parameters by field name, percent-decoded", () => {
    expect(matched("GET", "/v1/conversations/abc%2Fdef/activities")).toEqual({
      name: "ListActivities",
      params: { conversation_id: "abc/def" },
    });
  });

  it("prefers literal segments over parameters", () => {
    expect(matched("POST", "/v1/tokens/refresh")?.name).toBe("RefreshClientToken");
    expect(matched("POST", "/v1/conversations/c1/close")?.name).toBe("CloseConversation");
  });

  it("serves additional bindings (the /events alias)", () => {
    expect(matched("POST", "/events")?.name).toBe("CreateEvent");
    expect(matched("GET", "/v1/events")?.name).toBe("ListEvents");
  });

  it("mixes raw routes into the same table", () => {
    expect(matched("PATCH", "/v1/files/upload/u1/3")).toEqual({
      name: "raw /v1/files/upload/{upload_id}/{chunk_number}",
      params: { upload_id: "u1", chunk_number: "3" },
    });
  });

  it("lists the allowed verbs when only the verb is wrong, and nothing for unknown paths", () => {
    expect(table.match("PUT", "/v1/channels")).toEqual({ allowed: ["POST", "GET"] });
    expect(table.match("GET", "/v1/channels/")).toBeUndefined();
    expect(table.match("GET", "/nope")).toBeUndefined();
  });
});
