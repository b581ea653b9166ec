#!/usr/bin/env node
// Usage: node check.js FILE.md
//
// Renders every math span of a Markdown file with KaTeX (throwOnError, strict) and stops
// at the first that does not render, reporting its line, KaTeX's message and the TeX.
// Math is found as GitHub, Jupyter and KaTeX-based sites find it: a "$$" line opens a
// display that the next "$$" line closes (a blank line inside would end it), and
// $...$ in other lines is inline math (not inside code, fenced code or HTML comments;
// "\$" is a literal dollar). An unmatched "$" is an error too.
// Exit: 0 all rendered (prints how many), 1 a span failed, 2 usage or unreadable file.
"use strict";

const fs = require("fs");
const katex = require("katex");

class MathError extends Error {
  constructor(line, message) {
    super(message);
    this.line = line;
  }
}

function inlineSpans(line, number, out) {
  let k = 0;
  while (k < line.length) {
    const ch = line[k];
    if (ch === "\\") { k += 2; continue; }
    if (ch === "`") {
      const run = line.slice(k).match(/^`+/)[0];
      const end = line.indexOf(run, k + run.length);
      k = end < 0 ? k + run.length : end + run.length;
      continue;
    }
    if (ch !== "$") { k += 1; continue; }
    if (line[k + 1] === "$") throw new MathError(number, `"$$" inside a line`);
    let end = k + 1;
    while (end < line.length && line[end] !== "$") end += line[end] === "\\" ? 2 : 1;
    if (end >= line.length) throw new MathError(number, `unmatched "$"`);
    const tex = line.slice(k + 1, end);
    if (/^\s|\s$/.test(tex)) {
      throw new MathError(number, `inline math starts or ends with a space: $${tex}$`);
    }
    out.push({ tex, display: false, line: number });
    k = end + 1;
  }
}

function spans(text) {
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();  // the newline ending the last line
  const out = [];
  let fence = null;
  let display = null;
  let comment = false;
  lines.forEach((line, i) => {
    const number = i + 1;
    const trimmed = line.trim();
    if (display) {
      if (trimmed === "$$") {
        out.push({ tex: display.body.join("\n"), display: true, line: display.start });
        display = null;
      } else if (trimmed === "") {
        throw new MathError(number, `blank line inside the display opened on line ` +
                                    `${display.start}`);
      } else {
        display.body.push(line);
      }
      return;
    }
    if (fence) {
      if (trimmed.startsWith(fence)) fence = null;
      return;
    }
    const opening = line.match(/^ {0,3}(`{3,}|~{3,})/);
    if (opening) { fence = opening[1]; return; }
    if (comment || trimmed.startsWith("<!--")) {
      comment = !line.includes("-->");
      return;
    }
    if (trimmed === "$$") { display = { start: number, body: [] }; return; }
    const oneLine = trimmed.match(/^\$\$(.+)\$\$$/);
    if (oneLine) { out.push({ tex: oneLine[1], display: true, line: number }); return; }
    inlineSpans(line, number, out);
  });
  if (display) throw new MathError(display.start, "display never closed");
  return out;
}

function main(argv) {
  if (argv.length !== 1) {
    process.stderr.write("usage: node check.js FILE.md\n");
    return 2;
  }
  const file = argv[0];
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    process.stderr.write(`${file}: ${error.message}\n`);
    return 2;
  }
  let found;
  try {
    found = spans(text);
  } catch (error) {
    if (!(error instanceof MathError)) throw error;
    process.stderr.write(`${file}:${error.line}: ${error.message}\n`);
    return 1;
  }
  for (const span of found) {
    try {
      katex.renderToString(span.tex, { displayMode: span.display, throwOnError: true,
                                       strict: "error" });
    } catch (error) {
      process.stderr.write(`${file}:${span.line}: ${error.message}\n    ${span.tex}\n`);
      return 1;
    }
  }
  process.stdout.write(`${file}: ${found.length} math spans rendered with KaTeX ` +
                       `${katex.version}\n`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
