// SDK parity: every public name of the TypeScript SDK exists in the Rust SDK and the other way
// round (the style guide: "The TypeScript SDK mirrors the Rust SDK's names"), unless
// `sdk/api-parity-allow.txt` lists it as deliberate, with its reason.
//
// The TypeScript side is read from the declarations `tsc` emitted (`dist/*.d.ts`, built by
// `pretest`), following `index.d.ts`'s exports; the Rust side from the listing
// `cargo test -p waas-sdk --test api_listing` writes into the target dir (it parses the crate's
// source with `syn`), found where the `waas` binary is. Names compare with case and `_`
// ignored: `max_reconnect_attempts` is `maxReconnectAttempts`, `GOING_AWAY` is `goingAway`.
//
// Two kinds of names, each compared as one set per SDK:
// - `type`: exported classes, interfaces, type aliases, functions and constants (Rust: public
//   structs, enums, traits, aliases, functions, constants);
// - `member`: their public fields, methods, getters, options, the fields of inline object types
//   (event payloads), the keys of constant objects, the string literals of union types and
//   constant tuples (event names, error kinds, error codes) (Rust: public fields, methods,
//   associated constants, enum variants and their named fields).
// Members are compared by name alone, not by owner: the SDKs shape some things differently
// (a builder in Rust, an options object in TypeScript) and a name is what a reader looks for.
// The conventions that differ by design are rules here, not allow-list lines:
// - a duration is a `Duration` in Rust and a number of ms in TypeScript: `pingIntervalMs` is
//   `ping_interval` (a trailing `Ms` / `_ms` is ignored);
// - an error is a variant of one `Error` enum in Rust and a class in TypeScript:
//   `DisconnectedError` is `Error::Disconnected`;
// - a TypeScript name may be a wire type Rust users reach as `waas_sdk::protocol::...`
//   (`HistoryPage`, `Member`): the listing's `protocol` lines.
// The allow-list has three kinds of lines: `rust <type|member> <name>: <reason>` and
// `ts <type|member> <name>: <reason>` for a name only one SDK has (a type listed so has its
// members exempt too), and `same <type|member> <rust name> <ts name>: <reason>` for one thing
// named differently on purpose.

import { strict as assert } from "node:assert";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { repo, targetDir } from "./support.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(here, "../dist");
const rustListing = path.join(targetDir, "debug", "waas-sdk-api.txt");
const allowFile = path.join(repo, "sdk", "api-parity-allow.txt");

export const normalise = (name) =>
  name
    .replace(/(?<=[a-z0-9])Ms$|_ms$/, "")
    .replace(/_/g, "")
    .toLowerCase();

// ---- reading .d.ts ----

function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

/** Index of the quote closing the string literal opening at `i`. */
function endOfString(text, i) {
  const end = text.indexOf(text[i], i + 1);
  if (end < 0) throw new Error(`unclosed string literal at ${JSON.stringify(text.slice(i, i + 80))}`);
  return end;
}

/** Index of the bracket closing the one at `open`, counting (), [], {}, <> (not `=>`). */
function closing(text, open) {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '"' || c === "'" || c === "`") {
      i = endOfString(text, i);
      continue;
    }
    if ("([{<".includes(c)) depth++;
    else if (")]}".includes(c) || (c === ">" && text[i - 1] !== "=")) {
      depth--;
      if (depth === 0) return i;
    }
  }
  throw new Error(`unbalanced brackets from ${text.slice(open, open + 80)}`);
}

/** Splits `text` at `sep` (`;` or `|`) where no bracket is open. */
function splitTop(text, sep) {
  const parts = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"' || c === "'" || c === "`") {
      i = endOfString(text, i);
      continue;
    }
    if ("([{<".includes(c)) depth++;
    else if (")]}".includes(c) || (c === ">" && text[i - 1] !== "=")) depth--;
    else if (depth === 0 && (c === sep || (sep === ";" && c === "\n"))) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter(Boolean);
}

/** Public member names of a class or interface body (without its braces). */
function bodyMembers(body) {
  const names = [];
  for (const member of splitTop(body, ";")) {
    if (/^(private|protected|#)/.test(member) || /^constructor\s*\(/.test(member)) continue;
    const m = /^(?:(?:readonly|static|abstract|get|set|async)\s+)*(?:"([^"]+)"|([A-Za-z_$][\w$]*))\??\s*[(:<]/.exec(member);
    if (!m) continue;
    names.push(m[1] ?? m[2]);
    // The fields of an inline object type (an event's payload) are members too.
    const type = member.slice(m[0].length - 1);
    if (type.startsWith(":") && type.slice(1).trim().startsWith("{")) {
      const t = type.slice(1).trim();
      names.push(...bodyMembers(t.slice(1, closing(t, 0))));
    }
  }
  return names;
}

/**
 * Members of a union type: its string literals (`"a" | "b"`), the `type:` / `kind:`
 * discriminants of tagged objects and the objects' other fields.
 */
function unionLiterals(rhs) {
  const names = [];
  for (const part of splitTop(rhs, "|")) {
    const lit = /^"([^"]+)"$/.exec(part);
    if (lit) names.push(lit[1]);
    else if (part.startsWith("{")) {
      const tag = /(?:^|[{;\s])(?:type|kind)\s*:\s*"([^"]+)"/.exec(part);
      if (tag) names.push(tag[1]);
      names.push(...bodyMembers(part.slice(1, closing(part, 0))).filter((n) => !(tag && n === "type") && !(tag && n === "kind")));
    }
  }
  return names;
}

