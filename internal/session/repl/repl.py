# runtimed's Python repl: runs cells in one namespace, each sent as a JSON
# line {"code": ..., "stdin": ..., "end": ...} on the interpreter's stdin;
# after each it writes the cell's end marker ("end", a word of its own)
# with the cell's status and the repr of its last expression to stdout,
# and the marker alone to stderr.
import ast, io, json, sys, traceback

proto = sys.stdin.buffer
namespace = {"__name__": "__main__", "__builtins__": __builtins__}

def run(cell):
    tree = ast.parse(cell.get("code", ""), "<cell>", "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<cell>", "exec"), namespace)
    if last is not None:
        value = eval(compile(last, "<cell>", "eval"), namespace)
        if value is not None:
            return repr(value)
    return None

while True:
    line = proto.readline()
    if not line:
        break
    cell = json.loads(line)
    marker = "\x1e" + cell["end"]
    sys.stdin = io.StringIO(cell.get("stdin", ""))
    status, result = "ok", None
    try:
        result = run(cell)
    except SystemExit as e:
        if e.code not in (None, 0):
            status = "error"
    except BaseException as e:
        status = "error"
        tb = e.__traceback__
        # Leave out the repl's own frames.
        while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
            tb = tb.tb_next
        traceback.print_exception(type(e), e, tb)
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    sys.stderr.flush()
    if result is not None and len(result) > 65536:
        result = result[:65536] + "..."
    sys.__stdout__.write(marker + json.dumps({"status": status, "result": result}) + "\n")
    sys.__stdout__.flush()
    sys.__stderr__.write(marker + "\n")
    sys.__stderr__.flush()
