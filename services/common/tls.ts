import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";

/** TLS_CERT_FILE / TLS_KEY_FILE: the certificate (chain) and key every listener serves. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** What a listener needs to serve TLS, read from TlsFiles. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
}

/**
 * Reads the certificate and key and checks that they load and belong together,
 * so that a bad file is refused here with its name, and not later, at the
 * first handshake, with an OpenSSL code.
 */
export function readTlsFiles(files: TlsFiles): TlsMaterial {
  const cert = readPem("TLS_CERT_FILE", files.certFile);
  const key = readPem("TLS_KEY_FILE", files.keyFile);
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    const reason = (error as Error).message;
    if (/key values mismatch/i.test(reason)) {
      throw new Error(
        `TLS_KEY_FILE ${files.keyFile} is not the key of the certificate in TLS_CERT_FILE ${files.certFile}`,
      );
    }
    throw new Error(`TLS_CERT_FILE ${files.certFile} / TLS_KEY_FILE ${files.keyFile} cannot be used: ${reason}`);
  }
  return { cert, key };
}

/** TLS_CA_FILE: the CA bundle internal gRPC clients verify their peers against. */
export function readCaFile(path: string): Buffer {
  return readPem("TLS_CA_FILE", path);
}

function readPem(variable: string, path: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new Error(`${variable} ${path} cannot be read (${code})`);
  }
  if (!bytes.includes("-----BEGIN ")) throw new Error(`${variable} ${path} holds no PEM block`);
  return bytes;
}