/** Members of an exported constant's type: an object's keys or a tuple's string literals. */
function constMembers(type) {
  const t = type.trim();
  if (t.startsWith("{")) return bodyMembers(t.slice(1, closing(t, 0)));
  const tuple = /^readonly\s*\[([\s\S]*)\]$/.exec(t);
  if (tuple) return [...tuple[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  return [];
}

const parsed = new Map();

/** The declarations and re-exports of one `.d.ts`. */
function parseDts(file) {
  if (parsed.has(file)) return parsed.get(file);
  const text = stripComments(readFileSync(file, "utf8"));
  const decls = new Map(); // name -> members
  const reexports = []; // { names: Map<exported, original> | "*", from }
  const declRe = /^export\s+(?:declare\s+)?(?:abstract\s+)?(class|interface|type|function|const|enum)\s+([A-Za-z_$][\w$]*)/gm;
  for (let m; (m = declRe.exec(text)); ) {
    const [, kind, name] = m;
    let members = [];
    let rest = text.slice(m.index + m[0].length);
    // Skip generic parameters, whose defaults may hold `=` and `:`.
    if (rest.startsWith("<")) rest = rest.slice(closing(rest, 0) + 1);
    if (kind === "class" || kind === "interface" || kind === "enum") {
      const open = rest.indexOf("{");
      members = bodyMembers(rest.slice(open + 1, closing(rest, open)));
    } else if (kind === "type") {
      const eq = rest.indexOf("=");
      const end = splitTop(rest.slice(eq + 1), ";")[0];
      const alternatives = splitTop(end, "|");
      members =
        alternatives.length === 1 && end.startsWith("{") ? bodyMembers(end.slice(1, closing(end, 0))) : unionLiterals(end);
    } else if (kind === "const" && rest.trimStart().startsWith(":")) {
      // `const X: Type;` (not `const X = "literal";`, which has no members).
      members = constMembers(splitTop(rest.trimStart().slice(1), ";")[0]);
    }
    decls.set(name, members);
  }
  const reRe = /^export\s+(?:type\s+)?(\*|\{[^}]*\})\s+from\s+"([^"]+)"/gm;
  for (let m; (m = reRe.exec(text)); ) {
    const from = path.resolve(path.dirname(file), m[2].replace(/\.js$/, ".d.ts"));
    if (m[1] === "*") reexports.push({ names: "*", from });
    else {
      const names = new Map();
      for (const spec of m[1].slice(1, -1).split(",")) {
        const s = spec.trim().replace(/^type\s+/, "");
        if (!s) continue;
        const [orig, alias] = s.split(/\s+as\s+/);
        names.set(alias ?? orig, orig);
      }
      reexports.push({ names, from });
    }
  }
  const result = { decls, reexports };
  parsed.set(file, result);
  return result;
}

/** Every name a `.d.ts` exports, with its members, following re-exports. */
function exportsOf(file) {
  const { decls, reexports } = parseDts(file);
  const out = new Map(decls);
  for (const { names, from } of reexports) {
    const theirs = exportsOf(from);
    if (names === "*") for (const [n, m] of theirs) out.set(n, m);
    else
      for (const [exported, orig] of names) {
        assert.ok(theirs.has(orig), `${path.basename(file)} re-exports ${orig} that ${path.basename(from)} does not declare`);
        out.set(exported, theirs.get(orig));
      }
  }
  return out;
}

/** The TypeScript SDK's public names: `type X` and `member X.y` lines. */
export function typescriptApi() {
  const lines = [];
  for (const [name, members] of exportsOf(path.join(dist, "index.d.ts"))) {
    lines.push(`type ${name}`);
    for (const m of members) lines.push(`member ${name}.${m}`);
  }
  return lines;
}

// ---- comparing ----

/**
 * `kind -> normalised name -> qualified names` of a listing, with the owner of each member;
 * `protocol` lines (Rust's `waas_sdk::protocol`) go to `protocol.type` and `protocol.member`.
 */
function index(lines) {
  const out = { type: new Map(), member: new Map(), protocol: { type: new Map(), member: new Map() } };
  for (const line of lines) {
    const words = line.split(" ");
    const into = words[0] === "protocol" ? out.protocol : out;
    const [kind, qualified] = words.slice(-2);
    const dot = qualified.indexOf(".");
    const name = kind === "member" ? qualified.slice(dot + 1) : qualified;
    const key = normalise(name);
    if (!into[kind].has(key)) into[kind].set(key, []);
    into[kind].get(key).push({ qualified, owner: kind === "member" ? qualified.slice(0, dot) : undefined });
  }
  return out;
}

