/** Content types accepted unless UPLOAD_ALLOWED_TYPES says otherwise (design.md §3 Files). */
export const DEFAULT_ALLOWED_TYPES = [
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "video/mp4",
  "video/quicktime",
  "video/webm",
  "audio/mpeg",
  "audio/ogg",
  "audio/wav",
  "audio/mp4",
  "application/pdf",
  "text/plain",
  "text/csv",
  "application/msword",
  "application/vnd.ms-excel",
  "application/vnd.ms-powerpoint",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  "application/zip",
  "application/octet-stream",
];

const ascii = (text: string) => [...Buffer.from(text, "latin1")];
type Signature = (head: Buffer) => boolean;
const startsWith =
  (...bytes: number[]): Signature =>
  (head) =>
    bytes.every((b, i) => head[i] === b);
const at =
  (offset: number, text: string): Signature =>
  (head) =>
    head.subarray(offset, offset + text.length).toString("latin1") === text;

const OOXML_OR_ZIP = startsWith(0x50, 0x4b, 0x03, 0x04);
const OLE2 = startsWith(0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1);

/** Declared types whose files open with known bytes: the first chunk must match. */
const SIGNATURES: Record<string, Signature> = {
  "image/png": startsWith(0x89, ...ascii("PNG\r\n\x1a\n")),
  "image/jpeg": startsWith(0xff, 0xd8, 0xff),
  "image/gif": (h) => at(0, "GIF87a")(h) || at(0, "GIF89a")(h),
  "image/webp": (h) => at(0, "RIFF")(h) && at(8, "WEBP")(h),
  "video/mp4": at(4, "ftyp"),
  "video/quicktime": (h) => at(4, "ftyp")(h) || at(4, "moov")(h) || at(4, "mdat")(h) || at(4, "wide")(h),
  "audio/mp4": at(4, "ftyp"),
  "video/webm": startsWith(0x1a, 0x45, 0xdf, 0xa3),
  "audio/ogg": at(0, "OggS"),
  "audio/wav": (h) => at(0, "RIFF")(h) && at(8, "WAVE")(h),
  "audio/mpeg": (h) => at(0, "ID3")(h) || (h[0] === 0xff && ((h[1] ?? 0) & 0xe0) === 0xe0),
  "application/pdf": at(0, "%PDF-"),
  "application/zip": OOXML_OR_ZIP,
  "application/msword": OLE2,
  "application/vnd.ms-excel": OLE2,
  "application/vnd.ms-powerpoint": OLE2,
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": OOXML_OR_ZIP,
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": OOXML_OR_ZIP,
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": OOXML_OR_ZIP,
};

/** What the first bytes actually are, when they are something a browser or OS would run or render. */
function dangerous(head: Buffer): string | undefined {
  if (at(0, "MZ")(head)) return "a Windows executable";
  if (startsWith(0x7f, ...ascii("ELF"))(head)) return "an ELF executable";
  const text = head.toString("latin1").trimStart().slice(0, 256).toLowerCase();
  if (/^(<!doctype html|<html|<script|<body|<iframe)/.test(text)) return "HTML";
  if (/^(<\?xml[^>]*>\s*)?<svg/.test(text)) return "SVG";
  return undefined;
}

/** The media type without parameters, lower case ("Image/PNG; x=y" → "image/png"). */
export function mediaType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

/**
 * Refuses a first chunk whose bytes are not what was declared: a known
 * signature that does not match, or executable/HTML/SVG content declared as
 * anything but a generic binary.
 */
export function checkFirstBytes(declared: string, head: Buffer): string | undefined {
  const type = mediaType(declared);
  const signature = SIGNATURES[type];
  if (signature && !signature(head)) {
    const found = dangerous(head);
    return found ? `the content is ${found}, not ${type}` : `the content does not look like ${type}`;
  }
  if (type !== "application/octet-stream") {
    const found = dangerous(head);
    if (found) return `the content is ${found}, not ${type}`;
  }
  return undefined;
}

/** A display name safe to store and to put in Content-Disposition: no path, no control characters. */
export function sanitizeFilename(name: string): string {
  const base = name.split(/[/\\]/).pop() ?? "";
  const cleaned = base
    // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
    .replace(/[\u0000-\u001f\u007f]/g, "")
    .replace(/^\.+/, "")
    .trim()
    .slice(0, 255);
  return cleaned || "file";
}
