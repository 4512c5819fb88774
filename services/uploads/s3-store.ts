import { createHash, randomUUID } from "node:crypto";

import { pipeline } from "node:stream/promises";
import { Client } from "minio";
import { type BlobStore, chunkGuard, createLocalBlobStore } from "./blob-store.js";

export interface S3Settings {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  region: string;
}

/**
 * Blobs in S3 or MinIO (the `minio` client): each chunk is an object of its
 * own, and the merge composes them server-side (a multipart upload whose
 * parts are copied from them), so the parts never come back through this process; the
 * chunk objects are deleted after. The whole-file SHA-256 is taken by
 * streaming the composed object once. Streamed (tus) uploads grow on local
 * disk under `stagingDir` (objects cannot be appended to) and become one
 * object when complete.
 */
export async function createS3BlobStore(settings: S3Settings, stagingDir: string): Promise<BlobStore> {
  const url = new URL(settings.endpoint);
  const client = new Client({
    endPoint: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    useSSL: url.protocol === "https:",
    accessKey: settings.accessKey,
    secretKey: settings.secretKey,
    region: settings.region,
    pathStyle: true,
  });
  const { bucket } = settings;
  if (!(await client.bucketExists(bucket))) await client.makeBucket(bucket, settings.region);
  const staging = createLocalBlobStore(stagingDir);
  const chunkKey = (uploadId: string, n: number) => `uploads/${uploadId}/${n}`;
  const fileKey = (key: string) => `files/${key}`;

  async function chunkKeys(uploadId: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const item of client.listObjectsV2(bucket, `uploads/${uploadId}/`, true)) {
      if (item.name) keys.push(item.name);
    }
    return keys;
  }

  /**
   * One multipart upload whose part n is copied from chunk object n
   * (UploadPartCopy): the bytes stay inside the object store. Chunks are at
   * least 5 MiB but the last, as S3 wants of parts. A failed compose is
   * aborted; one cut off by a crash leaves parts that a bucket lifecycle rule
   * (AbortIncompleteMultipartUpload) removes.
   */
  async function compose(target: string, uploadId: string, total: number): Promise<void> {
    const multipart = await client.initiateNewMultipartUpload(bucket, target, {});
    try {
      const parts: { part: number; etag: string }[] = [];
      for (let n = 1; n <= total; n++) {
        const copied = await client.uploadPart({
          bucketName: bucket,
          objectName: target,
          uploadID: multipart,
          partNumber: n,
          headers: { "x-amz-copy-source": `/${bucket}/${chunkKey(uploadId, n)}` },
        });
        parts.push({ part: n, etag: copied.etag });
      }
      await client.completeMultipartUpload(bucket, target, multipart, parts);
    } catch (error) {
      await client.abortMultipartUpload(bucket, target, multipart).catch(() => undefined);
      throw error;
    }
  }

  async function sha256Of(objectName: string): Promise<{ size: number; sha256: string }> {
    const hash = createHash("sha256");
    let size = 0;
    for await (const piece of await client.getObject(bucket, objectName)) {
      hash.update(piece as Buffer);
      size += (piece as Buffer).length;
    }
    return { size, sha256: hash.digest("hex") };
  }

  return {
    async writeChunk(uploadId, n, body, size, inspect) {
      const guarded = chunkGuard(n, size, inspect);
      // A PUT is all or nothing: a body refused half-way stores no object.
      const put = client.putObject(bucket, chunkKey(uploadId, n), guarded, size);
      try {
        await Promise.all([pipeline(body, guarded), put]);
      } catch (error) {
        // Whichever side failed first, the other must not wait on it: stop the guard, drain the request.
        guarded.destroy();
        if (!body.readableEnded) body.resume();
        throw error;
      }
    },

    appendPart: (uploadId, offset, body, maxBytes, options) =>
      staging.appendPart(uploadId, offset, body, maxBytes, options),

    async merge(uploadId, total) {
      const key = randomUUID().replaceAll("-", "");
      const staged = (await staging.uploadsWithChunks()).includes(uploadId);
      if (staged) {
        // A streamed upload: its one part is on local disk.
        const local = await staging.merge(uploadId, 1);
        await client.putObject(bucket, fileKey(key), await staging.read(local.key), local.size);
        await staging.removeFile(local.key);
        return { key, size: local.size, sha256: local.sha256 };
      }
      await compose(fileKey(key), uploadId, total);
      return { key, ...(await sha256Of(fileKey(key))) };
    },

    async read(key, range) {
      return range
        ? client.getPartialObject(bucket, fileKey(key), range.start, range.end - range.start + 1)
        : client.getObject(bucket, fileKey(key));
    },

    async removeFile(key) {
      await client.removeObject(bucket, fileKey(key));
    },

    async removeUpload(uploadId) {
      await staging.removeUpload(uploadId);
      const keys = await chunkKeys(uploadId);
      if (keys.length > 0) await client.removeObjects(bucket, keys);
    },

    async uploadsWithChunks() {
      const ids = new Set(await staging.uploadsWithChunks());
      for await (const item of client.listObjectsV2(bucket, "uploads/", false)) {
        const id = item.prefix?.split("/")[1];
        if (id) ids.add(id);
      }
      return [...ids];
    },

    async fileExists(key) {
      return client.statObject(bucket, fileKey(key)).then(
        () => true,
        () => false,
      );
    },
  };
}
