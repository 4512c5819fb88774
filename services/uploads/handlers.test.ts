import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { DirectoryService } from "../../gen/converger/v1/conversations_pb.js";
import { UploadState, UploadsService } from "../../gen/converger/v1/uploads_pb.js";
import type { Principal } from "../common/access/context.js";
import { createPrincipalTransports } from "../common/access/principal-transport.js";
import { loadConfig } from "../common/config.js";
import { createConversationOwner } from "./conversation-owner.js";
import { uploadsImpl } from "./handlers.js";
import type { FileRow, UploadRow, UploadStore } from "./store.js";

const TENANT = randomUUID();
const OTHER = randomUUID();
const CONVERSATION = randomUUID();
const CHUNK = 1000;
const QUOTA = 10_000;
const key = (tenantId = TENANT): Principal => ({ kind: "api_key", tenantId });
const user = (userId: string, conversationId = CONVERSATION): Principal => ({
  kind: "end_user",
  tenantId: TENANT,
  userId,
  userName: "",
  conversationId,
  channelId: "",
});

function setup() {
  const uploads = new Map<string, UploadRow>();
  const files = new Map<string, FileRow>();
  let merges = 0;
  const owned = (tenantId: string, id: string) =>
    uploads.get(id)?.tenant_id === tenantId ? uploads.get(id) : undefined;
  // What the upload tables hold, as far as these handlers read and write them.
  const store: Partial<UploadStore> = {
    async create(u, quotaBytes) {
      const used = [...uploads.values()]
        .filter((r) => r.tenant_id === u.tenantId)
        .reduce((n, r) => n + BigInt(r.size), 0n);
      if (used + u.size > quotaBytes) return "over_quota";
      const now = new Date();
      const row: UploadRow = {
        id: randomUUID(),
        tenant_id: u.tenantId,
        uploader: u.uploader,
        conversation_id: u.conversationId,
        filename: u.filename,
        size: String(u.size),
        content_type: u.contentType,
        declared_sha256: u.declaredSha256,
        chunk_size: String(u.chunkSize),
        total_chunks: u.totalChunks,
        received: Array(u.totalChunks).fill(false),
        status: "UPLOADING",
        error: null,
        file_id: null,
        tus_offset: null,
        created_at: now,
        updated_at: now,
      };
      uploads.set(row.id, row);
      return row;
    },
    get: async (tenantId, id) => owned(tenantId, id),
    async complete(tenantId, id) {
      const row = owned(tenantId, id);
      if (!row) return undefined;
      const missing = row.received.flatMap((got, i) => (got ? [] : [i + 1]));
      if (row.status === "UPLOADING" && missing.length === 0) row.status = "MERGING";
      return { row, missing: row.status === "UPLOADING" ? missing : [] };
    },
    file: async (tenantId, id) => (files.get(id)?.tenant_id === tenantId ? files.get(id) : undefined),
    filesOf: async (tenantId, ids, conversationId) =>
      [...files.values()].filter(
        (f) =>
          f.tenant_id === tenantId && ids.includes(f.id) && (!conversationId || f.conversation_id === conversationId),
      ),
  };
  // The conversations service, owner of conversations: the uploads service asks it whose one is.
  const conversations = createRouterTransport(({ rpc }) =>
    rpc(DirectoryService.method.getConversationRoute, (req) =>
      req.conversationId === CONVERSATION
        ? { found: true, tenantId: TENANT, channelId: randomUUID() }
        : { found: false },
    ),
  );
  const config = loadConfig({
    UPLOAD_CHUNK_BYTES: String(CHUNK),
    TENANT_STORAGE_QUOTA_BYTES: String(QUOTA),
    UPLOAD_MAX_BYTES: "5000",
  });
  const impl = uploadsImpl({
    uploads: store as UploadStore,
    config,
    onMergeQueued: () => merges++,
    conversationOwner: createConversationOwner(conversations, config.internalToken),
  });
  const as = createPrincipalTransports((router) => router.service(UploadsService, impl));
  const addFile = (conversationId: string | null, tenantId = TENANT) => {
    const row: FileRow = {
      id: randomUUID(),
      tenant_id: tenantId,
      upload_id: randomUUID(),
      filename: "a.pdf",
      size: "10",
      content_type: "application/pdf",
      sha256: "ab".repeat(32),
      storage_key: "k",
      created_at: new Date(),
      conversation_id: conversationId,
    };
    files.set(row.id, row);
    return row.id;
  };
  const receive = (id: string, ...chunks: number[]) => {
    for (const n of chunks) (uploads.get(id) as UploadRow).received[n - 1] = true;
  };
  return {
    client: (p: Principal = key()) => createClient(UploadsService, as(p)),
    addFile,
    receive,
    merges: () => merges,
  };
}

async function failureOf(call: Promise<unknown>) {
  const error = await call.then(
    () => undefined,
    (e: unknown) => ConnectError.from(e),
  );
  if (!error) throw new Error("the call succeeded");
  return { code: error.code, message: error.rawMessage };
}

