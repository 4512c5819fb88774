import type { Config } from "../common/config.js";
import type { Logger } from "../common/obs/logger.js";
import { readTlsFiles, type TlsMaterial } from "../common/tls.js";

/** The TLS listeners of a process, and the SIGHUP reload that moves them all to the files' new certificate. */
export interface TlsReloader {
  add(name: string, setTls: (material: TlsMaterial) => void): void;
  /** Each listener in turn; one that fails keeps its certificate and the others still move on. */
  reload(): void;
}

export function createTlsReloader(config: Config, log: Logger): TlsReloader {
  const listeners: { name: string; setTls(material: TlsMaterial): void }[] = [];
  return {
    add(name, setTls) {
      listeners.push({ name, setTls });
    },
    reload() {
      if (!config.tls) return void log.warn("SIGHUP: TLS is off (TLS_CERT_FILE unset); nothing to reload");
      let material: TlsMaterial;
      try {
        material = readTlsFiles(config.tls);
      } catch (error) {
        const reason = (error as Error).message;
        return void log.error({ reason }, "TLS reload failed; keeping the current certificate");
      }
      for (const listener of listeners) {
        try {
          listener.setTls(material);
          log.info({ listener: listener.name }, "TLS certificate reloaded");
        } catch (error) {
          const reason = (error as Error).message;
          log.error({ listener: listener.name, reason }, "TLS reload failed; keeping the current certificate");
        }
      }
    },
  };
}
