/** Typed listeners: `on` returns the function that removes the listener. */
export function createEmitter<Events extends { [name: string]: unknown }>(
  onListenerError: (error: unknown, event: keyof Events) => void,
) {
  const listeners = new Map<keyof Events, Set<(value: never) => void>>();
  return {
    on<K extends keyof Events>(event: K, handler: (value: Events[K]) => void): () => void {
      const set = listeners.get(event) ?? new Set();
      listeners.set(event, set);
      const entry = handler as (value: never) => void;
      set.add(entry);
      return () => set.delete(entry);
    },
    emit<K extends keyof Events>(event: K, value: Events[K]): void {
      for (const handler of [...(listeners.get(event) ?? [])]) {
        // One failing listener must not keep the others, or the stream, from their frames.
        try {
          (handler as (value: Events[K]) => void)(value);
        } catch (error) {
          onListenerError(error, event);
        }
      }
    },
  };
}
