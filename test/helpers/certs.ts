import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:tls";

/** A throw-away CA made with the openssl CLI, issuing server certificates for 127.0.0.1 and localhost. */
export interface TestCa {
  dir: string;
  caFile: string;
  ca: Buffer;
  /** A new key and a certificate for it with this common name; returns their file paths. */
  issue(commonName: string): { certFile: string; keyFile: string };
}

const OPENSSL = "openssl";

export function createTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), "converger-tls-"));
  const caFile = join(dir, "ca.pem");
  const caKey = join(dir, "ca.key");
  openssl(["req", "-x509", ...ecKey(caKey), "-out", caFile, "-days", "2", "-subj", "/CN=Converger Test CA"]);
  const extFile = join(dir, "server.ext");
  writeFileSync(extFile, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  let serial = 0;
  return {
    dir,
    caFile,
    ca: readFileSync(caFile),
    issue(commonName) {
      const name = `server-${++serial}`;
      const keyFile = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const certFile = join(dir, `${name}.pem`);
      openssl(["req", "-new", ...ecKey(keyFile), "-out", csr, "-subj", `/CN=${commonName}`]);
      openssl(
        ["x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-set_serial", String(serial)].concat([
          "-out",
          certFile,
          "-days",
          "2",
          "-extfile",
          extFile,
        ]),
      );
      return { certFile, keyFile };
    },
  };
}

/** Overwrites the served files in place, as cert-manager or certbot do before signalling the process. */
export function installCertificate(
  from: { certFile: string; keyFile: string },
  to: { certFile: string; keyFile: string },
) {
  copyFileSync(from.certFile, to.certFile);
  copyFileSync(from.keyFile, to.keyFile);
}

/** The common name of the certificate a fresh TLS connection to the port is served (verified against `ca`). */
export function servedCommonName(port: number, ca: Buffer, alpn?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, ca, ...(alpn ? { ALPNProtocols: [alpn] } : {}) }, () => {
      const subject = socket.getPeerCertificate().subject;
      socket.end();
      resolve(String(subject.CN));
    });
    socket.once("error", reject);
  });
}

function ecKey(keyFile: string): string[] {
  return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyFile];
}

function openssl(args: string[]): void {
  execFileSync(OPENSSL, args, { stdio: ["ignore", "ignore", "pipe"] });
}
