#!/usr/bin/env bash
# local/check-observability.sh [--live PROMETHEUS_URL] [--allowlist FILE] [--verbose]
#
# Checks the dashboards and rules of infra/observability (docs/observability.md):
#  1. every dashboard in infra/observability/grafana/dashboards/*.json parses, has a uid, a
#     title, unique panel ids and Prometheus targets on the `prometheus` datasource; every metric
#     named in a panel or rule is one the functions export (METRIC_NAMES of
#     crates/tradeflow-telemetry/src/lib.rs, histograms as _bucket/_sum/_count) or a recording
#     rule of ours;
#  2. every panel expression parses: they are written as recording rules into a temporary rule
#     file and run through `promtool check rules`;
#  3. `promtool check rules infra/observability/rules/*.yml` and
#     `promtool test rules infra/observability/tests/*.test.yml`;
#     `docker-compose -f local/compose.yaml config -q` (the trixie binary local/metrics.sh
#     install extracts), `promtool check config` of infra/observability/prometheus.yml, and the
#     collector and Grafana provisioning files parse as YAML (when PyYAML is there);
#  4. with --live URL, against a running Prometheus:
#     - every panel expression and every recording rule returns data (a non-empty result that is
#       not only NaN);
#     - every alert: its expression with the threshold comparisons taken off (`X > 0.1` -> `X`,
#       both sides of `and`/`or`/`unless`, `absent*()` left out) returns data, and every series
#       selector in it, over the range it is used with (`count_over_time(sel[range])`, or `sel`
#       when used as an instant vector), returns data. So an alert that is not firing still
#       proves its metrics exist with these labels, and one built on a metric that does not
#       exist fails;
#     - Prometheus has loaded every rule of our files and none is in error.
#     Items that cannot have data yet (e.g. an error counter that only exists after the first
#     error) are listed in the allowlist (default infra/observability/live-allowlist.txt) with a
#     reason; an allowlisted item that has data is reported as a note (remove the entry when the
#     series becomes always present, e.g. created at zero by the code).
# Exits 0 when everything passes, 1 when something fails, 2 on bad usage; the last line is
# "check-observability: N passed, N failed".
# promtool: $PROMTOOL, else local/.tools/root/usr/bin/promtool, else promtool on PATH, else it
# runs `local/metrics.sh install` (which extracts promtool and docker-compose there).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

if [[ -z ${PROMTOOL:-} ]]; then
  PROMTOOL="$here/.tools/root/usr/bin/promtool"
  if [[ ! -x $PROMTOOL ]]; then
    if command -v promtool >/dev/null 2>&1; then
      PROMTOOL="$(command -v promtool)"
    else
      bash "$here/metrics.sh" install >&2
    fi
  fi
fi
[[ -x $PROMTOOL ]] || { echo "check-observability: promtool not found at $PROMTOOL" >&2; exit 2; }
export PROMTOOL REPO_ROOT="$repo"

exec python3 - "$@" <<'PYTHON'
import argparse
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

REPO = os.environ["REPO_ROOT"]
PROMTOOL = os.environ["PROMTOOL"]
OBS = os.path.join(REPO, "infra", "observability")
DASHBOARDS = os.path.join(OBS, "grafana", "dashboards")
RULES_GLOB = os.path.join(OBS, "rules", "*.yml")
TESTS_GLOB = os.path.join(OBS, "tests", "*.test.yml")
DEFAULT_ALLOWLIST = os.path.join(OBS, "live-allowlist.txt")
TELEMETRY_SRC = os.path.join(REPO, "crates", "tradeflow-telemetry", "src")
DATASOURCE_UIDS = {"prometheus", "${datasource}", "$datasource", "${DS_PROMETHEUS}"}

# Grafana's built-in variables, replaced by representative values before a query is checked.
GRAFANA_VARS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
}

passed = 0
failed = 0
verbose = False


def ok(msg):
    global passed
    passed += 1
    if verbose:
        print(f"ok    {msg}")


def fail(msg):
    global failed
    failed += 1
    print(f"FAIL  {msg}")


def note(msg):
    print(f"note  {msg}")


# --------------------------------------------------------------------------- PromQL parsing
# A small PromQL parser: enough to find series selectors, to take threshold comparisons off an
# alert expression, and to cut the sub-expressions out of the original text by position.

