// runtimed's JavaScript repl: runs cells in one global scope, each sent as
// a JSON line {"code": ..., "end": ...} on the interpreter's stdin; after
// each it writes the cell's end marker ("end", a word of its own) with the
// cell's status and the inspected completion value to stdout, and the
// marker alone to stderr.
const fs = require('fs');
const vm = require('vm');
const util = require('util');
globalThis.require = require;
let pending = Buffer.alloc(0);
function readLine() {
  for (;;) {
    const nl = pending.indexOf(10);
    if (nl >= 0) {
      const line = pending.subarray(0, nl).toString();
      pending = pending.subarray(nl + 1);
      return line;
    }
    const buf = Buffer.alloc(65536);
    let n;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') continue;
      if (e.code === 'EOF') return null;
      throw e;
    }
    if (n === 0) return null;
    pending = Buffer.concat([pending, buf.subarray(0, n)]);
  }
}
for (;;) {
  const line = readLine();
  if (line === null) break;
  const cell = JSON.parse(line);
  const marker = '\x1e' + cell.end;
  let status = 'ok', result = null;
  try {
    const value = vm.runInThisContext(cell.code || '', { filename: '<cell>' });
    if (value !== undefined) result = util.inspect(value).slice(0, 65536);
  } catch (e) {
    status = 'error';
    // Leave out the repl's own frames.
    const text = e && typeof e.stack === 'string'
      ? e.stack.split('\n').filter((l) => !/^\s+at /.test(l) || l.includes('<cell>')).join('\n')
      : util.inspect(e);
    fs.writeSync(2, 'Uncaught ' + text + '\n');
  }
  fs.writeSync(1, marker + JSON.stringify({ status, result }) + '\n');
  fs.writeSync(2, marker + '\n');
}
