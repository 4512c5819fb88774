import { PACING_CONFIG } from "../adapter.js";
import { messagingPlatformAdapter } from "../graph.js";

/** Instagram Messaging (Graph API): `/{instagram_account_id}/messages` out; messaging webhooks in. */
export const instagram = messagingPlatformAdapter({
  type: "instagram",
  provider: "Instagram",
  object: "instagram",
  accountField: "instagram_account_id",
  tokenField: "access_token",
  config: {
    instagram_account_id: { kind: "string", required: true },
    access_token: { kind: "string", required: true, secret: true },
    base_url: { kind: "url" },
    ...PACING_CONFIG,
  },
});