AGGREGATIONS = {
    "sum", "avg", "count", "min", "max", "group", "stddev", "stdvar", "topk", "bottomk",
    "quantile", "count_values", "limitk", "limit_ratio",
}
COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
PRECEDENCE = {
    "or": 1, "and": 2, "unless": 2,
    "==": 3, "!=": 3, ">": 3, "<": 3, ">=": 3, "<=": 3,
    "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6,
}
KEYWORD_OPS = {"and", "or", "unless", "atan2"}

TOKEN_RE = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<duration>(?:\d+(?:ms|s|m|h|d|w|y))+(?![A-Za-z0-9_:]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=])
  | (?P<punct>[(){}\[\],:@])
""", re.VERBOSE)


class ParseError(Exception):
    pass


def tokenize(text):
    tokens = []
    pos = 0
    while pos < len(text):
        m = TOKEN_RE.match(text, pos)
        if not m:
            raise ParseError(f"unexpected character {text[pos]!r} at {pos}")
        kind = m.lastgroup
        if kind != "ws":
            tokens.append((kind, m.group(), m.start(), m.end()))
        pos = m.end()
    tokens.append(("eof", "", len(text), len(text)))
    return tokens


class Node:
    def __init__(self, kind, start, end, **kw):
        self.kind, self.start, self.end = kind, start, end
        self.__dict__.update(kw)

    def children(self):
        for name in ("inner", "lhs", "rhs", "operand"):
            child = getattr(self, name, None)
            if child is not None:
                yield child
        for child in getattr(self, "args", []):
            yield child


class Parser:
    def __init__(self, text):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self, k=0):
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def next(self):
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text):
        tok = self.next()
        if tok[1] != text:
            raise ParseError(f"expected {text!r}, found {tok[1]!r} at {tok[2]}")
        return tok

    def parse(self):
        node = self.expr(0)
        if self.peek()[0] != "eof":
            raise ParseError(f"unexpected {self.peek()[1]!r} at {self.peek()[2]}")
        return node

    def binop(self):
        kind, text = self.peek()[:2]
        if kind == "op" and text in PRECEDENCE:
            return text
        if kind == "ident" and text.lower() in KEYWORD_OPS:
            return text.lower()
        return None

    def label_list(self):
        self.expect("(")
        labels = []
        while self.peek()[1] != ")":
            labels.append(self.next()[1])
            if self.peek()[1] == ",":
                self.next()
        self.expect(")")
        return labels

    def expr(self, min_prec):
        lhs = self.unary()
        while True:
            op = self.binop()
            if op is None or PRECEDENCE[op] < min_prec:
                return lhs
            self.next()
            is_bool = False
            if self.peek()[0] == "ident" and self.peek()[1] == "bool":
                self.next()
                is_bool = True
            if self.peek()[0] == "ident" and self.peek()[1] in ("on", "ignoring"):
                self.next()
                self.label_list()
                if self.peek()[0] == "ident" and self.peek()[1] in ("group_left", "group_right"):
                    self.next()
                    if self.peek()[1] == "(":
                        self.label_list()
            rhs = self.expr(PRECEDENCE[op] + (0 if op == "^" else 1))
            lhs = Node("binary", lhs.start, rhs.end, op=op, lhs=lhs, rhs=rhs, bool=is_bool)

    def unary(self):
        tok = self.peek()
        if tok[0] == "op" and tok[1] in ("+", "-"):
            self.next()
            operand = self.expr(PRECEDENCE["^"])
            return Node("unary", tok[2], operand.end, op=tok[1], operand=operand)
        return self.postfix(self.atom())

    def atom(self):
        kind, text, start, end = self.next()
        if kind == "number":
            return Node("number", start, end, value=text)
        if kind == "string":
            return Node("string", start, end)
        if text == "(":
            inner = self.expr(0)
            close = self.expect(")")
            return Node("paren", start, close[3], inner=inner)
        if text == "{":
            self.i -= 1
            matchers, close = self.matchers()
            return Node("selector", start, close, name=None, matchers=matchers, range=None)
        if kind == "ident":
            low = text.lower()
            if low in AGGREGATIONS and (self.peek()[1] == "(" or self.peek()[1] in ("by", "without")):
                if self.peek()[1] in ("by", "without"):
                    self.next()
                    self.label_list()
                self.expect("(")
                args = self.args()
                close = self.expect(")")
                end = close[3]
                if self.peek()[1] in ("by", "without"):
                    self.next()
                    self.label_list()
                    end = self.tokens[self.i - 1][3]
                return Node("aggregate", start, end, fn=low, args=args)
            if low in ("inf", "nan"):
                return Node("number", start, end, value=text)
            if self.peek()[1] == "(":
                self.next()
                args = self.args()
                close = self.expect(")")
                return Node("call", start, close[3], fn=text, args=args)
            matchers, sel_end = [], end
            if self.peek()[1] == "{":
                matchers, sel_end = self.matchers()
            return Node("selector", start, sel_end, name=text, matchers=matchers, range=None)
        raise ParseError(f"unexpected {text!r} at {start}")

    def args(self):
        args = []
        while self.peek()[1] != ")":
            args.append(self.expr(0))
            if self.peek()[1] == ",":
                self.next()
            elif self.peek()[1] != ")":
                raise ParseError(f"expected ',' or ')' at {self.peek()[2]}")
        return args

    def matchers(self):
        self.expect("{")
        matchers = []
        while self.peek()[1] != "}":
            name = self.next()[1]
            op = self.next()[1]
            if op not in ("=", "!=", "=~", "!~"):
                raise ParseError(f"bad label matcher operator {op!r}")
            value = self.next()
            if value[0] != "string":
                raise ParseError(f"label value must be a string at {value[2]}")
            matchers.append((name, op, value[1]))
            if self.peek()[1] == ",":
                self.next()
        close = self.expect("}")
        return matchers, close[3]

    def postfix(self, node):
        while True:
            tok = self.peek()
            if tok[1] == "[":
                self.next()
                rng = self.next()
                if rng[0] != "duration":
                    raise ParseError(f"expected a duration at {rng[2]}")
                if self.peek()[1] == ":":
                    self.next()
                    if self.peek()[0] == "duration":
                        self.next()
                    close = self.expect("]")
                    node = Node("subquery", node.start, close[3], inner=node, range=rng[1])
                else:
                    close = self.expect("]")
                    if node.kind != "selector":
                        raise ParseError(f"range on something that is not a selector at {tok[2]}")
                    node.range = rng[1]
                    node.end = close[3]
            elif tok[0] == "ident" and tok[1] == "offset":
                self.next()
                if self.peek()[1] == "-":
                    self.next()
                dur = self.next()
                node.end = dur[3]
            elif tok[1] == "@":
                self.next()
                t = self.next()
                if t[0] == "ident":
                    self.expect("(")
                    t = self.expect(")")
                node.end = t[3]
            else:
                return node


def parse(expr):
    return Parser(expr).parse()


def walk(node):
    yield node
    for child in node.children():
        yield from walk(child)


def selectors(node):
    return [n for n in walk(node) if n.kind == "selector"]


def is_literal(node):
    if node.kind == "number":
        return True
    if node.kind == "paren":
        return is_literal(node.inner)
    if node.kind == "unary":
        return is_literal(node.operand)
    if node.kind == "binary" and node.op not in ("and", "or", "unless"):
        return is_literal(node.lhs) and is_literal(node.rhs)
    return False


def value_exprs(node):
    """The sub-expressions whose values an alert compares with its thresholds."""
    if node.kind == "paren":
        return value_exprs(node.inner)
    if node.kind == "binary":
        if node.op in COMPARISONS and not node.bool:
            if is_literal(node.rhs):
                return value_exprs(node.lhs)
            if is_literal(node.lhs):
                return value_exprs(node.rhs)
            return value_exprs(node.lhs) + value_exprs(node.rhs)
        if node.op in ("and", "or", "unless"):
            return value_exprs(node.lhs) + value_exprs(node.rhs)
    if node.kind == "call" and node.fn in ("absent", "absent_over_time"):
        return []
    if is_literal(node):
        return []
    return [node]


def selector_text(sel):
    name = sel.name or ""
    if sel.matchers:
        name += "{" + ",".join(f"{k}{op}{v}" for k, op, v in sel.matchers) + "}"
    return name


def selector_query(sel):
    text = selector_text(sel)
    if sel.range:
        return f"count_over_time({text}[{sel.range}])"
    return text


# --------------------------------------------------------------------------- inputs

def exported_metrics():
    """Prometheus names the functions export: METRIC_NAMES, histograms with their suffixes."""
    lib = open(os.path.join(TELEMETRY_SRC, "lib.rs"), encoding="utf-8").read()
    block = re.search(r"pub const METRIC_NAMES: &\[&str\] = &\[(.*?)\];", lib, re.S)
    if not block:
        raise SystemExit("check-observability: METRIC_NAMES not found in tradeflow-telemetry/src/lib.rs")
    names = set(re.findall(r'"([a-z_:][a-z0-9_:]*)"', block.group(1)))
    histograms = set()
    for path in glob.glob(os.path.join(TELEMETRY_SRC, "*.rs")):
        src = open(path, encoding="utf-8").read()
        histograms.update(re.findall(r'_histogram\(\s*"([a-z0-9_]+)"', src))
        # generator.rs builds its duration histograms through a `seconds(name, …)` closure.
        if re.search(r"let seconds = \|name", src):
            histograms.update(re.findall(r'\bseconds\(\s*"([a-z0-9_]+)"', src))
    allowed = set()
    for name in names:
        if name in histograms:
            allowed.update({name + "_bucket", name + "_sum", name + "_count"})
        else:
            allowed.add(name)
    return allowed, names & histograms


def load_yaml_rules(path):
    """Rule groups of a rules file, with a tiny reader for the subset our rule files use.

    The files are read by promtool too (the authority); this only needs names and exprs:
    `- record:`/`- alert:` items with an `expr:` that is a plain scalar or a `|`/`>` block."""
    rules = []
    lines = open(path, encoding="utf-8").read().split("\n")
    current = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)- (record|alert):\s*(\S.*?)\s*$", line)
        if m:
            current = {"kind": m.group(2), "name": m.group(3).strip("'\""), "indent": len(m.group(1)) + 2}
            rules.append(current)
            i += 1
            continue
        m = re.match(r"^(\s*)expr:\s*(.*?)\s*$", line)
        if m and current is not None and "expr" not in current:
            value = m.group(2)
            if value in ("|", "|-", ">", ">-", "|+"):
                indent = len(m.group(1))
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    body.append(lines[i])
                    i += 1
                strip = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
                text = "\n".join(b[strip:] for b in body).strip()
                if value.startswith(">"):
                    text = " ".join(t.strip() for t in text.split("\n"))
                current["expr"] = text
                continue
            if value[:1] in ("'", '"'):
                value = json.loads(value) if value[0] == '"' else value[1:-1].replace("''", "'")
            current["expr"] = value
        i += 1
    for rule in rules:
        rule.pop("indent", None)
        rule["file"] = os.path.relpath(path, REPO)
    return rules


def dashboard_targets(path):
    """(id, title, expr) of every Prometheus target of a dashboard; structural problems fail."""
    rel = os.path.relpath(path, REPO)
    try:
        dash = json.load(open(path, encoding="utf-8"))
    except (OSError, ValueError) as e:
        fail(f"{rel}: not valid JSON: {e}")
        return []
    if "dashboard" in dash and "panels" not in dash:
        fail(f"{rel}: an import wrapper ({{\"dashboard\": …}}); provisioning needs the bare dashboard")
        return []
    problems = []
    uid = dash.get("uid")
    if not uid or not re.match(r"^[A-Za-z0-9_-]{1,40}$", uid):
        problems.append("missing or invalid uid")
    if not dash.get("title"):
        problems.append("missing title")
    if not isinstance(dash.get("schemaVersion"), int):
        problems.append("missing schemaVersion")
    variables = {}
    for var in dash.get("templating", {}).get("list", []):
        name = var.get("name")
        if var.get("type") == "datasource":
            continue
        value = var.get("allValue") or ".+"
        if var.get("type") in ("constant", "textbox", "custom") and var.get("query") and not var.get("includeAll"):
            value = str(var.get("query")).split(",")[0]
        variables[name] = value
    panels = []

    def collect(items):
        for p in items:
            panels.append(p)
            collect(p.get("panels", []))
    collect(dash.get("panels", []))
    ids = [p.get("id") for p in panels]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append("panel ids must be present and unique")
    targets = []
    for p in panels:
        if p.get("type") == "row":
            continue
        title = p.get("title", "?")
        if "gridPos" not in p:
            problems.append(f"panel {title!r} has no gridPos")
        ds = (p.get("datasource") or {}).get("uid")
        if ds not in DATASOURCE_UIDS:
            problems.append(f"panel {title!r}: datasource uid {ds!r} is not the provisioned 'prometheus'")
        tlist = p.get("targets") or []
        if not tlist and p.get("type") not in ("text", "news", "dashlist"):
            problems.append(f"panel {title!r} has no targets")
        for t in tlist:
            expr = t.get("expr")
            tds = (t.get("datasource") or {}).get("uid", ds)
            if tds not in DATASOURCE_UIDS:
                problems.append(f"panel {title!r} target {t.get('refId')}: datasource uid {tds!r}")
            if not expr:
                problems.append(f"panel {title!r} target {t.get('refId')} has no expr")
                continue
            targets.append((f"{uid}#{p.get('id')}/{t.get('refId', 'A')}",
                            f"{rel} panel {title!r} {t.get('refId', 'A')}", substitute(expr, variables)))
    for prob in problems:
        fail(f"{rel}: {prob}")
    if not problems:
        ok(f"{rel}: structure ({len(targets)} targets)")
    return targets


def substitute(expr, variables):
    def repl(m):
        name = m.group(1) or m.group(2)
        if name in GRAFANA_VARS:
            return GRAFANA_VARS[name]
        if name in variables:
            return variables[name]
        return m.group(0)
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)


def load_allowlist(path):
    entries = {}
    if not path or not os.path.exists(path):
        return entries
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) < 2 or len(parts[1].strip()) < 10:
            fail(f"{os.path.relpath(path, REPO)}:{n}: an entry needs an id and a reason")
            continue
        entries[parts[0]] = parts[1].strip()
    return entries


# --------------------------------------------------------------------------- checks

def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, (p.stdout + p.stderr).strip()


def promtool_parse(items):
    """items: [(id, label, expr)]. Writes them as recording rules and runs promtool check rules."""
    def write(batch):
        fd, path = tempfile.mkstemp(prefix="dashboard-exprs-", suffix=".yml")
        with os.fdopen(fd, "w") as f:
            f.write("groups:\n  - name: dashboard-expressions\n    rules:\n")
            for n, (_, _, expr) in enumerate(batch):
                f.write(f"      - record: dashboard_expr_{n}\n        expr: {json.dumps(expr)}\n")
        return path
    path = write(items)
    try:
        code, out = run([PROMTOOL, "check", "rules", path])
    finally:
        os.unlink(path)
    if code == 0:
        for _, label, _ in items:
            ok(f"parses: {label}")
        return
    # Find the culprits one by one.
    for item in items:
        path = write([item])
        try:
            code, out = run([PROMTOOL, "check", "rules", path])
        finally:
            os.unlink(path)
        if code == 0:
            ok(f"parses: {item[1]}")
        else:
            fail(f"promtool cannot parse {item[1]}: {item[2]}\n      {out.splitlines()[-1] if out else ''}")


def check_metric_names(label, expr, allowed, histograms, recorded):
    try:
        tree = parse(expr)
    except ParseError as e:
        fail(f"{label}: cannot parse ({e}): {expr}")
        return None
    bad = []
    for sel in selectors(tree):
        name = sel.name
        if name is None:
            for k, op, v in sel.matchers:
                if k == "__name__" and op == "=":
                    name = v.strip("\"'`")
        if name is None:
            bad.append(f"{selector_text(sel)} (no metric name)")
        elif name in histograms:
            bad.append(f"{name} (a histogram: use {name}_bucket, _sum or _count)")
        elif name not in allowed and name not in recorded:
            bad.append(f"{name} (not exported: not in METRIC_NAMES nor a recording rule)")
    if bad:
        fail(f"{label}: unknown metrics: {', '.join(bad)}")
    else:
        ok(f"metric names: {label}")
    return tree


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, **params):
        query = urllib.parse.urlencode(params)
        req = urllib.request.Request(f"{self.url}{path}?{query}" if query else f"{self.url}{path}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            try:
                return json.load(e)
            except ValueError:
                return {"status": "error", "error": f"HTTP {e.code}"}
        except (urllib.error.URLError, OSError) as e:
            return {"status": "error", "error": str(e)}

    def query(self, expr):
        """(has_data, detail)"""
        body = self.get("/api/v1/query", query=expr)
        if body.get("status") != "success":
            return None, body.get("error", "query failed")
        data = body["data"]
        rtype, result = data["resultType"], data["result"]
        if rtype in ("scalar", "string"):
            values = [result[1]]
        elif rtype == "vector":
            values = [r["value"][1] for r in result]
        else:
            values = [v[1] for r in result for v in r.get("values", [])]
        if not values:
            return False, "no data (empty result)"
        if all(math.isnan(float(v)) for v in values if v not in ("+Inf", "-Inf")) and not any(v in ("+Inf", "-Inf") for v in values):
            return False, f"only NaN ({len(values)} series)"
        return True, f"{len(values)} series"


def live_check(prom, items, allowlist, used):
    """items: [(id, label, expr)]: each must return data unless allowlisted."""
    for item_id, label, expr in items:
        has, detail = prom.query(expr)
        if has is None:
            fail(f"{label}: query error: {detail}\n      {expr}")
        elif has:
            if item_id in allowlist:
                used.add(item_id)
                note(f"{item_id} has data now ({detail}); its allowlist entry covers runs without it")
            ok(f"data: {label} ({detail})")
        elif item_id in allowlist:
            used.add(item_id)
            print(f"allow {label}: {detail} (allowlisted: {allowlist[item_id]})")
        else:
            fail(f"{label}: {detail}\n      id {item_id}\n      {expr}")


def loaded_rules_check(prom, rules):
    body = prom.get("/api/v1/rules")
    if body.get("status") != "success":
        fail(f"Prometheus /api/v1/rules: {body.get('error')}")
        return
    loaded = {}
    for group in body["data"]["groups"]:
        for r in group["rules"]:
            loaded[(r["type"], r["name"])] = r
    firing = []
    for rule in rules:
        key = ("alerting" if rule["kind"] == "alert" else "recording", rule["name"])
        r = loaded.get(key)
        if r is None:
            fail(f"Prometheus has not loaded {rule['kind']} {rule['name']} of {rule['file']} "
                 f"(rule_files glob? reload with local/metrics.sh reload)")
        elif r.get("health") == "err":
            fail(f"{rule['kind']} {rule['name']}: Prometheus evaluation error: {r.get('lastError')}")
        else:
            ok(f"loaded: {rule['kind']} {rule['name']} ({r.get('health')})")
            if r["type"] == "alerting" and r.get("state") in ("pending", "firing"):
                firing.append(f"{rule['name']} ({r['state']})")
    if firing:
        note("alerts pending or firing now: " + ", ".join(firing))


def main():
    global verbose
    ap = argparse.ArgumentParser(prog="local/check-observability.sh")
    ap.add_argument("--live", metavar="PROMETHEUS_URL")
    ap.add_argument("--allowlist", default=DEFAULT_ALLOWLIST)
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()
    verbose = args.verbose

    allowed, histograms = exported_metrics()

    # Rules first: their record names are valid metric names for the dashboards.
    rule_files = sorted(glob.glob(RULES_GLOB))
    rules = []
    for path in rule_files:
        rules.extend(load_yaml_rules(path))
    recorded = {r["name"] for r in rules if r["kind"] == "record"}
    if not rule_files:
        fail(f"no rule files match {os.path.relpath(RULES_GLOB, REPO)}")

    # 1. dashboards
    targets = []
    dash_files = sorted(glob.glob(os.path.join(DASHBOARDS, "*.json")))
    if not dash_files:
        fail(f"no dashboards in {os.path.relpath(DASHBOARDS, REPO)}")
    uids = {}
    for path in dash_files:
        t = dashboard_targets(path)
        targets.extend(t)
        uid = json.load(open(path, encoding="utf-8")).get("uid") if t else None
        if uid in uids:
            fail(f"{os.path.relpath(path, REPO)}: uid {uid} also used by {uids[uid]}")
        uids[uid] = os.path.relpath(path, REPO)
    trees = {}
    for item_id, label, expr in targets:
        trees[item_id] = check_metric_names(label, expr, allowed, histograms, recorded)
    rule_items = []
    for r in rules:
        if "expr" not in r:
            fail(f"{r['file']}: {r['kind']} {r['name']} has no expr this checker can read")
            continue
        label = f"{r['file']} {r['kind']} {r['name']}"
        tree = check_metric_names(label, r["expr"], allowed, histograms, recorded)
        rule_items.append((r, label, tree))

    # 2. every panel expression through promtool
    if targets:
        promtool_parse(targets)

    # 3. rule files and their unit tests
    if rule_files:
        code, out = run([PROMTOOL, "check", "rules", *rule_files])
        (ok if code == 0 else fail)("promtool check rules " + " ".join(os.path.relpath(f, REPO) for f in rule_files)
                                    + ("" if code == 0 else "\n" + out))
    test_files = sorted(glob.glob(TESTS_GLOB))
    if not test_files:
        fail(f"no rule unit tests match {os.path.relpath(TESTS_GLOB, REPO)}")
    for path in test_files:
        code, out = run([PROMTOOL, "test", "rules", path])
        (ok if code == 0 else fail)(f"promtool test rules {os.path.relpath(path, REPO)}"
                                    + ("" if code == 0 else "\n" + out))
    # 4. the compose path's configuration
    compose = os.path.join(REPO, "local", "compose.yaml")
    docker_compose = os.path.join(REPO, "local", ".tools", "root", "usr", "bin", "docker-compose")
    if not os.access(docker_compose, os.X_OK):
        docker_compose = shutil.which("docker-compose")
    if os.path.exists(compose):
        if docker_compose:
            code, out = run([docker_compose, "-f", compose, "config", "-q"])
            (ok if code == 0 else fail)("docker-compose config -q local/compose.yaml"
                                        + ("" if code == 0 else "\n" + out))
        else:
            note("docker-compose not found (local/metrics.sh install extracts it): local/compose.yaml not validated")
    prom_config = os.path.join(OBS, "prometheus.yml")
    if os.path.exists(prom_config):
        code, out = run([PROMTOOL, "check", "config", "--syntax-only", prom_config])
        (ok if code == 0 else fail)("promtool check config --syntax-only infra/observability/prometheus.yml"
                                    + ("" if code == 0 else "\n" + out))
    try:
        import yaml  # PyYAML when this Python has it (the project venv does); else skipped
    except ImportError:
        yaml = None
    if yaml is not None:
        for path in [os.path.join(OBS, "otel-collector.yaml")] + sorted(
                glob.glob(os.path.join(OBS, "grafana", "provisioning", "*", "*.yml"))):
            try:
                yaml.safe_load(open(path, encoding="utf-8"))
                ok(f"YAML parses: {os.path.relpath(path, REPO)}")
            except (OSError, yaml.YAMLError) as e:
                fail(f"{os.path.relpath(path, REPO)}: {e}")

    static_failed = failed
    print(f"static: {len(dash_files)} dashboards, {len(targets)} panel expressions, "
          f"{len(rules)} rules in {len(rule_files)} files, {len(test_files)} rule test files"
          + (" - all good" if not static_failed else f" - {static_failed} problems"))

    # 4. live
    if args.live:
        prom = Prometheus(args.live)
        body = prom.get("/api/v1/status/buildinfo")
        if body.get("status") != "success":
            fail(f"Prometheus at {args.live} does not answer: {body.get('error')}")
        else:
            allowlist = load_allowlist(args.allowlist)
            used = set()
            live_check(prom, targets, allowlist, used)
            items = []
            for r, label, tree in rule_items:
                if tree is None:
                    continue
                if r["kind"] == "record":
                    items.append((f"record:{r['name']}", label, r["expr"]))
                    continue
                for n, sub in enumerate(value_exprs(tree)):
                    text = r["expr"][sub.start:sub.end]
                    short = " ".join(text.split())
                    short = short if len(short) <= 90 else short[:89] + "…"
                    items.append((f"alert:{r['name']}/value:{n}", f"{label} value {short}", text))
                seen = set()
                for sel in selectors(tree):
                    q = selector_query(sel)
                    if q in seen:
                        continue
                    seen.add(q)
                    compact = re.sub(r"\s+", "", q)
                    items.append((f"alert:{r['name']}/selector:{compact}", f"{label} selector {q}", q))
            live_check(prom, items, allowlist, used)
            loaded_rules_check(prom, rules)
            known = {i for i, _, _ in targets} | {i for i, _, _ in items}
            for stale in sorted(set(allowlist) - known):
                fail(f"{os.path.relpath(args.allowlist, REPO)}: {stale} matches no panel or rule (stale entry)")
            print(f"live: {len(targets)} panel expressions and {len(items)} rule expressions/selectors "
                  f"queried at {args.live}; {len(used)} allowlisted")

    print(f"check-observability: {passed} passed, {failed} failed")
    return 1 if failed else 0


sys.exit(main())
PYTHON
