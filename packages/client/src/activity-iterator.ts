import type { Activity } from "../../../gen/converger/v1/conversations_pb.js";
import type { StreamError } from "./stream-error.js";
import type { ConvergerStream } from "./stream-types.js";

/**
 * `for await (const activity of stream)`: the activities emitted from the
 * moment iteration starts, buffered while the loop body runs; ends when the
 * stream closes, throwing the error that stopped it.
 */
export async function* iterateActivities(
  on: ConvergerStream["on"],
  ended: () => { failure: StreamError | undefined } | undefined,
): AsyncGenerator<Activity, void, undefined> {
  const buffer: Activity[] = [];
  let wake = () => {};
  const offActivity = on("activity", (activity) => {
    buffer.push(activity);
    wake();
  });
  const offState = on("state", () => wake());
  try {
    for (;;) {
      const next = buffer.shift();
      const end = next ? undefined : ended();
      if (next) yield next;
      else if (end) {
        if (end.failure) throw end.failure;
        return;
      } else
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
    }
  } finally {
    offActivity();
    offState();
  }
}
