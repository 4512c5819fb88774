import { Code, ConnectError } from "@connectrpc/connect";
import { MissingKeysError } from "./keyring.js";

/** A rewrap refused for missing keys tells the operator which; anything else stays an internal error. */
export function rewrapRefusal(error: unknown): never {
  if (error instanceof MissingKeysError) throw new ConnectError(error.message, Code.FailedPrecondition);
  throw error;
}
