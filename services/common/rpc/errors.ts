import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { FieldViolationSchema } from "../../../gen/converger/v1/options_pb.js";
import { HTTP_STATUS_HEADER } from "../access/context.js";

/** A request field failed a check; the message names the field, details list every one. */
export function invalidArgument(violations: { field: string; description: string }[]): ConnectError {
  const message = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  return new ConnectError(
    message,
    Code.InvalidArgument,
    undefined,
    violations.map((v) => ({ desc: FieldViolationSchema, value: create(FieldViolationSchema, v) })),
  );
}

export function invalidField(field: string, description: string): ConnectError {
  return invalidArgument([{ field, description }]);
}

export function notFound(what: string): ConnectError {
  return new ConnectError(`${what} not found`, Code.NotFound);
}

/** A state conflict the caller can resolve (closed conversation, inactive channel): REST 409. */
export function conflict(message: string): ConnectError {
  return new ConnectError(message, Code.FailedPrecondition);
}

/**
 * An error whose REST status is more precise than its code maps to (413 for a
 * full quota, 415 for content that is not what was declared, tus's 460); the
 * gateway answers with it (http-io.ts writeError).
 */
export function withHttpStatus(message: string, code: Code, status: number): ConnectError {
  const error = new ConnectError(message, code);
  error.metadata.set(HTTP_STATUS_HEADER, String(status));
  return error;
}

// invalid_text_representation, invalid_parameter_value, character_not_in_repertoire,
// untranslatable_character, numeric_value_out_of_range, invalid_datetime_format, datetime_field_overflow.
const INVALID_VALUE = new Set(["22P02", "22023", "22021", "22P05", "22003", "22007", "22008"]);

interface PgError {
  code?: string;
}

/**
 * The one place where PostgreSQL errors become API errors. Internals stay out
 * of the message; the original travels as `cause` for the logs.
 */
export function connectErrorFromPg(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  const code = (error as PgError | undefined)?.code ?? "";
  const wrap = (message: string, c: Code) => new ConnectError(message, c, undefined, undefined, error);
  if (code === "23505") return wrap("already exists", Code.AlreadyExists);
  if (code === "23503") return wrap("referenced object not found", Code.NotFound);
  // A value PostgreSQL cannot hold (bad text form, U+0000 in text or jsonb, out of range) is the
  // caller's: requests are checked before (validation.ts, nul.ts, json.ts); this is the backstop.
  if (INVALID_VALUE.has(code)) return wrap("invalid value", Code.InvalidArgument);
  if (code === "40001" || code === "40P01") return wrap("concurrent update, retry", Code.Aborted);
  if (code.startsWith("08") || code === "57P01" || code === "57P03" || code === "53300") {
    return wrap("database unavailable, retry", Code.Unavailable);
  }
  return wrap("internal error", Code.Internal);
}

/** HTTP status of each Connect code on the REST surface (design.md §3). */
const HTTP_STATUS: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  // Conflicts with the object's state (closed, inactive) are 409 on our surface.
  [Code.FailedPrecondition]: 409,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

export function httpStatusForCode(code: Code): number {
  return HTTP_STATUS[code] ?? 500;
}

/** Connect's wire name of a code: "not_found", "invalid_argument", … */
export function codeName(code: Code): string {
  return Code[code].replace(/[A-Z]/g, (c, i: number) => (i ? "_" : "") + c.toLowerCase());
}
