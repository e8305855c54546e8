"""The shape of vae_lab/ from its imports: modules, import arrows, floors, cycles, imports inside
functions, module-level mutable state.

    python tools/shape.py              # the counts, for this tree
    python tools/shape.py --arrows     # and every arrow
    python tools/shape.py --root DIR   # for another checkout (a git worktree of an older commit)

An arrow is one module of vae_lab importing another (at the top or inside a function; hydra_plugins/
is counted apart). Floors: the modules on the longest chain of arrows (a module that imports nothing
of vae_lab is on floor 1). A cycle is a strongly connected group of modules. An import inside a
function is any import statement in a function's body. Mutable module state is a module-level name
assigned again through ``global`` inside a function.
"""

import ast
import sys
from pathlib import Path

ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve() if "--root" in sys.argv else Path(__file__).resolve().parents[1]
PACKAGES = ("vae_lab", "hydra_plugins")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def arrows(known: dict[str, Path]) -> set[tuple[str, str]]:
    found = set()
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for target in targets:
                to = resolve(target, known)
                if to and to != name and not (to == "vae_lab" and not target.startswith("vae_lab.")):
                    found.add((name, to))
    return found


def cycles(nodes: list[str], edges: set[tuple[str, str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    graph = {n: [b for a, b in edges if a == n] for n in nodes}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10000)
    for n in nodes:
        if n not in index:
            visit(n)
    return out


def mutable_globals(known: dict[str, Path]) -> list[str]:
    """Names rebound through ``global``, and lower-case module-level names bound to a dict, list or
    set (upper-case ones are constants by convention)."""
    found = []
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                found += [f"{name}.{n}" for n in node.names]
        for node in tree.body:
            value = getattr(node, "value", None)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            mutable = isinstance(value, (ast.Dict, ast.List, ast.Set)) or (
                isinstance(value, ast.Call) and getattr(value.func, "id", "") in ("dict", "list", "set"))
            for target in targets:
                if mutable and isinstance(target, ast.Name) and not target.id.isupper() and target.id != "__all__":
                    found.append(f"{name}.{target.id}")
    return sorted(set(found))


def floors(nodes: list[str], edges: set[tuple[str, str]]) -> int:
    """The modules on the longest chain of arrows; the modules of a cycle share one floor."""
    group = {n: n for n in nodes}
    for members in cycles(nodes, edges):
        group.update({n: members[0] for n in members})
    graph: dict[str, set[str]] = {group[n]: set() for n in nodes}
    for a, b in edges:
        if group[a] != group[b]:
            graph[group[a]].add(group[b])
    memo: dict[str, int] = {}

    def floor(n: str) -> int:
        if n not in memo:
            memo[n] = 1 + max((floor(m) for m in graph[n]), default=0)
        return memo[n]

    return max(floor(n) for n in graph)


def imports_in_functions(known: dict[str, Path]) -> dict[str, int]:
    """Per module, the import statements inside its functions' bodies."""
    found = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        inner = {id(node) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for node in ast.walk(f) if isinstance(node, (ast.Import, ast.ImportFrom))}
        if inner:
            found[name] = len(inner)
    return found


def lines(paths) -> int:
    return sum(len(p.read_text().splitlines()) for p in paths)


def main() -> None:
    known = modules()
    edges = arrows(known)
    # Package __init__ files that only re-export count as modules too; empty ones do not.
    counted = [n for n, p in known.items() if p.read_text().strip()]
    print(f"modules: {len(counted)} ({sum(len(p.read_text().splitlines()) for p in known.values())} lines)")
    ours = {n: p for n, p in known.items() if n.split(".")[0] == "vae_lab"}
    inside = {(a, b) for a, b in edges if a in ours and b in ours}
    print(f"import arrows: {len(inside)} in vae_lab/, {len(edges) - len(inside)} more from hydra_plugins/")
    print(f"floors: {floors(list(ours), inside)}")
    in_functions = imports_in_functions(ours)
    most = sorted(in_functions.items(), key=lambda item: -item[1])[:5]
    print(f"imports inside functions: {sum(in_functions.values())} in vae_lab/ (most: "
          + ", ".join(f"{name.removeprefix('vae_lab.')} {count}" for name, count in most) + ")")
    command_line = [ROOT / "vae_lab" / f for f in ("cli.py", "commands.py", "plan.py", "preflight.py")]
    print(f"lines: {lines(ours.values())} in vae_lab/, {lines(p for p in command_line if p.is_file())} of them in "
          f"the command line and its checks ({', '.join(p.name for p in command_line if p.is_file())}), "
          f"{lines((ROOT / 'tests').rglob('*.py'))} in tests/")
    found = cycles(list(known), edges)
    print(f"import cycles: {len(found)}" + "".join(f"\n  {' <-> '.join(c)}" for c in found))
    state = mutable_globals(known)
    print(f"mutable module globals: {len(state)}" + "".join(f"\n  {g}" for g in state))
    if "--arrows" in sys.argv:
        for a, b in sorted(edges):
            print(f"  {a} -> {b}")


if __name__ == "__main__":
    main()
