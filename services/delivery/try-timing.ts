import type { OutboundHttp } from "../channel-adapters/index.js";
import type { TryTiming } from "./store/attempts.js";

/**
 * Starts the clock of one try and wraps the adapters' HTTP for it, keeping
 * the status of its last answer: adapters report failures as messages, and
 * the timeline wants the provider's status as a number.
 */
export function startTry(http: OutboundHttp) {
  const startedAt = new Date();
  let httpStatus: number | undefined;
  const recording: OutboundHttp = {
    async request(url, init) {
      const res = await http.request(url, init);
      httpStatus = res.status;
      return res;
    },
  };
  return { http: recording, finish: (): TryTiming => ({ startedAt, finishedAt: new Date(), httpStatus }) };
}