/** `sdk/api-parity-allow.txt`, as described at the top of this file. */
function readAllowList() {
  const only = [];
  const same = [];
  readFileSync(allowFile, "utf8")
    .split("\n")
    .forEach((line, i) => {
      if (!line.trim() || line.startsWith("#")) return;
      const m = /^(rust|ts) (type|member) (\S+): (\S.*)$/.exec(line);
      const s = /^same (type|member) (\S+) (\S+): (\S.*)$/.exec(line);
      assert.ok(
        m || s,
        `${allowFile}:${i + 1}: want "<rust|ts> <type|member> <name>: <reason>" or ` +
          `"same <type|member> <rust name> <ts name>: <reason>", got ${JSON.stringify(line)}`,
      );
      if (m) only.push({ side: m[1], kind: m[2], name: m[3], key: normalise(m[3]), line: i + 1 });
      else same.push({ kind: s[1], rust: s[2], ts: s[3], line: i + 1 });
    });
  return { only, same };
}

test("the Rust and TypeScript SDKs have the same public names, or the allow-list says why not", () => {
  assert.ok(
    existsSync(rustListing),
    `no Rust API listing at ${rustListing}: run \`cargo test -p waas-sdk --test api_listing\` (part of \`cargo test --workspace\`) first`,
  );
  const rust = index(readFileSync(rustListing, "utf8").split("\n").filter(Boolean));
  const ts = index(typescriptApi());
  // The extraction must see the SDK: a few names every version has.
  for (const [kind, name] of [
    ["type", "client"],
    ["member", "publish"],
    ["member", "maxreconnectattempts"],
    ["member", "resubscribefailed"],
    ["member", "badrequest"],
    ["member", "goingaway"],
  ]) {
    assert.ok(ts[kind].has(name), `TypeScript listing lacks ${kind} ${name}`);
    assert.ok(rust[kind].has(name), `Rust listing lacks ${kind} ${name}`);
  }

  const { only, same } = readAllowList();
  const problems = [];
  // `same` lines: the TypeScript name counts as the Rust one.
  for (const a of same) {
    const [rk, tk] = [normalise(a.rust), normalise(a.ts)];
    if (!rust[a.kind].has(rk) && !rust.protocol[a.kind].has(rk)) {
      problems.push(`allow-list line ${a.line}: Rust has no ${a.kind} ${a.rust}`);
    }
    if (!ts[a.kind].has(tk)) problems.push(`allow-list line ${a.line}: TypeScript has no ${a.kind} ${a.ts}`);
    if (rk === tk || !ts[a.kind].has(tk)) continue;
    ts[a.kind].set(rk, [...(ts[a.kind].get(rk) ?? []), ...ts[a.kind].get(tk)]);
    ts[a.kind].delete(tk);
  }
  // TypeScript's `FooError` classes are Rust's `Error::Foo` variants.
  const isVariant = (w) => w.owner === "Error" && /^[A-Z]/.test(w.qualified.split(".").pop());
  for (const [key, where] of [...ts.type]) {
    const variant = /^[A-Z]\w*Error$/.test(where[0].qualified) && key.slice(0, -"error".length);
    if (variant && !rust.type.has(key) && rust.member.get(variant)?.some(isVariant)) {
      ts.type.delete(key);
      ts.member.set(variant, [...(ts.member.get(variant) ?? []), ...where]);
    }
  }
  const allowed = (side, kind, key) => only.find((a) => a.side === side && a.kind === kind && a.key === key);
  for (const kind of ["type", "member"]) {
    for (const [side, mine, theirs, also] of [
      ["rust", rust[kind], ts[kind], new Map()],
      ["ts", ts[kind], rust[kind], rust.protocol[kind]],
    ]) {
      for (const [key, where] of mine) {
        if (theirs.has(key) || also.has(key) || allowed(side, kind, key)) continue;
        // Members of a type deliberately in one SDK only come with it.
        if (where.every((w) => w.owner && allowed(side, "type", normalise(w.owner)))) continue;
        const sdk = side === "rust" ? "Rust" : "TypeScript";
        const name = where[0].qualified.split(".").pop();
        problems.push(`${side} ${kind} ${name}: only in ${sdk} (${where.map((w) => w.qualified).join(", ")})`);
      }
    }
  }
  for (const a of only) {
    const mine = (a.side === "rust" ? rust : ts)[a.kind];
    const theirs = (a.side === "rust" ? ts : rust)[a.kind];
    if (!mine.has(a.key)) problems.push(`allow-list line ${a.line}: ${a.side} has no ${a.kind} ${a.name} any more: remove the line`);
    else if (theirs.has(a.key)) problems.push(`allow-list line ${a.line}: ${a.kind} ${a.name} is in both SDKs now: remove the line`);
  }
  assert.deepEqual(
    problems,
    [],
    `SDK names differ. Give both SDKs the same name (camelCase in TypeScript, snake_case in Rust), ` +
      `or add a line "<side> <kind> <name>: <reason>" to ${path.relative(repo, allowFile)}:\n  ${problems.join("\n  ")}`,
  );
});