const pdf = (size: bigint, extra: object = {}) => ({
  filename: "report.pdf",
  size,
  contentType: "application/pdf",
  ...extra,
});

describe("UploadsService handlers", () => {
  it("splits an upload into chunks of the configured size and reports progress", async () => {
    const s = setup();
    const started = await s.client().initiateUpload(pdf(2500n));
    expect(started).toMatchObject({ chunkSize: BigInt(CHUNK), totalChunks: 3 });
    s.receive(started.uploadId, 1, 3);
    const status = await s.client().getUploadStatus({ uploadId: started.uploadId });
    expect(status).toMatchObject({
      status: UploadState.UPLOADING,
      chunksReceived: [1, 3],
      percent: 66.67,
      size: 2500n,
    });
  });

  it("lists missing chunks on complete, then queues the merge once all are in", async () => {
    const s = setup();
    const { uploadId } = await s.client().initiateUpload(pdf(2500n));
    s.receive(uploadId, 2);
    expect(await failureOf(s.client().completeUpload({ uploadId }))).toEqual({
      code: Code.FailedPrecondition,
      message: "missing chunks: 1,3",
    });
    expect(s.merges()).toBe(0);
    s.receive(uploadId, 1, 3);
    expect((await s.client().completeUpload({ uploadId })).status).toBe(UploadState.MERGING);
    expect(s.merges()).toBe(1);
  });

  it("refuses bad declarations with the field named, and a full quota with resource exhausted", async () => {
    const s = setup();
    expect((await failureOf(s.client().initiateUpload(pdf(6000n)))).message).toBe("size: must be at most 5000 bytes");
    expect(
      (await failureOf(s.client().initiateUpload(pdf(10n, { contentType: "application/x-msdownload" })))).message,
    ).toBe("content_type: is not an allowed type");
    expect((await failureOf(s.client().initiateUpload(pdf(10n, { sha256: "abc" })))).code).toBe(Code.InvalidArgument);
    await s.client().initiateUpload(pdf(5000n));
    await s.client().initiateUpload(pdf(5000n));
    expect((await failureOf(s.client().initiateUpload(pdf(1n)))).code).toBe(Code.ResourceExhausted);
    // Another tenant's quota is its own.
    expect((await s.client(key(OTHER)).initiateUpload(pdf(1n))).totalChunks).toBe(1);
  });

  it("answers another tenant's conversation and upload as not found", async () => {
    const s = setup();
    expect(
      (await failureOf(s.client(key(OTHER)).initiateUpload(pdf(10n, { conversationId: CONVERSATION })))).code,
    ).toBe(Code.NotFound);
    expect((await failureOf(s.client().initiateUpload(pdf(10n, { conversationId: randomUUID() })))).code).toBe(
      Code.NotFound,
    );
    const { uploadId } = await s.client().initiateUpload(pdf(10n, { conversationId: CONVERSATION }));
    expect((await failureOf(s.client(key(OTHER)).getUploadStatus({ uploadId }))).code).toBe(Code.NotFound);
    expect((await failureOf(s.client(key(OTHER)).completeUpload({ uploadId }))).code).toBe(Code.NotFound);
  });

  it("makes end users upload into their own conversation and see only their own uploads", async () => {
    const s = setup();
    const alice = s.client(user("alice"));
    expect((await failureOf(alice.initiateUpload(pdf(10n)))).message).toBe(
      "conversation_id: is required for client tokens",
    );
    expect((await failureOf(alice.initiateUpload(pdf(10n, { conversationId: randomUUID() })))).code).toBe(
      Code.NotFound,
    );
    const { uploadId } = await alice.initiateUpload(pdf(10n, { conversationId: CONVERSATION }));
    expect((await alice.getUploadStatus({ uploadId })).uploadId).toBe(uploadId);
    expect((await failureOf(s.client(user("bob")).getUploadStatus({ uploadId }))).code).toBe(Code.NotFound);
    // The tenant's server sees every upload of the tenant.
    expect((await s.client().getUploadStatus({ uploadId })).uploadId).toBe(uploadId);
  });

  it("shows files to their tenant, and to end users only those of their conversation", async () => {
    const s = setup();
    const inConversation = s.addFile(CONVERSATION);
    const elsewhere = s.addFile(null);
    expect((await s.client().getFile({ fileId: elsewhere })).filename).toBe("a.pdf");
    expect((await s.client(user("alice")).getFile({ fileId: inConversation })).id).toBe(inConversation);
    expect((await failureOf(s.client(user("alice")).getFile({ fileId: elsewhere }))).code).toBe(Code.NotFound);
    expect((await failureOf(s.client(key(OTHER)).getFile({ fileId: inConversation }))).code).toBe(Code.NotFound);
    const described = await s
      .client({ kind: "internal" })
      .describeFiles({ tenantId: TENANT, fileIds: [inConversation, elsewhere], conversationId: CONVERSATION });
    expect(described.files.map((f) => f.id)).toEqual([inConversation]);
    expect((await failureOf(s.client({ kind: "operator" }).getFile({ fileId: elsewhere }))).code).toBe(
      Code.PermissionDenied,
    );
  });
});
